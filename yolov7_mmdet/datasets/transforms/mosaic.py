"""YOLOv7's mosaic: 4 images (probability 0.8) or 9 images (0.2) tiled on one canvas.

Both layouts scale each image so that it fits ``img_scale`` (keeping its aspect ratio) and produce a
canvas of twice ``img_scale`` filled with 114, on which ``YOLOv7RandomAffine`` then crops the final
``img_scale`` image.

* 4 images: mmdet's :class:`~mmdet.datasets.transforms.Mosaic` is the official layout (a random
  centre in ``[0.5, 1.5] * img_scale``, the four images meeting at it), so it is reused as is.
* 9 images (mmdet has none): the first image sits at ``(s, s)`` of a ``3s`` canvas and the other
  eight go round it clockwise from the top, each touching its neighbour (see :func:`nine_tile_corners`);
  a random ``2s`` window whose corner lies in ``[0, s)`` is then cut out.

The 4/9 choice is drawn in :meth:`YOLOv7Mosaic.get_indexes` (which mmdet's ``MultiImageMixDataset``
calls before the transform) and shows in the number of extra images fetched: 3 or 8. Drawing the
indexes here also avoids the off-by-one of mmdet 3.3's ``Mosaic.get_indexes``
(``random.randint(0, len(dataset))`` can return ``len(dataset)``).

Without a mosaic (``prob < 1``; the official recipes use 1.0) the image is letterboxed to
``img_scale`` instead, as the official loader does.

Instance polygons (``gt_masks``, ``PolygonMasks``) go along when every tile has them: scaled and
shifted with their tile, concatenated and clipped to the canvas (:func:`.polygons.mosaic_polygons`,
the official ``load_mosaic`` / ``load_mosaic9`` segments). When a tile has none, and on the
letterbox path (where the official passes no segments to ``random_perspective``), ``gt_masks`` is
removed and ``YOLOv7RandomAffine`` takes its box-only path.
"""
from __future__ import annotations

import random
from typing import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import Mosaic
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type

from ._instances import INSTANCE_KEYS, concat_instances, select_instances
from .letterbox import letterbox
from .polygons import mosaic_polygons

#: Extra images fetched (besides the current one) for each layout.
EXTRA_IMAGES = {4: 3, 9: 8}


def nine_tile_corners(sizes_hw: Sequence[tuple[int, int]], s_w: int, s_h: int) -> list[tuple[int, int]]:
    """Top-left corners ``(x, y)`` of the 9 tiles on the ``3 s_h x 3 s_w`` canvas (may be negative).

    Tile 0 is the centre at ``(s_w, s_h)``; tiles 1..8 go clockwise round it starting from the top:
    top, top-right, right, bottom-right, bottom, bottom-left, left, top-left. Each sits beside the
    previous one (e.g. the top-right tile starts where the top tile ends).

    Args:
        sizes_hw: ``(height, width)`` of the 9 resized images, in tile order.
        s_w: Width of ``img_scale``; s_h: its height.
    """
    heights = [hw[0] for hw in sizes_hw]
    widths = [hw[1] for hw in sizes_hw]
    if len(heights) != 9:
        raise ValueError(f'a 9-image mosaic needs 9 image sizes, got {len(heights)}')
    right, bottom = s_w + widths[0], s_h + heights[0]  # the centre tile's right and bottom edges
    return [
        (s_w, s_h),                                            # 0 centre
        (s_w, s_h - heights[1]),                               # 1 top, left-aligned with 0
        (s_w + widths[1], s_h - heights[2]),                   # 2 top-right, right of 1
        (right, s_h),                                          # 3 right, top-aligned with 0
        (right, s_h + heights[3]),                             # 4 bottom-right, under 3
        (right - widths[5], bottom),                           # 5 bottom, right-aligned with 0
        (right - widths[5] - widths[6], bottom),               # 6 bottom-left, left of 5
        (s_w - widths[7], bottom - heights[7]),                # 7 left, bottom-aligned with 0
        (s_w - widths[8], bottom - heights[7] - heights[8]),   # 8 top-left, above 7
    ]


