"""``YOLOv7MixDataset``: mmdet's ``MultiImageMixDataset`` without its copies, with an image cache.

mmdet's wrapper deep-copies the loaded results before every transform, and every image a mosaic or
mixup fetches (``copy.deepcopy(self.dataset[index])``): about 2,900 ``deepcopy`` calls and a dozen
copies of full images per YOLOv7 sample, a third of the pipeline's time. The wrapped dataset already
returns new dicts on every ``[]`` (mmengine's ``BaseDataset`` unpickles or copies its data info and
runs its pipeline afresh), so those copies only protect against transforms that change their input
in place and then ask for a retry (return None).

**Ownership rule.** Each transform call receives its own dicts: a shallow copy of the results (and
of every ``mix_results`` entry) whose box, label and flag fields are copies, so transforms may change
those in place, and a retried call starts from the same state. Image arrays (and masks, which mmdet's
mask structures never change in place) are shared, not copied: **no transform may write into a
loaded image in place**; transforms put a new array in ``results['img']``. Images from the image
cache are read-only, so such a write raises instead of corrupting the cache. Every transform of this
package and mmdet's ``RandomFlip`` and ``PackDetInputs`` follow the rule; an image a transform made
(the mosaic canvas and what follows) belongs to its results and may be changed in place.

**Image cache** (``cache_images``): the fitted images of ``YOLOv7LoadImageAndAnnotations`` (the
wrapped dataset's loader) decoded once, in RAM or on disk; see :mod:`yolov7_mmdet.datasets.image_cache`.
"""
from __future__ import annotations

import collections.abc
from typing import List, Optional, Sequence, Union

from mmdet.datasets import MultiImageMixDataset
from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from .image_cache import (CACHE_MODES, DEFAULT_CACHE_DIR, DEFAULT_RAM_SHARE, build_image_cache,
                          choose_mode, fitted_size)
from .sources.image_probe import probe_image
from .transforms._instances import own_instances
from .transforms.load_fitted import YOLOv7LoadImageAndAnnotations

#: Config types of the mosaic dataset wrappers (the wrapped dataset's config is their ``dataset``).
MIX_WRAPPER_TYPES = ('YOLOv7MixDataset', 'MultiImageMixDataset')


def unwrapped_dataset_cfg(dataset_cfg):
    """The dataset config inside a mosaic wrapper (``YOLOv7MixDataset``, mmdet's
    ``MultiImageMixDataset``), or ``dataset_cfg`` itself."""
    return dataset_cfg['dataset'] if dataset_cfg.get('type') in MIX_WRAPPER_TYPES else dataset_cfg


def own_results(results: dict) -> dict:
    """The dicts one transform call owns (see the module docstring): ``results`` and its
    ``mix_results`` entries shallow-copied, their box, label and flag fields copied."""
    owned = own_instances(results)
    if 'mix_results' in owned:
        owned['mix_results'] = [own_instances(mix) for mix in owned['mix_results']]
    return owned


