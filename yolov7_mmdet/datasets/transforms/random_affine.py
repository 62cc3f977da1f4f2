"""YOLOv7's random affine ("random_perspective" with perspective 0): scale and shift about the centre.

The official warp maps an input pixel ``p`` to ``T + S R (p - c_in)``: the input centre ``c_in`` goes
to a random point ``T = (0.5 +- translate) * out_size`` of the output, after a random scale
``s ~ U(1 - scale, 1.1 + scale)`` (and rotation / shear, 0 in every YOLOv7 recipe). After a mosaic the
input is the ``2s`` canvas and the output ``s``, so the output is a random, rescaled crop of the canvas.

Why not mmdet's :class:`~mmdet.datasets.transforms.RandomAffine`: it scales and rotates about the
top-left corner rather than the centre (so with its mosaic border it crops the top-left quadrant
instead of a window around the canvas centre), it shifts by ``+-translate`` around zero, and it keeps
every box that is still inside the image. YOLOv7 drops boxes that the warp made too small or too thin,
with the official ``box_candidates`` rule, which this transform applies: keep a box when its new width
and height exceed ``min_bbox_size`` pixels, its aspect ratio is below ``max_aspect_ratio``, and its new
area exceeds ``min_area_ratio`` of its old area times ``s**2`` (i.e. less than 90% of it was cut off).
mmdet's rotation, shear, scaling and translation matrices are reused.

Two paths, as the official ``random_perspective`` (``utils/datasets.py``):

* **polygons** (``gt_masks``, mmdet ``PolygonMasks``, e.g. from ``YOLOv7LoadAnnotations`` on COCO):
  every polygon part is resampled to 1000 points (``resample_segments``), warped, and a box is the
  extent of its warped points that lie inside the output (``segment2box``): tight boxes at the image
  edge. A box then survives with ``polygon_min_area_ratio`` (official ``area_thr=0.01``) instead of
  ``min_area_ratio``. The polygons are consumed (``gt_masks`` is removed): the official keeps only
  the boxes after this step, and no later YOLOv7 step needs the warped polygons.
* **boxes** (no ``gt_masks``): the four warped corners of each box, clipped to the output
  (``min_area_ratio``, official 0.10). Said once in the log.
"""
from __future__ import annotations

import random
from typing import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import RandomAffine
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type

from ._instances import select_instances
from .polygons import flatten_polygons, log_once, polygon_boxes, resample_polygons


