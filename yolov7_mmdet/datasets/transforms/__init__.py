"""YOLOv7's data transforms, registered in mmdet's ``TRANSFORMS`` (see ``docs/data_pipeline.md``)."""
from .hsv import YOLOv7HSVRandomAug
from .letterbox import YOLOv7Letterbox
from .load_fitted import YOLOv7LoadImageAndAnnotations
from .loading import YOLOv7LoadAnnotations
from .mix_up import YOLOv7MixUp
from .mosaic import YOLOv7Mosaic
from .paste_in import YOLOv7PasteIn
from .random_affine import YOLOv7RandomAffine
from .resize_long_side import YOLOv7ResizeLongSide

__all__ = ['YOLOv7HSVRandomAug', 'YOLOv7Letterbox', 'YOLOv7LoadAnnotations',
           'YOLOv7LoadImageAndAnnotations', 'YOLOv7MixUp', 'YOLOv7Mosaic', 'YOLOv7PasteIn',
           'YOLOv7RandomAffine', 'YOLOv7ResizeLongSide']
