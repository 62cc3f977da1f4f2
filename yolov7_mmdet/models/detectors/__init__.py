"""Registered on import; see the package docstring."""
from .yolov7 import YOLOv7  # noqa: F401
