"""Fit anchors to a dataset's boxes the way the official YOLOv7 training does (``autoanchor.py``).

The assigner makes a box a candidate of an anchor when their width and height ratios are both
within ``anchor_t`` (4.0): ``max(w / a_w, a_w / w, h / a_h, a_h / h) < anchor_t``. The *best possible
recall* (BPR) is the fraction of training boxes that at least one anchor can take; a box that none
can take is never learned. Official ``check_anchors``: boxes are scaled to the training size (the
long side of each image to ``img_size``, then by ``U(0.9, 1.1)``); when BPR < 0.98, k-means on the
(whitened) box sizes gives a first guess, which a genetic search over 1000 generations improves
(the fitness: mean of the best ratio of each box, counting only boxes above ``1 / anchor_t``); the
new anchors are kept only when their BPR is higher than the old one.

(The official k-means is scipy's ``kmeans`` with 30 restarts; here one Lloyd run from random boxes,
which the genetic search then refines.) mmdet's ``tools/analysis_tools/optimize_anchors.py`` is not
reused: it is a script (not an
importable API) and it fits for mean IoU, not for the ratio rule above that YOLOv7's assigner uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .utils import leaf_datasets

MIN_BPR = 0.98  # official: re-fit below this best possible recall
MIN_ANCHOR_SIDE = 2.0  # px; official: boxes with both sides under this are ignored by k-means


@dataclass(frozen=True)
class AnchorFit:
    """The result of :func:`fit_anchors`.

    Attributes:
        anchors (np.ndarray): ``(K, 2)`` anchors to use, ``(w, h)`` pixels, sorted by area (the
            input anchors when they were kept).
        bpr_before (float): Best possible recall of the input anchors.
        bpr_after (float): Best possible recall of ``anchors`` (``>= bpr_before``).
        refitted (bool): Whether ``anchors`` are new.
    """

    anchors: np.ndarray
    bpr_before: float
    bpr_after: float
    refitted: bool


def best_ratios(anchors: np.ndarray, box_sizes: np.ndarray) -> np.ndarray:
    """``(N, K)`` worst side ratio (<= 1) of each box to each anchor (1: same size)."""
    ratios = box_sizes[:, None] / anchors[None]  # (N, 1, 2) / (1, K, 2) -> (N, K, 2)
    return np.minimum(ratios, 1.0 / ratios).min(axis=2)


def best_possible_recall(anchors: np.ndarray, box_sizes: np.ndarray, anchor_t: float) -> float:
    """Fraction of boxes ``(N, 2)`` that at least one of ``anchors`` ``(K, 2)`` fits within ``anchor_t``."""
    if not len(box_sizes):
        return 1.0
    return float((best_ratios(anchors, box_sizes).max(axis=1) > 1.0 / anchor_t).mean())


def anchor_fitness(anchors: np.ndarray, box_sizes: np.ndarray, anchor_t: float) -> float:
    """The official genetic search's fitness: mean best ratio, boxes under ``1 / anchor_t`` as 0."""
    best = best_ratios(anchors, box_sizes).max(axis=1)
    return float((best * (best > 1.0 / anchor_t)).mean())


def boxes_at_training_size(box_sizes: np.ndarray, image_long_sides: np.ndarray, img_size: int, *,
                           rng: np.random.Generator = None) -> np.ndarray:
    """Box ``(w, h)`` ``(N, 2)`` scaled as the training images are (long side to ``img_size``).

    Args:
        box_sizes: ``(N, 2)`` box sizes in original-image pixels.
        image_long_sides: ``(N,)`` the long side of each box's image.
        img_size: The training input size.
        rng: When given, each box is also scaled by ``U(0.9, 1.1)`` (official ``check_anchors``,
            which draws one factor per image; here per box, the same distribution).
    """
    scale = img_size / image_long_sides
    if rng is not None:
        scale = scale * rng.uniform(0.9, 1.1, size=scale.shape)
    return box_sizes * scale[:, None]


