"""YOLOv7 models: layers, backbone, neck, heads, detector, assigner and losses.

Importing this package registers every component into mmdet's registries.
"""
from . import layers  # noqa: F401  (registration, in dependency order)
from . import backbones, necks, losses, task_modules, dense_heads, detectors  # noqa: F401
