"""Datasets, converters and data transforms of YOLOv7 (registered into mmdet's registries)."""
from . import sources, transforms  # noqa: F401  (registration)
from . import collate  # noqa: F401,E402  (registers yolov7_collate in mmengine's FUNCTIONS)
from . import rect_eval  # noqa: F401,E402  (YOLOv7RectBatchSampler, yolov7_rect_collate)
from .mix_dataset import YOLOv7MixDataset, unwrapped_dataset_cfg  # noqa: F401,E402  (registration)
