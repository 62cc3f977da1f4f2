"""YOLOv7's paste-in: objects cut out along their polygons from other images, pasted into free space.

A "bag of freebies" of the YOLOv7 recipe (Wang, Bochkovskiy, Liao, "YOLOv7: Trainable bag-of-freebies
sets new state-of-the-art for real-time object detectors", 2022; official ``hyp['paste_in']``: 0.15
in ``hyp.scratch.p5/p6.yaml``, 0.05 in ``hyp.scratch.tiny.yaml``). With that probability, after the
colour jitter, the official ``LoadImagesAndLabels.__getitem__`` (``utils/datasets.py``):

1. ``load_samples``: builds 4-image mosaics of random images (the ``load_mosaic`` layout, without
   the affine) until it holds at least 30 cut-outs; from each mosaic ``sample_segments`` takes
   ``round(n / 2)`` of its ``n`` objects at random, each as its box's crop of the mosaic with the
   pixels outside the object's polygon zeroed (a zero channel inside becomes 255);
2. ``pastein``: for 20 candidate rectangles (sides up to 3/4, 1/2, 1/4, 1/8, 1/16 of the image,
   each skipped with probability 0.2) at random centres, when the rectangle covers less than 30% of
   every existing box and is more than 20 px wide and high, a random cut-out is resized to fit it
   (keeping its aspect ratio, both sides over 10 px), its non-zero channel values (more than 60)
   replace the image's, and its box and class are added.

The official also keeps a "mask" per cut-out, but it is a view of the cut-out image's array, which
``sample_segments`` then overwrites with the cut-out itself: the pasted pixels are the resized
cut-out's non-zero values, channel by channel. That is what is done here, with one resize.

Here step 1's images are fetched by mmdet's ``MultiImageMixDataset`` (:meth:`YOLOv7PasteIn.get_indexes`
decides how many before any is loaded, from the annotation counts: 4-image groups until
``round(n / 2)`` summed over the groups reaches ``min_samples``; the official stops on the cut-outs
actually made, a few less where a box lies off the mosaic) and the mosaic is
:class:`~.mosaic.YOLOv7Mosaic`'s 4-image layout. Crowd (ignored) objects are never cut out (the
official COCO labels have none). With the same random draws, each step equals the official
(``tests/test_datasets/test_polygons.py``). Without polygons nothing is pasted, as in the official,
and the log says so once.
"""
from __future__ import annotations

import random
from typing import Sequence

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from mmdet.structures.mask import PolygonMasks

from .mosaic import EXTRA_IMAGES, YOLOv7Mosaic
from .polygons import log_once

#: Share of a mosaic's objects cut out (official ``sample_segments(probability=0.5)``).
SAMPLE_RATIO = 0.5
#: Candidate rectangles' largest side, as a fraction of the image (official ``pastein``).
PASTE_SCALES = (0.75,) * 2 + (0.5,) * 4 + (0.25,) * 4 + (0.125,) * 4 + (0.0625,) * 6
#: Probability of skipping a candidate rectangle.
SKIP_PROB = 0.2
#: Largest share of an existing box a pasted rectangle may cover.
MAX_COVER = 0.30
#: Pasting needs a rectangle over 20 px, a resized cut-out over 10 px and 60 non-zero values.
MIN_RECT_SIDE, MIN_PASTE_SIDE, MIN_PASTE_VALUES = 20, 10, 60

NO_POLYGONS = ('YOLOv7PasteIn: the images carry no instance polygons (gt_masks), so nothing is '
               'pasted (the official paste_in needs segments too)')

#: One cut-out: ``(class label, (h, w, C) uint8 image, zero outside the object)``.
Sample = tuple[int, np.ndarray]


def polygon_mask(parts: Sequence[np.ndarray], box: Sequence[int],
                 image_hw: tuple[int, int]) -> np.ndarray:
    """The filled polygon (255 inside, 0 outside) over ``box = (x1, y1, x2, y2)``, uint8 ``(h, w)``.

    As the official ``cv2.drawContours(mask, [segment.astype(np.int32)], -1, 255, cv2.FILLED)`` on the
    whole ``image_hw`` mosaic, then cropped to the box, but drawn on a canvas that only holds the box
    and the polygon. OpenCV clips the outline at the image edges, which moves its pixels, so the
    small canvas keeps the image's edges wherever the polygon reaches them: the fill is the same.
    """
    x1, y1, x2, y2 = box
    contours = [np.asarray(part).reshape(-1, 2).astype(np.int32) for part in parts]  # (K, 2) x, y
    vertices = np.concatenate(contours)
    origin = np.maximum(np.minimum(vertices.min(0), (x1, y1)), 0)
    end = np.minimum(np.maximum(vertices.max(0) + 1, (x2, y2)), image_hw[::-1])  # x, y
    size = end - origin  # width, height
    canvas = np.zeros((size[1], size[0]), np.uint8)
    cv2.drawContours(canvas, [(c - origin).astype(np.int32) for c in contours], -1, 255,
                     cv2.FILLED)
    return canvas[y1 - origin[1]:y2 - origin[1], x1 - origin[0]:x2 - origin[0]]