def _paste(canvas: np.ndarray, img: np.ndarray, x: int, y: int) -> None:
    """Copy ``img`` onto ``canvas`` with its top-left corner at ``(x, y)``, cut at the canvas edges."""
    h, w = img.shape[:2]
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = img[y1 - y:y2 - y, x1 - x:x2 - x]


def tile_polygons(tiles: Sequence[dict]) -> list | None:
    """Each tile's ``gt_masks``, or None unless every tile has them."""
    masks = [tile.get('gt_masks') for tile in tiles]
    return None if any(m is None for m in masks) else masks


class _TileRecordingMosaic(Mosaic):
    """mmdet's ``Mosaic``, recording each tile's shift onto the canvas (for the polygons)."""

    def transform(self, results: dict) -> dict:
        self.tile_offsets = []
        return super().transform(results)

    def _mosaic_combine(self, loc, center_position_xy, img_shape_wh):
        paste, crop = super()._mosaic_combine(loc, center_position_xy, img_shape_wh)
        self.tile_offsets.append((paste[0] - crop[0], paste[1] - crop[1]))  # x, y
        return paste, crop


@TRANSFORMS.register_module()
class YOLOv7Mosaic(BaseTransform):
    """4- or 9-image mosaic of YOLOv7 (see the module docstring). Use inside ``MultiImageMixDataset``.

    Required keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``mix_results``;
    optional ``gt_masks`` (``PolygonMasks``).
    Modified keys: ``img``, ``img_shape``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``,
    ``gt_masks``.

    Args:
        img_scale: ``(width, height)`` every image is fitted into; the canvas is twice as large.
        mosaic9_prob: Probability of the 9-image layout (official: 0.2).
        prob: Probability of making a mosaic at all (official ``hyp['mosaic']``: 1.0); otherwise the
            image is letterboxed to ``img_scale``.
        pad_val: Fill value of the canvas (official: 114).
    """

    def __init__(self, *, img_scale: Sequence[int] = (640, 640), mosaic9_prob: float = 0.2,
                 prob: float = 1.0, pad_val: float = 114.0) -> None:
        if not (0.0 <= mosaic9_prob <= 1.0 and 0.0 <= prob <= 1.0):
            raise ValueError(f'probabilities must lie in [0, 1], got mosaic9_prob={mosaic9_prob}, '
                             f'prob={prob}')
        self.img_scale = tuple(int(v) for v in img_scale)
        self.mosaic9_prob = mosaic9_prob
        self.prob = prob
        self.pad_val = pad_val
        self._mosaic4 = _TileRecordingMosaic(img_scale=self.img_scale,
                                             center_ratio_range=(0.5, 1.5), pad_val=pad_val,
                                             prob=1.0, bbox_clip_border=True)

    def get_indexes(self, dataset) -> list[int]:
        """Draw the layout and the extra images: 3 indexes (4-mosaic), 8 (9-mosaic) or none."""
        if random.random() >= self.prob:
            return []
        layout = 9 if random.random() < self.mosaic9_prob else 4
        return [random.randrange(len(dataset)) for _ in range(EXTRA_IMAGES[layout])]

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        others = results.get('mix_results', [])
        if len(others) == EXTRA_IMAGES[4]:
            return self._mosaic4_with_polygons(results, others)
        if len(others) == EXTRA_IMAGES[9]:
            return self._mosaic9(results, others)
        if not others:
            s_w, s_h = self.img_scale
            results.pop('gt_masks', None)  # official: no segments without a mosaic
            return letterbox(results, out_hw=(s_h, s_w), pad_val=self.pad_val)
        raise ValueError(f'YOLOv7Mosaic needs 0, 3 or 8 mix_results, got {len(others)}; was it '
                         'given the indexes of its own get_indexes?')

    def _fit_ratio(self, img: np.ndarray) -> float:
        """The scale that fits ``img`` into ``img_scale`` keeping its aspect ratio."""
        height, width = img.shape[:2]
        return min(self.img_scale[0] / width, self.img_scale[1] / height)

    def _mosaic4_with_polygons(self, results: dict, others: Sequence[dict]) -> dict:
        """mmdet's 4-image mosaic, plus the tiles' polygons placed as mmdet placed their boxes."""
        tiles = [results, *others]
        masks = tile_polygons(tiles)
        tile_boxes = [tile['gt_bboxes'] for tile in tiles]  # mmdet replaces results' own, keep it
        ratios = [self._fit_ratio(tile['img']) for tile in tiles]
        results = self._mosaic4.transform(results)
        results.pop('gt_masks', None)
        if masks is None:
            return results
        canvas_hw = results['img_shape']
        offsets = self._mosaic4.tile_offsets
        # the boxes mmdet kept: its own rescale, shift, clip and is_inside, redone on the originals
        placed = []
        for boxes, ratio, offset in zip(tile_boxes, ratios, offsets):
            boxes = boxes.clone()
            boxes.rescale_([ratio, ratio])
            boxes.translate_(offset)
            placed.append(boxes)
        placed = placed[0].cat(placed, dim=0)
        placed.clip_(canvas_hw)
        kept = placed.is_inside(canvas_hw).numpy()
        results['gt_masks'] = mosaic_polygons(masks, ratios, offsets, canvas_hw)[kept]
        return results

    def _fit(self, results: dict) -> tuple[np.ndarray, dict]:
        """Resize one image to fit ``img_scale`` (keep ratio, bilinear) and scale its boxes."""
        img = results['img']
        height, width = img.shape[:2]
        ratio = self._fit_ratio(img)
        img = mmcv.imresize(img, (int(width * ratio), int(height * ratio)))
        part = {key: results[key] for key in INSTANCE_KEYS}
        part['gt_bboxes'] = part['gt_bboxes'].clone()
        part['gt_bboxes'].rescale_((ratio, ratio))
        return img, part

    def _mosaic9(self, results: dict, others: Sequence[dict]) -> dict:
        s_w, s_h = self.img_scale
        tiles = (results, *others)
        masks = tile_polygons(tiles)
        ratios = [self._fit_ratio(r['img']) for r in tiles]
        fitted = [self._fit(r) for r in tiles]
        corners = nine_tile_corners([img.shape[:2] for img, _ in fitted], s_w, s_h)
        channels = results['img'].shape[2:]
        canvas = np.full((3 * s_h, 3 * s_w, *channels), self.pad_val, dtype=results['img'].dtype)
        parts = []
        for (img, part), (x, y) in zip(fitted, corners):
            _paste(canvas, img, x, y)
            part['gt_bboxes'].translate_((x, y))
            parts.append(part)

        # a random 2s x 2s window of the 3s canvas, its corner uniform in [0, s)
        off_x, off_y = int(random.uniform(0, s_w)), int(random.uniform(0, s_h))
        results['img'] = np.ascontiguousarray(
            canvas[off_y:off_y + 2 * s_h, off_x:off_x + 2 * s_w])
        results['img_shape'] = results['img'].shape[:2]
        concat_instances(results, parts)
        results.pop('gt_masks', None)
        if masks is not None:
            offsets = [(x - off_x, y - off_y) for x, y in corners]
            results['gt_masks'] = mosaic_polygons(masks, ratios, offsets, results['img_shape'])
        results['gt_bboxes'].translate_((-off_x, -off_y))
        results['gt_bboxes'].clip_(results['img_shape'])
        select_instances(results, results['gt_bboxes'].is_inside(results['img_shape']).numpy())
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'mosaic9_prob={self.mosaic9_prob}, prob={self.prob}, pad_val={self.pad_val})')