@TRANSFORMS.register_module()
class YOLOv7RandomAffine(BaseTransform):
    """Random scale / translation (and optional rotation / shear) about the image centre.

    Required keys: ``img``; optional ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``,
    ``gt_masks`` (``PolygonMasks`` aligned with ``gt_bboxes``: the polygon path).
    Modified keys: ``img``, ``img_shape`` and the instance keys. Removed keys: ``gt_masks``.

    Args:
        img_scale: Output ``(width, height)``; the official recipe warps the ``2s`` mosaic canvas to
            ``s``. ``None`` keeps the input size (the official non-mosaic path).
        max_translate_ratio: ``translate`` of the hyp file (official: 0.2, tiny 0.1).
        scaling_ratio_range: Range of the scale, official ``(1 - scale, 1.1 + scale)``:
            ``(0.1, 2.0)`` for p5/p6 (scale 0.9), ``(0.5, 1.6)`` for tiny (scale 0.5).
        max_rotate_degree: ``degrees`` (official: 0).
        max_shear_degree: ``shear`` (official: 0).
        border_val: Fill value of uncovered pixels (official: 114).
        min_bbox_size: Minimum width and height (pixels) of a kept box (official: 2).
        min_area_ratio: Minimum ratio of new area to ``s**2`` times the old area (official: 0.1).
        polygon_min_area_ratio: The same when the boxes come from polygons (official: 0.01).
        max_aspect_ratio: Maximum of ``w / h`` and ``h / w`` of a kept box (official: 20).
    """

    def __init__(self, *, img_scale: Sequence[int] | None = (640, 640),
                 max_translate_ratio: float = 0.2,
                 scaling_ratio_range: tuple[float, float] = (0.1, 2.0),
                 max_rotate_degree: float = 0.0, max_shear_degree: float = 0.0,
                 border_val: Sequence[int] = (114, 114, 114), min_bbox_size: float = 2.0,
                 min_area_ratio: float = 0.1, polygon_min_area_ratio: float = 0.01,
                 max_aspect_ratio: float = 20.0) -> None:
        if not 0.0 <= max_translate_ratio <= 0.5:
            raise ValueError(f'max_translate_ratio must lie in [0, 0.5], got {max_translate_ratio}')
        if not 0.0 < scaling_ratio_range[0] <= scaling_ratio_range[1]:
            raise ValueError(f'scaling_ratio_range must be 0 < low <= high, got {scaling_ratio_range}')
        self.img_scale = None if img_scale is None else tuple(int(v) for v in img_scale)
        self.max_translate_ratio = max_translate_ratio
        self.scaling_ratio_range = tuple(scaling_ratio_range)
        self.max_rotate_degree = max_rotate_degree
        self.max_shear_degree = max_shear_degree
        self.border_val = tuple(border_val)
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.polygon_min_area_ratio = polygon_min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    def random_warp(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
        """Draw a warp ``(3, 3)`` from input to output pixels, and its scale ``s``."""
        # drawn in the official order (after its two perspective draws), so seeded runs can be compared
        rotation = random.uniform(-self.max_rotate_degree, self.max_rotate_degree)
        scale = random.uniform(*self.scaling_ratio_range)
        shear_x = random.uniform(-self.max_shear_degree, self.max_shear_degree)
        shear_y = random.uniform(-self.max_shear_degree, self.max_shear_degree)
        t = self.max_translate_ratio
        dest_x = random.uniform(0.5 - t, 0.5 + t) * out_hw[1]
        dest_y = random.uniform(0.5 - t, 0.5 + t) * out_hw[0]
        to_origin = RandomAffine._get_translation_matrix(-in_hw[1] / 2, -in_hw[0] / 2)
        warp = (RandomAffine._get_translation_matrix(dest_x, dest_y)
                @ RandomAffine._get_shear_matrix(shear_x, shear_y)
                @ RandomAffine._get_rotation_matrix(rotation)
                @ RandomAffine._get_scaling_matrix(scale)
                @ to_origin)
        return warp, scale

    def keep_boxes(self, old_wh: np.ndarray, new_wh: np.ndarray, scale: float,
                   min_area_ratio: float | None = None) -> np.ndarray:
        """The official ``box_candidates`` rule on ``(N, 2)`` widths/heights; returns a ``(N,)`` mask.

        ``min_area_ratio`` defaults to the box path's ``self.min_area_ratio``.
        """
        eps = 1e-16
        min_area_ratio = self.min_area_ratio if min_area_ratio is None else min_area_ratio
        new_w, new_h = new_wh[:, 0], new_wh[:, 1]
        aspect = np.maximum(new_w / (new_h + eps), new_h / (new_w + eps))
        area_ratio = new_w * new_h / (old_wh[:, 0] * old_wh[:, 1] * scale ** 2 + eps)
        return ((new_w > self.min_bbox_size) & (new_h > self.min_bbox_size)
                & (area_ratio > min_area_ratio) & (aspect < self.max_aspect_ratio))

    @staticmethod
    def warped_polygon_boxes(masks, warp: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """``(N, 4)`` boxes of the resampled, warped polygons' points inside the output image."""
        xy, vertices_per_part, parts_per_instance = flatten_polygons(masks)
        points = resample_polygons(xy, vertices_per_part)  # (P, 1000, 2)
        x, y = points[..., 0], points[..., 1]  # (P, 1000) each; affine: warp's last row is 0, 0, 1
        warped = np.stack([warp[0, 0] * x + warp[0, 1] * y + warp[0, 2],
                           warp[1, 0] * x + warp[1, 1] * y + warp[1, 2]], axis=-1)
        return polygon_boxes(warped, parts_per_instance, width=out_hw[1], height=out_hw[0])

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        img = results['img']
        in_hw = img.shape[:2]
        out_hw = in_hw if self.img_scale is None else (self.img_scale[1], self.img_scale[0])
        warp, scale = self.random_warp(in_hw, out_hw)
        if out_hw != in_hw or not np.allclose(warp, np.eye(3)):
            img = cv2.warpAffine(img, warp[:2], dsize=(out_hw[1], out_hw[0]),
                                 borderValue=self.border_val)
        results['img'] = img
        results['img_shape'] = img.shape[:2]

        masks = results.pop('gt_masks', None)
        boxes = results.get('gt_bboxes')
        if boxes is None or not len(boxes):
            return results
        old_wh = np.stack([boxes.widths.numpy(), boxes.heights.numpy()], axis=1)
        if masks is None:
            log_once('YOLOv7RandomAffine: no instance polygons (gt_masks), so boxes are warped by '
                     f'their corners and kept above {self.min_area_ratio:.0%} of their area (the '
                     'official box-only path)')
            boxes.project_(warp)
            boxes.clip_(out_hw)
            min_area_ratio = self.min_area_ratio
        else:
            if len(masks) != len(boxes):
                raise ValueError(f'YOLOv7RandomAffine: {len(masks)} polygons (gt_masks) for '
                                 f'{len(boxes)} boxes; the transforms before it must keep them aligned')
            boxes = HorizontalBoxes(self.warped_polygon_boxes(masks, warp, out_hw), dtype=boxes.dtype)
            results['gt_bboxes'] = boxes
            min_area_ratio = self.polygon_min_area_ratio
        new_wh = np.stack([boxes.widths.numpy(), boxes.heights.numpy()], axis=1)
        select_instances(results, self.keep_boxes(old_wh, new_wh, scale, min_area_ratio))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'max_translate_ratio={self.max_translate_ratio}, '
                f'scaling_ratio_range={self.scaling_ratio_range}, '
                f'max_rotate_degree={self.max_rotate_degree}, '
                f'max_shear_degree={self.max_shear_degree}, border_val={self.border_val}, '
                f'min_area_ratio={self.min_area_ratio}, '
                f'polygon_min_area_ratio={self.polygon_min_area_ratio})')