@DATASETS.register_module()
class YOLOv7MixDataset(MultiImageMixDataset):
    """mmdet's ``MultiImageMixDataset`` (same keys, same behaviour) without copies of image arrays,
    with the image cache of the official ``--cache-images``.

    Args:
        dataset: The wrapped dataset (or its config); it must return new dicts on every ``[]``.
        pipeline: Transform configs, as mmdet's wrapper.
        skip_type_keys: Transform types to skip, as mmdet's wrapper.
        max_refetch: Retries when a loaded image or a transform gives None, as mmdet's wrapper.
        lazy_init: As mmdet's wrapper (the cache is built on ``full_init``).
        cache_images: ``'auto'`` (RAM when the fitted images need at most ``cache_ram_share`` of the
            available memory, else none), ``'ram'``, ``'disk'`` (``.npy`` files in ``cache_dir``) or
            False. Needs ``YOLOv7LoadImageAndAnnotations`` in the wrapped dataset's pipeline
            (``'auto'`` caches nothing without it).
        cache_dir: Folder of the disk cache (default ``~/.cache/yolov7_mmdet/images``).
        cache_ram_share: Share of the available memory that ``'auto'`` may fill.

    The loader's ``img_scale``, when None, is set to the ``img_scale`` of the first transform of
    ``pipeline`` that fetches images (the mosaic): images are fitted on load to the mosaic's size.
    """

    def __init__(self, dataset: Union[BaseDataset, dict], pipeline: Sequence[dict],
                 skip_type_keys: Optional[Sequence[str]] = None, max_refetch: int = 15,
                 lazy_init: bool = False, *, cache_images: Union[str, bool] = 'auto',
                 cache_dir: Optional[str] = None,
                 cache_ram_share: float = DEFAULT_RAM_SHARE) -> None:
        if cache_images not in CACHE_MODES:
            raise ValueError(f'cache_images must be one of {CACHE_MODES}, got {cache_images!r}')
        if not 0.0 < cache_ram_share <= 1.0:
            raise ValueError(f'cache_ram_share must lie in (0, 1], got {cache_ram_share}')
        self.cache_images = cache_images
        self.cache_dir = cache_dir or DEFAULT_CACHE_DIR
        self.cache_ram_share = cache_ram_share
        self.image_cache = None
        super().__init__(dataset, pipeline, skip_type_keys=skip_type_keys, max_refetch=max_refetch,
                         lazy_init=lazy_init)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        loaders = self._loaders()
        self._set_fit_scale(loaders)
        self._build_image_cache(loaders)

    def _loaders(self) -> List[YOLOv7LoadImageAndAnnotations]:
        pipeline = getattr(self.dataset, 'pipeline', None)
        return [t for t in getattr(pipeline, 'transforms', [])
                if isinstance(t, YOLOv7LoadImageAndAnnotations)]

    def _set_fit_scale(self, loaders: Sequence[YOLOv7LoadImageAndAnnotations]) -> None:
        """Loaders without an ``img_scale`` fit to the mosaic's (the first image-fetching transform)."""
        scales = [t.img_scale for t in self.pipeline
                  if hasattr(t, 'get_indexes') and getattr(t, 'img_scale', None)]
        for loader in loaders:
            if loader.img_scale is None and scales:
                loader.img_scale = tuple(int(v) for v in scales[0])

    def _build_image_cache(self, loaders: Sequence[YOLOv7LoadImageAndAnnotations]) -> None:
        if not self.cache_images:
            return
        if len(loaders) != 1:
            if self.cache_images != 'auto':
                raise ValueError(
                    f'cache_images={self.cache_images!r} caches the images of '
                    'YOLOv7LoadImageAndAnnotations: put exactly one in the wrapped dataset\'s '
                    f'pipeline (found {len(loaders)})')
            print_log('image cache off: the wrapped dataset does not load its images with '
                      'YOLOv7LoadImageAndAnnotations', logger='current')
            return
        loader = loaders[0]
        infos = [self.dataset.get_data_info(i) for i in range(len(self.dataset))]
        # the size decides only 'auto' (it may read every image's header)
        needed = _fitted_bytes(infos, loader.img_scale) if self.cache_images == 'auto' else 0
        mode = choose_mode(self.cache_images, needed_bytes=needed,
                           ram_share=self.cache_ram_share, cache_dir=self.cache_dir)
        if mode is None:
            return
        self.image_cache = build_image_cache(
            [info['img_path'] for info in infos], mode=mode, load=loader.load_image,
            params=loader.cache_params, cache_dir=self.cache_dir)
        loader.image_cache = self.image_cache

    def __getitem__(self, idx: int) -> dict:
        results = self.dataset[idx]
        for transform, transform_type in zip(self.pipeline, self.pipeline_types):
            if self._skip_type_keys is not None and transform_type in self._skip_type_keys:
                continue
            if hasattr(transform, 'get_indexes'):
                results['mix_results'] = self._fetch_mix_results(transform)
            results = self._apply(transform, results)
            results.pop('mix_results', None)
        return results

    def _fetch_mix_results(self, transform) -> list:
        for _ in range(self.max_refetch):
            indexes = transform.get_indexes(self.dataset)
            if not isinstance(indexes, collections.abc.Sequence):
                indexes = [indexes]
            mix_results = [self.dataset[index] for index in indexes]
            if None not in mix_results:
                return mix_results
        raise RuntimeError('The loading pipeline of the original dataset always returned None; '
                           'check the wrapped dataset and its pipeline.')

    def _apply(self, transform, results: dict) -> dict:
        for _ in range(self.max_refetch):
            updated = transform(own_results(results))
            if updated is not None:
                return updated
        raise RuntimeError(f'{transform!r} always returned None; check the pipeline of the '
                           'dataset wrapper.')


def _fitted_bytes(infos: Sequence[dict], img_scale: Optional[Sequence[int]]) -> int:
    """Bytes of all images fitted into ``img_scale`` (3 channels), from the sizes the data infos
    record (``height`` / ``width``, as COCO files do) or the image headers."""
    total = 0
    for info in infos:
        height, width = info.get('height'), info.get('width')
        if not (height and width):
            probe = probe_image(info['img_path'], decode=False)
            width, height = probe.size if probe is not None else (0, 0)
        if height and width and img_scale:
            height, width = fitted_size(height, width, img_scale)[1]
        total += int(height) * int(width) * 3
    return total