def kmeans_centres(points: np.ndarray, num_centres: int, *, rng: np.random.Generator,
                   iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means of ``(N, 2)`` points from ``num_centres`` random distinct points."""
    centres = points[rng.choice(len(points), num_centres, replace=False)]
    for _ in range(iterations):
        nearest = ((points[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)  # (N,)
        counts = np.bincount(nearest, minlength=num_centres)[:, None]  # (K, 1)
        sums = np.zeros_like(centres)
        np.add.at(sums, nearest, points)
        # an empty cluster keeps its centre
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.allclose(updated, centres):
            break
        centres = updated
    return centres


def evolve_anchors(box_sizes: np.ndarray, num_anchors: int, *, anchor_t: float,
                   generations: int = 1000, rng: np.random.Generator) -> np.ndarray:
    """k-means, then the official genetic search; ``(num_anchors, 2)`` sorted by area.

    Raises:
        ValueError: With fewer usable boxes (a side >= ``MIN_ANCHOR_SIDE``) than anchors.
    """
    usable = box_sizes[(box_sizes >= MIN_ANCHOR_SIDE).any(axis=1)]
    if len(usable) < num_anchors:
        raise ValueError(f'{len(usable)} boxes of at least {MIN_ANCHOR_SIDE} px cannot fit '
                         f'{num_anchors} anchors')
    spread = usable.std(axis=0) + 1e-9  # whitened, as the official k-means
    anchors = kmeans_centres(usable / spread, num_anchors, rng=rng) * spread
    fitness = anchor_fitness(anchors, usable, anchor_t)
    for _ in range(generations):
        mutation = np.ones_like(anchors)
        while (mutation == 1).all():  # mutate until something changes (official: p 0.9, sigma 0.1)
            mutation = ((rng.random(anchors.shape) < 0.9) * rng.random()
                        * rng.standard_normal(anchors.shape) * 0.1 + 1).clip(0.3, 3.0)
        candidate = (anchors * mutation).clip(min=MIN_ANCHOR_SIDE)
        candidate_fitness = anchor_fitness(candidate, usable, anchor_t)
        if candidate_fitness > fitness:
            anchors, fitness = candidate, candidate_fitness
    return anchors[np.argsort(anchors.prod(axis=1))]


def fit_anchors(anchors: np.ndarray, box_sizes: np.ndarray, image_long_sides: np.ndarray, *,
                img_size: int, anchor_t: float = 4.0, min_bpr: float = MIN_BPR,
                generations: int = 1000, seed: int = 0) -> AnchorFit:
    """Keep ``anchors`` when their BPR on the training boxes reaches ``min_bpr``, else re-fit them.

    Args:
        anchors: ``(K, 2)`` current anchors in pixels at the training size (all levels).
        box_sizes: ``(N, 2)`` training box sizes in original-image pixels.
        image_long_sides: ``(N,)`` the long side of each box's image.
        img_size: The training input size.
        anchor_t: The assigner's size-ratio limit. Defaults to 4.0 (official ``anchor_t``).
        min_bpr: Re-fit below this BPR. Defaults to 0.98.
        generations: Genetic search steps. Defaults to 1000.
        seed: Seed of the random scale, k-means and search (same seed, same anchors on every rank).

    Returns:
        AnchorFit: The anchors to use and the BPR before and after; never a lower BPR.
    """
    rng = np.random.default_rng(seed)
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    jittered = boxes_at_training_size(box_sizes, image_long_sides, img_size, rng=rng)
    bpr = best_possible_recall(anchors, jittered, anchor_t)
    if bpr >= min_bpr or not len(box_sizes):
        return AnchorFit(anchors=anchors, bpr_before=bpr, bpr_after=bpr, refitted=False)
    scaled = boxes_at_training_size(box_sizes, image_long_sides, img_size)
    new_anchors = evolve_anchors(scaled, len(anchors), anchor_t=anchor_t,
                                 generations=generations, rng=rng)
    new_bpr = best_possible_recall(new_anchors, jittered, anchor_t)
    if new_bpr <= bpr:
        return AnchorFit(anchors=anchors, bpr_before=bpr, bpr_after=bpr, refitted=False)
    return AnchorFit(anchors=new_anchors, bpr_before=bpr, bpr_after=new_bpr, refitted=True)


def dataset_box_sizes(dataset) -> Tuple[np.ndarray, np.ndarray]:
    """``(box sizes (N, 2), long side of each box's image (N,))`` of an mmdet detection dataset.

    Dataset wrappers (``MultiImageMixDataset``, ``ConcatDataset``, ...) are unwrapped; ignored boxes
    are left out. Reads each image's annotations once (one pass over the data lists, at the start of
    training).
    """
    sizes, long_sides = [], []
    infos = (leaf.get_data_info(index) for leaf in leaf_datasets(dataset) for index in range(len(leaf)))
    for info in infos:
        boxes = [instance['bbox'] for instance in info.get('instances', ())
                 if not instance.get('ignore_flag', 0)]
        sizes.append(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
        long_sides.append(np.full(len(boxes), max(info['width'], info['height']), dtype=np.float64))
    boxes = np.concatenate(sizes) if sizes else np.zeros((0, 4))
    return boxes[:, 2:] - boxes[:, :2], (np.concatenate(long_sides) if long_sides else np.zeros(0))
