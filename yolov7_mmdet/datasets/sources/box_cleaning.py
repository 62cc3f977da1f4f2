"""Repair or drop bad boxes of one image, vectorised, counting each case in :class:`DataIssues`."""
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .issues import DataIssues

MIN_BOX_SIZE = 1.0  # px; mmdet's CocoDataset also drops boxes under 1 px, but silently.
# px; clipping by less is rounding of normalised labels (coco128 has 42 such boxes), not a repair.
CLIP_REPORT_TOLERANCE = 0.5


def clean_boxes(bboxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray, *, width: int,
                height: int, issues: DataIssues,
                source: Optional[Path] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the usable boxes of one image, clipped to it.

    In this order: non-finite coordinates are ``malformed_row``; boxes under ``MIN_BOX_SIZE`` before
    clipping (including ``x2 < x1``) are ``degenerate_box``; boxes that shrink under it when clipped
    to ``[0, width] x [0, height]`` are ``outside_box``; kept boxes moved by clipping more than
    ``CLIP_REPORT_TOLERANCE`` are ``clipped_box`` (all are clipped); repeated ``(label, box)`` rows
    are ``duplicate_box`` (first one kept).

    Args:
        bboxes (np.ndarray): ``(N, 4)`` float boxes ``x1, y1, x2, y2`` in pixels.
        labels (np.ndarray): ``(N,)`` int class indices.
        ignore (np.ndarray): ``(N,)`` bool, boxes to ignore in training and evaluation.
        width (int): Image width in pixels.
        height (int): Image height in pixels.
        issues (DataIssues): Where the cases are counted.
        source (Path, optional): The file the boxes come from, named in ``issues``.

    Returns:
        tuple: ``(bboxes (M, 4) float32, labels (M,) int64, ignore (M,) bool)``, ``M <= N``.
    """
    bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    finite = np.isfinite(bboxes).all(axis=1)
    issues.add('malformed_row', np.count_nonzero(~finite), source=source)
    bboxes = np.where(finite[:, None], bboxes, 0.0)

    sizes = bboxes[:, 2:] - bboxes[:, :2]  # (N, 2) width, height
    degenerate = finite & (sizes < MIN_BOX_SIZE).any(axis=1)
    clipped = np.clip(bboxes, 0.0, np.array([width, height, width, height], dtype=np.float32))
    clipped_sizes = clipped[:, 2:] - clipped[:, :2]
    outside = finite & ~degenerate & (clipped_sizes < MIN_BOX_SIZE).any(axis=1)
    keep = finite & ~degenerate & ~outside
    issues.add('degenerate_box', np.count_nonzero(degenerate), source=source)
    issues.add('outside_box', np.count_nonzero(outside), source=source)
    moved = (np.abs(clipped - bboxes) > CLIP_REPORT_TOLERANCE).any(axis=1)
    issues.add('clipped_box', np.count_nonzero(keep & moved), source=source)

    bboxes = clipped[keep]
    labels, ignore = np.asarray(labels, np.int64)[keep], np.asarray(ignore, bool)[keep]
    # Rows (label, x1, y1, x2, y2); np.unique gives each distinct row's first index.
    rows = np.concatenate([labels[:, None].astype(np.float32), bboxes], axis=1)
    first = np.sort(np.unique(rows, axis=0, return_index=True)[1])
    issues.add('duplicate_box', len(rows) - len(first), source=source)
    return bboxes[first], labels[first], ignore[first]
