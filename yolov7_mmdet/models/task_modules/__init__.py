"""Task modules (assigners) of YOLOv7, registered into ``mmdet.registry.TASK_UTILS``."""
from . import assigners  # noqa: F401  (registration)
