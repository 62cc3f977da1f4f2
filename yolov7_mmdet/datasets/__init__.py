"""Datasets, converters and data transforms of YOLOv7 (registered into mmdet's registries)."""
from . import sources, transforms  # noqa: F401  (registration)
