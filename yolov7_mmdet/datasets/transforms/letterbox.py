"""Letterbox: resize keeping the aspect ratio, then pad evenly on both sides to a fixed shape.

YOLOv7 feeds every image through a letterbox at test time (and in training when no mosaic is made):
the image is scaled by ``r = min(H / h, W / w)`` (never above 1 with ``allow_scale_up=False``, as the
official evaluation does), resized with bilinear interpolation, and padded with grey 114 to
``(H, W)``, half of the padding on each side (the odd pixel goes to the bottom / right).

The transform records, for the head to map boxes back to the original image:

* ``scale_factor``: ``(w_scale, h_scale)``, the *total* scale from the original image (it multiplies
  a ``scale_factor`` set earlier, e.g. by mmdet's ``Resize``), as mmdet's ``Resize`` does;
* ``pad_param``: ``np.float32`` array ``[top, bottom, left, right]`` in pixels of the network input.

A box in network-input pixels maps back with ``(box - [left, top, left, top]) / [w_s, h_s, w_s, h_s]``.

Differences from the official ``letterbox``: boxes are shifted by the integer padding the image really
got (the official code shifts labels by the half-pixel float ``dw / 2``), and mmdet's ``scale_factor``
is the ratio of the integer sizes actually produced.
"""
from __future__ import annotations

from typing import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


def _to_hw(scale: int | Sequence[int]) -> tuple[int, int]:
    """mmdet-style ``scale`` (an int, or ``(width, height)``) as ``(height, width)``."""
    if isinstance(scale, int):
        return scale, scale
    width, height = scale
    return int(height), int(width)


def letterbox(results: dict, *, out_hw: tuple[int, int], pad_val: float = 114,
              allow_scale_up: bool = True) -> dict:
    """Letterbox ``results['img']`` (and ``gt_bboxes`` if present) to ``out_hw``, in place.

    Args:
        results: mmdet results dict with ``img`` (H, W, C) and optionally ``gt_bboxes``.
        out_hw: ``(height, width)`` of the output image.
        pad_val: Fill value of the padding.
        allow_scale_up: When False the image is only ever shrunk (official evaluation).

    Returns:
        The same ``results`` with ``img``, ``img_shape``, ``scale_factor``, ``pad_param`` updated.
    """
    img = results['img']
    height, width = img.shape[:2]
    out_h, out_w = out_hw
    ratio = min(out_h / height, out_w / width)
    if not allow_scale_up:
        ratio = min(ratio, 1.0)
    new_w, new_h = int(round(width * ratio)), int(round(height * ratio))
    if (new_w, new_h) != (width, height):
        img = mmcv.imresize(img, (new_w, new_h), interpolation='bilinear')
    pad_h, pad_w = out_h - new_h, out_w - new_w
    top, left = pad_h // 2, pad_w // 2
    pad_param = np.array([top, pad_h - top, left, pad_w - left], dtype=np.float32)
    if pad_h or pad_w:
        # a scalar pad_val would fill only the first channel (cv2.copyMakeBorder's Scalar)
        fill = (pad_val,) * img.shape[2] if img.ndim == 3 else pad_val
        img = mmcv.impad(img, padding=(left, top, pad_w - left, pad_h - top), pad_val=fill)

    w_scale, h_scale = new_w / width, new_h / height
    if results.get('gt_bboxes') is not None:
        results['gt_bboxes'].rescale_((w_scale, h_scale))
        results['gt_bboxes'].translate_((left, top))
    prior_w, prior_h = results.get('scale_factor', (1.0, 1.0))
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    results['scale_factor'] = (prior_w * w_scale, prior_h * h_scale)
    results['pad_param'] = pad_param
    return results


@TRANSFORMS.register_module()
class YOLOv7Letterbox(BaseTransform):
    """Resize keeping the aspect ratio and pad to a fixed shape (see the module docstring).

    Required keys: ``img``; optional ``gt_bboxes``, ``scale_factor``.
    Modified keys: ``img``, ``img_shape``, ``gt_bboxes``. Added keys: ``scale_factor``, ``pad_param``.

    Args:
        scale: Output size, an int or ``(width, height)`` (mmdet's order).
        pad_val: Fill value of the padding (official: 114).
        allow_scale_up: Whether small images may be enlarged (official evaluation: False; the official
            loader has already resized the long side to the model size before its letterbox).
    """

    def __init__(self, *, scale: int | Sequence[int], pad_val: float = 114,
                 allow_scale_up: bool = True) -> None:
        self.out_hw = _to_hw(scale)
        if min(self.out_hw) <= 0:
            raise ValueError(f'letterbox scale must be positive, got {scale!r}')
        self.pad_val = pad_val
        self.allow_scale_up = allow_scale_up

    def transform(self, results: dict) -> dict:
        return letterbox(results, out_hw=self.out_hw, pad_val=self.pad_val,
                         allow_scale_up=self.allow_scale_up)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale_hw={self.out_hw}, pad_val={self.pad_val}, '
                f'allow_scale_up={self.allow_scale_up})')
