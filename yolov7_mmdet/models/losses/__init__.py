"""YOLOv7 losses, registered into ``mmdet.registry.MODELS``."""
from .yolov7_loss import YOLOv7Loss, yolo_ciou

__all__ = ['YOLOv7Loss', 'yolo_ciou']
