"""Registered on import; see the package docstring."""
from .yolov7_head import DEFAULT_TEST_CFG, YOLOv7Head  # noqa: F401