def cut_out_objects(img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray,
                    masks: PolygonMasks) -> list[Sample]:
    """The official ``sample_segments(probability=0.5)`` on a mosaic: cut out half of its objects.

    Args:
        img: ``(H, W, C)`` uint8 mosaic.
        boxes: ``(N, 4)`` boxes on it; labels: ``(N,)`` classes; ignore: ``(N,)`` crowd flags (never
            cut out); masks: their ``N`` polygons.

    Returns:
        The cut-outs, in the order drawn.
    """
    height, width = img.shape[:2]
    candidates = np.flatnonzero(~ignore)
    picks = random.sample(range(len(candidates)), k=round(SAMPLE_RATIO * len(candidates)))
    samples = []
    for index in candidates[picks]:
        x1, x2 = np.clip(boxes[index, [0, 2]].astype(int), 0, width - 1)
        y1, y2 = np.clip(boxes[index, [1, 3]].astype(int), 0, height - 1)
        if x2 <= x1 or y2 <= y1:
            continue
        mask = polygon_mask(masks.masks[index], (x1, y1, x2, y2), (height, width))[..., None]
        inside = img[y1:y2, x1:x2] & mask
        # the official writes the object's non-zero values over its 255 mask: a 0 inside stays 255
        samples.append((int(labels[index]), np.where(inside > 0, inside, mask)))
    return samples


