"""``YOLOv7ResizeLongSide``: the official test-time image loading (``utils.datasets.load_image``).

The official ``test.py`` first resizes every image so that its long side is the model size ``s``
(``r = s / max(h0, w0)``, output ``(int(w0 * r), int(h0 * r))``: floored sizes), with ``INTER_AREA``
when shrinking and bilinear when enlarging, then pads it to its batch's rectangular shape
(``yolov7_rect_collate``; see ``yolov7_mmdet.datasets.rect_eval``). This transform is the first step.

It records, for the head to map boxes back (the official ``scale_coords(..., ratio_pad)``):
``scale_factor = (h / h0, h / h0)``: the official divides *both* axes by the height ratio
(``ratio_pad[0][0]``), which differs from ``w / w0`` by the flooring of the sizes.
"""
from __future__ import annotations

from typing import Sequence

from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ..image_cache import fit_image, fitted_size


def long_side_resized_hw(ori_hw: Sequence[int], img_size: int) -> tuple[int, int]:
    """``(h, w)`` of an ``ori_hw`` image after ``YOLOv7ResizeLongSide(scale=img_size)``."""
    return fitted_size(*ori_hw[:2], (img_size, img_size))[1]


@TRANSFORMS.register_module()
class YOLOv7ResizeLongSide(BaseTransform):
    """Resize so that the long side is ``scale`` (the official ``load_image`` at test time).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``. Added keys: ``scale_factor``.

    Args:
        scale: The model size ``s`` (an int, or a square ``(s, s)`` in mmdet's ``(width, height)``).
    """

    def __init__(self, *, scale: int | tuple[int, int]) -> None:
        width, height = (scale, scale) if isinstance(scale, int) else scale
        if width != height or width <= 0:
            raise ValueError(f'YOLOv7ResizeLongSide needs a positive square scale, got {scale!r}')
        self.scale = int(width)

    def transform(self, results: dict) -> dict:
        height = results['img'].shape[0]
        # floored sizes; INTER_AREA when shrinking, bilinear when enlarging (the official test loader)
        img, _ = fit_image(results['img'], (self.scale, self.scale), shrink_interpolation='area')
        gain = img.shape[0] / height  # the official scale_coords divides x and y by the height ratio
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (gain, gain)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale={self.scale})'
