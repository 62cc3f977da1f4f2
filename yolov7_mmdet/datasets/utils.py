"""Helpers over mmengine / mmdet dataset objects."""
from typing import Iterator


def leaf_datasets(dataset) -> Iterator:
    """The datasets holding the data under wrappers (``MultiImageMixDataset``, ``RepeatDataset``,
    ``ClassBalancedDataset``: ``.dataset``; ``ConcatDataset``: ``.datasets``)."""
    if hasattr(dataset, 'datasets'):
        for child in dataset.datasets:
            yield from leaf_datasets(child)
    elif hasattr(dataset, 'dataset'):
        yield from leaf_datasets(dataset.dataset)
    else:
        yield dataset
