"""Helpers shared by the multi-image transforms: select or concatenate the box annotations of results.

mmdet's ``LoadAnnotations`` stores one image's instances in three aligned fields: ``gt_bboxes``
(a :class:`~mmdet.structures.bbox.BaseBoxes`), ``gt_bboxes_labels`` (int64 ndarray) and
``gt_ignore_flags`` (bool ndarray), and with ``with_mask=True`` a fourth, ``gt_masks``
(``PolygonMasks``). These helpers keep them aligned.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags')


def select_instances(results: dict, keep: np.ndarray) -> None:
    """Keep only the instances where the boolean mask ``keep`` (shape ``(N,)``) is True, in place."""
    for key in (*INSTANCE_KEYS, 'gt_masks'):
        if key in results:
            results[key] = results[key][keep]


def concat_instances(target: dict, parts: Sequence[dict]) -> None:
    """Set the instance fields of ``target`` to the concatenation of those of ``parts`` (in order)."""
    boxes = [part['gt_bboxes'] for part in parts]
    target['gt_bboxes'] = boxes[0].cat(boxes, dim=0)
    for key in INSTANCE_KEYS[1:]:
        target[key] = np.concatenate([part[key] for part in parts], axis=0)
