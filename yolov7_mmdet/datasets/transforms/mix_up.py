"""YOLOv7's MixUp: blend the training image with a second, independently made mosaic.

Official: with probability ``hyp['mixup']`` (0.15; tiny 0.05) a second mosaic (4- or 9-image, with
its own random affine) is built, ``r ~ Beta(8, 8)`` is drawn, the image becomes
``uint8(img * r + img2 * (1 - r))`` and the two box lists are concatenated.

Why not mmdet's :class:`~mmdet.datasets.transforms.MixUp`: it mixes with one *raw* image that it
rescales, flips and crops itself, at a fixed ratio of 0.5; YOLOv7 mixes two finished mosaics of the
same size at a Beta(8, 8) ratio. Here the second mosaic is made by running ``pre_transform`` (the
same mosaic + affine configs as the main pipeline) on freshly fetched images.

The coin is tossed in :meth:`YOLOv7MixUp.get_indexes`, so that images are only loaded for the
mixups that happen: it returns no index (no mixup) or ``1 + k`` indexes, the second mosaic's first
image and the ``k`` extra images its mosaic asked for.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type

from ._instances import concat_instances


@TRANSFORMS.register_module()
class YOLOv7MixUp(BaseTransform):
    """Blend with a second mosaic at a Beta(alpha, beta) ratio. Use inside ``YOLOv7MixDataset``.

    Required keys: ``img``, instance keys, ``mix_results``.
    Modified keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``.

    Args:
        pre_transform: Transform configs that make the second image from loaded results; the first
            one must be a mosaic with ``get_indexes`` (e.g. ``YOLOv7Mosaic`` then
            ``YOLOv7RandomAffine``), so the second image has the first one's size.
        prob: Probability of a mixup (official ``hyp['mixup']``).
        alpha: First Beta parameter of the ratio (official 8.0).
        beta: Second Beta parameter (official 8.0).
    """

    def __init__(self, *, pre_transform: Sequence[dict], prob: float = 0.15, alpha: float = 8.0,
                 beta: float = 8.0) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'prob must lie in [0, 1], got {prob}')
        if alpha <= 0 or beta <= 0:
            raise ValueError(f'Beta parameters must be positive, got alpha={alpha}, beta={beta}')
        self.pre_transform = Compose(
            [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pre_transform])
        mosaic = self.pre_transform.transforms[0] if self.pre_transform.transforms else None
        if not hasattr(mosaic, 'get_indexes'):
            raise ValueError('the first pre_transform of YOLOv7MixUp must fetch images '
                             f'(have get_indexes), got {mosaic!r}')
        self._mosaic = mosaic
        self.prob = prob
        self.alpha = alpha
        self.beta = beta

    def get_indexes(self, dataset) -> list[int]:
        """No index (no mixup this time), or the second mosaic's image followed by its extras."""
        if random.random() >= self.prob:
            return []
        return [random.randrange(len(dataset)), *self._mosaic.get_indexes(dataset)]

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        fetched = results.get('mix_results', [])
        if not fetched:
            return results
        other = dict(fetched[0], mix_results=list(fetched[1:]))
        other = self.pre_transform(other)
        if other['img'].shape != results['img'].shape:
            raise ValueError(f"YOLOv7MixUp: the second image has shape {other['img'].shape}, the "
                             f"first {results['img'].shape}; pre_transform must produce the same size")
        ratio = np.random.beta(self.alpha, self.beta)
        mixed = results['img'].astype(np.float32) * ratio + other['img'].astype(np.float32) * (1 - ratio)
        results['img'] = mixed.astype(np.uint8)
        concat_instances(results, [results, other])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, alpha={self.alpha}, beta={self.beta}, '
                f'pre_transform={self.pre_transform})')
