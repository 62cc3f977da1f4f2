"""YOLOv7's mosaic: 4 images (probability 0.8) or 9 images (0.2) tiled on one canvas.

Both layouts use each image at its size fitted into ``img_scale`` (keeping its aspect ratio: done on
load by ``YOLOv7LoadImageAndAnnotations``, as the official ``load_image`` does, or here for images
loaded at full size) and produce a canvas of twice ``img_scale`` filled with 114, on which
``YOLOv7RandomAffine`` then crops the final ``img_scale`` image.

* 4 images: the official layout (a random centre in ``[0.5, 1.5] * img_scale``, the four images
  meeting at it), drawn as mmdet's :class:`~mmdet.datasets.transforms.Mosaic` draws it (which this
  transform used before and whose seeded outputs it reproduces), without its copies of every image.
* 9 images (mmdet has none): the first image sits at ``(s, s)`` of a ``3s`` canvas and the other
  eight go round it clockwise from the top, each touching its neighbour (see :func:`nine_tile_corners`);
  a random ``2s`` window whose corner lies in ``[0, s)`` is kept. Only that window is allocated: the
  tiles are pasted into it directly.

Instances follow their tile: boxes are translated, concatenated, clipped to the canvas, and those
with no area left are dropped; ``gt_masks`` (mmdet ``PolygonMasks`` or ``BitmapMasks``), when the
images have them, are translated (and clipped) with their tile and selected with their boxes.

The 4/9 choice is drawn in :meth:`YOLOv7Mosaic.get_indexes` (which the dataset wrapper calls before
the transform) and shows in the number of extra images fetched: 3 or 8. Drawing the indexes here also
avoids the off-by-one of mmdet 3.3's ``Mosaic.get_indexes`` (``random.randint(0, len(dataset))`` can
return ``len(dataset)``).

Without a mosaic (``prob < 1``; the official recipes use 1.0) the image is letterboxed to
``img_scale`` instead, as the official loader does, and ``gt_masks`` is dropped (the official passes
no polygons on that path).

The transform changes only the results it is given (as every transform does), never the
``mix_results`` it reads: no copies of their images or boxes are needed.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type
from mmdet.structures.mask import PolygonMasks

from ..image_cache import fit_image
from ._instances import MASK_KEY, concat_instances, select_instances
from .letterbox import letterbox
from .load_fitted import scale_annotations
from .polygons import translate_polygons

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


@TRANSFORMS.register_module()
class YOLOv7Mosaic(BaseTransform):
    """4- or 9-image mosaic of YOLOv7 (see the module docstring). Use inside ``YOLOv7MixDataset``
    (or mmdet's ``MultiImageMixDataset``), which fetches the images of :meth:`get_indexes`.

    Required keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``mix_results``;
    optional ``gt_masks``, and ``scale`` / ``keep_ratio`` (the image already fits ``img_scale``).
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

    def get_indexes(self, dataset) -> list[int]:
        """Draw the layout and the extra images: 3 indexes (4-mosaic), 8 (9-mosaic) or none."""
        if random.random() >= self.prob:
            return []
        layout = 9 if random.random() < self.mosaic9_prob else 4
        return [random.randrange(len(dataset)) for _ in range(EXTRA_IMAGES[layout])]

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        others = results.get('mix_results', [])
        if len(others) not in (0, EXTRA_IMAGES[4], EXTRA_IMAGES[9]):
            raise ValueError(f'YOLOv7Mosaic needs 0, 3 or 8 mix_results, got {len(others)}; was it '
                             'given the indexes of its own get_indexes?')
        s_w, s_h = self.img_scale
        if not others:
            results.pop(MASK_KEY, None)  # the official letterbox path carries no polygons on
            return letterbox(results, out_hw=(s_h, s_w), pad_val=self.pad_val)
        tiles = [self._fitted(r) for r in (results, *others)]
        sizes_hw = [tile['img'].shape[:2] for tile in tiles]
        if len(others) == EXTRA_IMAGES[4]:
            # numpy's draws of mmdet's Mosaic (its probability, then the centre), which this layout
            # used before: seeded runs stay the same
            np.random.uniform(0, 1)
            centre = int(np.random.uniform(0.5, 1.5) * s_w), int(np.random.uniform(0.5, 1.5) * s_h)
            return self._compose(results, tiles, four_tile_corners(sizes_hw, *centre), (0, 0))
        # the 2s x 2s window of the 3s canvas, its corner uniform in [0, s)
        window = int(random.uniform(0, s_w)), int(random.uniform(0, s_h))
        return self._compose(results, tiles, nine_tile_corners(sizes_hw, s_w, s_h), window)

    def already_fitted(self, results: dict) -> bool:
        """Whether the image was fitted into ``img_scale`` on load (``YOLOv7LoadImageAndAnnotations``
        or mmdet's ``Resize(scale=img_scale, keep_ratio=True)`` record so)."""
        return bool(results.get('keep_ratio')) and tuple(results.get('scale', ())) == self.img_scale

    def _fitted(self, results: dict) -> dict:
        """A tile: a shallow copy of ``results`` with its image fitted into ``img_scale``
        (bilinear) and its annotations scaled (new objects: the input is left as it was)."""
        tile = dict(results)
        if self.already_fitted(results):
            return tile
        tile['img'], ratio = fit_image(results['img'], self.img_scale)
        tile['img_shape'] = tile['img'].shape[:2]
        tile['gt_bboxes'] = results['gt_bboxes'].clone()
        scale_annotations(tile, ratio=ratio)
        return tile

    def _compose(self, results: dict, tiles: Sequence[dict], corners: Sequence[tuple[int, int]],
                 window: tuple[int, int]) -> dict:
        """Paste ``tiles`` at ``corners`` (canvas of 3s for 9 tiles) into the ``2s`` canvas whose
        top-left corner is at ``window``; move their instances with them into ``results``."""
        s_w, s_h = self.img_scale
        first = tiles[0]['img']
        canvas = np.full((2 * s_h, 2 * s_w, *first.shape[2:]), self.pad_val, dtype=first.dtype)
        off_x, off_y = window
        for tile, (x, y) in zip(tiles, corners):
            _paste(canvas, tile['img'], x - off_x, y - off_y)
            if tile.get(MASK_KEY) is not None:
                tile[MASK_KEY] = translate_masks(tile[MASK_KEY], (x - off_x, y - off_y),
                                                 canvas.shape[:2])
        counts = [len(tile['gt_bboxes']) for tile in tiles]
        concat_instances(results, tiles)
        results['img'] = canvas
        results['img_shape'] = canvas.shape[:2]
        boxes = results['gt_bboxes']
        # every box moved by its tile's corner in one add (the same float32 sums as one translate_
        # per tile, a few times faster): (tiles, 2) corners -> (N, 2) per box -> (N, 4) x, y, x, y
        corner_per_box = np.repeat(np.asarray(corners, dtype=np.float32).reshape(-1, 2), counts, axis=0)
        boxes.tensor = boxes.tensor + boxes.tensor.new_tensor(np.tile(corner_per_box, (1, 2)))
        if off_x or off_y:
            boxes.translate_((-off_x, -off_y))
        boxes.clip_(results['img_shape'])
        select_instances(results, boxes.is_inside(results['img_shape']).numpy())
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'mosaic9_prob={self.mosaic9_prob}, prob={self.prob}, pad_val={self.pad_val})')


def four_tile_corners(sizes_hw: Sequence[tuple[int, int]], centre_x: int,
                      centre_y: int) -> list[tuple[int, int]]:
    """Top-left corners ``(x, y)`` of the 4 tiles meeting at the centre (may be negative): top-left,
    top-right, bottom-left, bottom-right, as the official ``load_mosaic`` and mmdet's ``Mosaic``."""
    (h0, w0), (h1, _), (_, w2), _ = sizes_hw
    return [(centre_x - w0, centre_y - h0), (centre_x, centre_y - h1), (centre_x - w2, centre_y),
            (centre_x, centre_y)]


def translate_masks(masks, offset: tuple[int, int], out_hw: tuple[int, int]):
    """``masks`` moved by ``offset = (x, y)`` onto an ``out_hw`` canvas, clipped to it (new object)."""
    if isinstance(masks, PolygonMasks):  # ours: all vertices in one array operation
        return translate_polygons(masks, offset, out_hw)
    moved = masks.translate(out_hw, offset[0], direction='horizontal')
    return moved.translate(out_hw, offset[1], direction='vertical')