def cover_ratio(rect: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` share of each of the ``(N, 4)`` boxes covered by ``rect`` (official ``bbox_ioa``)."""
    inter_w = (np.minimum(rect[2], boxes[:, 2]) - np.maximum(rect[0], boxes[:, 0])).clip(0)
    inter_h = (np.minimum(rect[3], boxes[:, 3]) - np.maximum(rect[1], boxes[:, 1])).clip(0)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + 1e-16
    return inter_w * inter_h / areas


def paste_in(img: np.ndarray, boxes: np.ndarray, samples: Sequence[Sample]
             ) -> tuple[np.ndarray, list[int]]:
    """The official ``pastein``: paste cut-outs into ``img`` (in place) where they hide little.

    Args:
        img: ``(H, W, C)`` uint8 image, written in place.
        boxes: ``(N, 4)`` float boxes already on it.
        samples: The cut-outs to choose from.

    Returns:
        The ``(N + M, 4)`` boxes (the ``M`` pasted ones appended) and the pasted objects' labels.
    """
    height, width = img.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = []
    for scale in PASTE_SCALES:
        if random.random() < SKIP_PROB:
            continue
        rect_h = random.randint(1, int(height * scale))
        rect_w = random.randint(1, int(width * scale))
        x1 = max(0, random.randint(0, width) - rect_w // 2)
        y1 = max(0, random.randint(0, height) - rect_h // 2)
        x2, y2 = min(width, x1 + rect_w), min(height, y1 + rect_h)
        rect = np.array([x1, y1, x2, y2], dtype=np.float32)
        if (len(boxes) and (cover_ratio(rect, boxes) >= MAX_COVER).any()) or not samples \
                or x2 <= x1 + MIN_RECT_SIDE or y2 <= y1 + MIN_RECT_SIDE:
            continue
        label, sample_img = samples[random.randint(0, len(samples) - 1)]
        sample_h, sample_w = sample_img.shape[:2]
        ratio = min((y2 - y1) / sample_h, (x2 - x1) / sample_w)
        paste_w, paste_h = int(sample_w * ratio), int(sample_h * ratio)
        if paste_w <= MIN_PASTE_SIDE or paste_h <= MIN_PASTE_SIDE:
            continue
        resized = mmcv.imresize(sample_img, (paste_w, paste_h))  # (paste_h, paste_w, C)
        inside = resized > 0
        if inside.sum() <= MIN_PASTE_VALUES:
            continue
        img[y1:y1 + paste_h, x1:x1 + paste_w][inside] = resized[inside]
        boxes = np.concatenate([boxes, [[x1, y1, x1 + paste_w, y1 + paste_h]]]).astype(np.float32)
        labels.append(label)
    return boxes, labels


@TRANSFORMS.register_module()
class YOLOv7PasteIn(BaseTransform):
    """Paste objects cut out of other images along their polygons. Use inside ``MultiImageMixDataset``.

    Place it after ``YOLOv7HSVRandomAug`` and before ``RandomFlip``, as the official. The fetched
    images need ``gt_masks`` (``YOLOv7LoadAnnotations`` on data with segmentations); the image itself
    needs none (``YOLOv7RandomAffine`` consumed them).

    Required keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``mix_results``.
    Modified keys: ``img`` (a new array whenever there are cut-outs: the input array is never
    written), ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``.

    Args:
        prob: Probability of a paste-in (official ``hyp['paste_in']``: 0.15; tiny 0.05).
        img_scale: ``(width, height)`` of the mosaics the objects are cut from (the model input size).
        min_samples: Cut-outs to gather (official 30).
        max_mosaics: At most this many 4-image mosaics are fetched per paste-in (the official has no
            bound; 30 cut-outs take about 2 COCO mosaics).
    """

    def __init__(self, *, prob: float = 0.15, img_scale: Sequence[int] = (640, 640),
                 min_samples: int = 30, max_mosaics: int = 8) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must lie in [0, 1], got {prob}')
        if min_samples < 1 or max_mosaics < 1:
            raise ValueError(f'min_samples and max_mosaics must be >= 1, got {min_samples}, '
                             f'{max_mosaics}')
        self.prob = prob
        self.img_scale = tuple(int(v) for v in img_scale)
        self.min_samples = min_samples
        self.max_mosaics = max_mosaics
        self._mosaic = YOLOv7Mosaic(img_scale=self.img_scale, mosaic9_prob=0.0, prob=1.0)

    @staticmethod
    def polygon_count(dataset, index: int) -> int:
        """Objects of image ``index`` that could be cut out: not ignored, with a segmentation."""
        instances = dataset.get_data_info(index).get('instances', [])
        return sum(1 for inst in instances if 'mask' in inst and not inst.get('ignore_flag', 0))

    def get_indexes(self, dataset) -> list[int]:
        """No index (no paste-in this time, or no polygons), or 4-image groups for the cut-outs."""
        if random.random() >= self.prob:
            return []
        group_size = 1 + EXTRA_IMAGES[4]
        indexes, expected = [], 0
        while expected < self.min_samples and len(indexes) < group_size * self.max_mosaics:
            group = [random.randrange(len(dataset)) for _ in range(group_size)]
            indexes += group
            expected += round(SAMPLE_RATIO * sum(self.polygon_count(dataset, i) for i in group))
            if expected == 0:  # official: stop when the first mosaic gives nothing
                if any(dataset.get_data_info(i).get('instances') for i in group):
                    log_once(NO_POLYGONS)
                return []
        return indexes

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        fetched = results.get('mix_results', [])
        if not fetched:
            return results
        if 'gt_masks' in results:
            raise ValueError('YOLOv7PasteIn: the image still has gt_masks, which pasted objects '
                             'would not be in; put YOLOv7PasteIn after YOLOv7RandomAffine')
        group_size = 1 + EXTRA_IMAGES[4]
        if len(fetched) % group_size:
            raise ValueError(f'YOLOv7PasteIn needs groups of {group_size} mix_results, got '
                             f'{len(fetched)}; was it given the indexes of its own get_indexes?')
        samples = []
        for start in range(0, len(fetched), group_size):
            samples += self.cut_out(fetched[start:start + group_size])
        if not samples:
            return results

        img = results['img'].copy()  # the input may be shared (e.g. cached); paste into our own
        boxes, labels = paste_in(img, results['gt_bboxes'].numpy(), samples)
        results['img'] = img
        results['gt_bboxes'] = HorizontalBoxes(boxes, dtype=results['gt_bboxes'].dtype)
        results['gt_bboxes_labels'] = np.concatenate(
            [results['gt_bboxes_labels'], np.asarray(labels, dtype=np.int64)])
        results['gt_ignore_flags'] = np.concatenate(
            [results['gt_ignore_flags'], np.zeros(len(labels), dtype=bool)])
        return results

    def cut_out(self, group: Sequence[dict]) -> list[Sample]:
        """Cut-outs of one 4-image mosaic of the results ``group`` (official ``load_samples``)."""
        mosaic = self._mosaic.transform(dict(group[0], mix_results=list(group[1:])))
        if 'gt_masks' not in mosaic:
            log_once(NO_POLYGONS)
            return []
        return cut_out_objects(mosaic['img'], mosaic['gt_bboxes'].numpy(),
                               mosaic['gt_bboxes_labels'], mosaic['gt_ignore_flags'],
                               mosaic['gt_masks'])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, img_scale={self.img_scale}, '
                f'min_samples={self.min_samples}, max_mosaics={self.max_mosaics})')
