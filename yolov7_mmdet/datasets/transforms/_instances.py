"""Helpers shared by the multi-image transforms: select, concatenate or copy the annotations of results.

mmdet's ``LoadAnnotations`` stores one image's instances in aligned fields: ``gt_bboxes``
(a :class:`~mmdet.structures.bbox.BaseBoxes`), ``gt_bboxes_labels`` (int64 ndarray),
``gt_ignore_flags`` (bool ndarray) and, with ``with_mask``, ``gt_masks`` (``PolygonMasks`` or
``BitmapMasks``). These helpers keep them aligned; ``gt_masks`` is handled when present.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags')
MASK_KEY = 'gt_masks'


def select_instances(results: dict, keep: np.ndarray) -> None:
    """Keep only the instances where the boolean mask ``keep`` (shape ``(N,)``) is True, in place."""
    for key in (*INSTANCE_KEYS, MASK_KEY):
        if key in results:
            results[key] = results[key][keep]


def concat_instances(target: dict, parts: Sequence[dict]) -> None:
    """Set the instance fields of ``target`` to the concatenation of those of ``parts`` (in order).

    Masks are concatenated when every part has them (a part without masks drops them all).
    """
    boxes = [part['gt_bboxes'] for part in parts]
    target['gt_bboxes'] = boxes[0].cat(boxes, dim=0)
    for key in INSTANCE_KEYS[1:]:
        target[key] = np.concatenate([part[key] for part in parts], axis=0)
    masks = [part.get(MASK_KEY) for part in parts]
    if all(mask is not None for mask in masks):
        target[MASK_KEY] = type(masks[0]).cat(masks)
    else:
        target.pop(MASK_KEY, None)


def own_instances(results: dict) -> dict:
    """A shallow copy of ``results`` whose box, label and flag fields are copies.

    Transforms change those in place (e.g. ``gt_bboxes.translate_``); the image and masks are
    shared: no transform writes into an image array, and mmdet's mask structures return new objects.
    """
    owned = dict(results)
    if owned.get('gt_bboxes') is not None:
        owned['gt_bboxes'] = owned['gt_bboxes'].clone()
    for key in INSTANCE_KEYS[1:]:
        if key in owned:
            owned[key] = owned[key].copy()
    return owned
