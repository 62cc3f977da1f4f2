"""Loading for training: the image fitted to the input size on load (official ``load_image``), with
its annotations scaled to it, optionally from an image cache.

The official loader resizes each image as it loads it so that its long side equals the input size,
before the mosaic; mmdet's ``Mosaic`` resized each tile instead, from the full decoded image. Doing
it on load costs the same once, and makes a cache possible: the fitted images are what
``YOLOv7MixDataset(cache_images=...)`` keeps (see :mod:`yolov7_mmdet.datasets.image_cache`).

Image and annotations are loaded by one transform because the annotations must be scaled with the
image: mmdet's ``LoadAnnotations`` reads boxes and polygons in original-image pixels (and needs the
original size for masks), so a separate loader that resized the image would leave them behind.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import PolygonMasks

from ..image_cache import ImageCache, fit_image, fitted_size
from .polygons import scale_polygons

DEFAULT_IMAGE_LOADER = dict(type='LoadImageFromFile')
DEFAULT_ANNOTATION_LOADER = dict(type='LoadAnnotations', with_bbox=True)


@TRANSFORMS.register_module()
class YOLOv7LoadImageAndAnnotations(BaseTransform):
    """Load an image fitted into ``img_scale`` and its annotations scaled with it.

    ``load_image`` (mmcv's ``LoadImageFromFile`` by default) decodes the image,
    :func:`~yolov7_mmdet.datasets.image_cache.fit_image` resizes it keeping its ratio so that it
    fits ``img_scale`` (official ``load_image``), ``load_annotations`` (mmdet's ``LoadAnnotations``
    by default) loads the annotations, which are then scaled by the same ratio (boxes) or to the
    fitted size (masks). Afterwards ``scale = img_scale`` and ``keep_ratio = True`` (what mmdet's
    ``Resize`` records) tell ``YOLOv7Mosaic`` that the image already fits, so it is not resized again.

    With an :class:`~yolov7_mmdet.datasets.image_cache.ImageCache` attached (``image_cache``, set by
    ``YOLOv7MixDataset``) a cached image is used instead of decoding; it is read-only.

    Required keys: ``img_path`` and what ``load_annotations`` reads (``instances``).
    Added keys: ``img``, ``img_shape``, ``ori_shape``, what ``load_annotations`` adds (``gt_bboxes``,
    ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks``), and ``scale``, ``keep_ratio`` when fitted.

    Args:
        img_scale: ``(width, height)`` to fit into, or None: ``YOLOv7MixDataset`` then sets it to its
            mosaic's ``img_scale`` (one size to configure); elsewhere None loads the image as is.
        shrink_interpolation: Interpolation when shrinking: ``'bilinear'`` as the official training
            loader, ``'area'`` as its test loader. Enlarging is bilinear.
        load_image: Config of the image loader (sets ``img`` from ``img_path``); default
            ``dict(type='LoadImageFromFile')``.
        load_annotations: Config of the annotation loader; True (default) is
            ``dict(type='LoadAnnotations', with_bbox=True)``, False loads none.
    """

    def __init__(self, *, img_scale: Optional[Sequence[int]] = None,
                 shrink_interpolation: str = 'bilinear',
                 load_image: Optional[dict] = None,
                 load_annotations: Union[dict, bool] = True) -> None:
        self.img_scale = None if img_scale is None else tuple(int(v) for v in img_scale)
        self.shrink_interpolation = shrink_interpolation
        self.load_image_cfg = dict(load_image or DEFAULT_IMAGE_LOADER)
        self.image_loader = TRANSFORMS.build(self.load_image_cfg)
        if load_annotations is True:
            load_annotations = DEFAULT_ANNOTATION_LOADER
        self.annotation_loader = TRANSFORMS.build(load_annotations) if load_annotations else None
        self.image_cache: Optional[ImageCache] = None

    @property
    def cache_params(self) -> str:
        """What the fitted pixels depend on besides the file (part of the disk cache's keys)."""
        size = 'x'.join(map(str, self.img_scale)) if self.img_scale else 'full'
        return f'{size}|{self.shrink_interpolation}|{sorted(self.load_image_cfg.items())}'

    def load_image(self, path: str) -> Tuple[np.ndarray, Tuple[int, int]]:
        """Decode ``path`` and fit it: ``(image, original (height, width))``; no cache."""
        img = self.image_loader(dict(img_path=path))['img']
        ori_hw = img.shape[:2]
        if self.img_scale is not None:
            img, _ = fit_image(img, self.img_scale, shrink_interpolation=self.shrink_interpolation)
        return img, ori_hw

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        cached = self.image_cache.get(path) if self.image_cache is not None else None
        img, ori_hw = cached if cached is not None else self.load_image(path)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = ori_hw  # mmdet's LoadAnnotations makes masks of the original size
        if self.annotation_loader is not None:
            results = self.annotation_loader(results)
        if self.img_scale is not None:
            scale_annotations(results, ratio=fitted_size(*ori_hw, self.img_scale)[0])
            results['scale'] = self.img_scale
            results['keep_ratio'] = True
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'shrink_interpolation={self.shrink_interpolation!r}, '
                f'load_image={self.image_loader!r}, load_annotations={self.annotation_loader!r})')


def scale_annotations(results: dict, *, ratio: float) -> None:
    """Scale the boxes of ``results`` by ``ratio`` and its masks to ``results['img_shape']``, in place.

    Boxes are multiplied by the ratio (what mmdet's ``Mosaic`` did per tile); polygons by the exact
    per-axis ratio of the sizes (what the official code does to its normalised segments).
    """
    if results.get('gt_bboxes') is not None and ratio != 1:  # x * 1.0 == x: skip the torch op
        results['gt_bboxes'].rescale_((ratio, ratio))
    masks = results.get('gt_masks')
    if isinstance(masks, PolygonMasks):  # in float64: mmdet's resize truncates integer polygons
        results['gt_masks'] = scale_polygons(masks, results['img_shape'])
    elif masks is not None:
        results['gt_masks'] = masks.resize(results['img_shape'])
