"""A train/val split of a one-folder dataset, stratified by class, and the class check of splits.

:func:`split_by_class` groups the images by their *rarest* class (the class of the image that
the fewest images of the dataset contain; images without boxes form one more group) and sends about
the same fraction of every group to val: the members of a group, in a seeded random order, are
spread over ``[0, 1)`` at their quantiles ``(rank + 0.5) / size``, and the ``round(val_fraction *
N)`` images of lowest quantile over all groups go to val; the last member of every group stays in
train. A class found in a single image therefore stays in train. The split depends only on the
order of the images (the readers' sorted order) and the seed.
"""
from dataclasses import replace
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .records import DetectionData

BACKGROUND_GROUP = -1  # group of the images without a box


def split_by_class(data: DetectionData, *, val_fraction: float,
                   seed: int = 0) -> Tuple[DetectionData, DetectionData]:
    """``(train, val)`` parts of ``data`` (same classes, same issue counter), stratified by class.

    Args:
        data (DetectionData): What a reader returned.
        val_fraction (float): Share of the images for val, in ``(0, 1)``.
        seed (int): Seed of the shuffle inside each group. Defaults to 0.

    Raises:
        ValueError: When ``val_fraction`` is not in ``(0, 1)`` or leaves an empty part.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f'the val fraction must be between 0 and 1, got {val_fraction}')
    num_val = round(val_fraction * len(data.images))
    groups = image_groups(data)
    group_ids, group_sizes = np.unique(groups, return_counts=True)
    # every group keeps an image in train, so at most N - (number of groups) can go to val
    num_val = min(num_val, len(groups) - len(group_ids))
    if num_val < 1 or num_val >= len(data.images):
        raise ValueError(f'a val fraction of {val_fraction} of {len(data.images)} images leaves '
                         f'{num_val} val images (and {len(data.images) - num_val} train images); '
                         'choose a fraction that leaves both parts non-empty')
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(groups))
    by_group = shuffled[np.argsort(groups[shuffled], kind='stable')]  # grouped, shuffled inside
    sorted_groups = groups[by_group]
    rank = np.arange(len(groups)) - np.searchsorted(sorted_groups, sorted_groups, side='left')
    size = group_sizes[np.searchsorted(group_ids, sorted_groups)]
    quantile = np.where(rank < size - 1, (rank + 0.5) / size, np.inf)  # last member: train
    is_val = np.zeros(len(groups), dtype=bool)
    is_val[by_group[np.argsort(quantile, kind='stable')[:num_val]]] = True
    train = [record for record, val in zip(data.images, is_val) if not val]
    val = [record for record, val in zip(data.images, is_val) if val]
    return replace(data, images=train), replace(data, images=val)


def image_groups(data: DetectionData) -> np.ndarray:
    """``(N,)`` int64: each image's rarest class (fewest images with it), ``BACKGROUND_GROUP`` for
    an image without boxes."""
    # (N, C) bool: which classes each image contains
    present = np.zeros((len(data.images), len(data.classes)), dtype=bool)
    boxes_per_image = [len(record.labels) for record in data.images]
    present[np.repeat(np.arange(len(data.images)), boxes_per_image),
            _all_labels(data)] = True
    images_per_class = present.sum(axis=0)
    # classes an image lacks get a count above any real one, so argmin picks a present class
    rarity = np.where(present, images_per_class, len(data.images) + 1)
    return np.where(present.any(axis=1), rarity.argmin(axis=1), BACKGROUND_GROUP).astype(np.int64)


def box_counts(data: DetectionData) -> np.ndarray:
    """``(C,)`` int64: the number of boxes of each class of ``data``."""
    return np.bincount(_all_labels(data), minlength=len(data.classes)).astype(np.int64)


def _all_labels(data: DetectionData) -> np.ndarray:
    """``(B,)`` int64: the labels of every box of ``data``, image after image."""
    return np.concatenate([np.zeros(0, np.int64)] + [record.labels for record in data.images])


def split_class_warnings(classes: Sequence[str],
                         counts_of_split: Dict[str, np.ndarray]) -> List[str]:
    """Warnings for classes that have boxes in the first split (train) but none in another one
    (val, test): the metric of that split says nothing about them.

    Args:
        classes (Sequence[str]): Class names.
        counts_of_split (dict[str, np.ndarray]): Split name -> ``(C,)`` boxes per class, the
            training split first (e.g. ``{'train': ..., 'val': ...}``).
    """
    (train_name, train_counts), *others = counts_of_split.items()
    warnings = []
    for name, counts in others:
        missing = [cls for cls, in_train, here in zip(classes, train_counts, counts)
                   if in_train and not here]
        if missing:
            warnings.append(f'{len(missing)} of {len(classes)} classes have boxes in {train_name} '
                            f'but none in {name}: {missing} ({name} mAP does not measure them)')
    return warnings
