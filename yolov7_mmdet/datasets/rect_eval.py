"""The official ``test.py`` evaluation protocol: rectangular batches of aspect-ratio-sorted images.

The published YOLOv7 numbers come from ``test.py --img s --batch 32 --conf 0.001 --iou 0.65``, whose
loader is ``LoadImagesAndLabels(rect=True, pad=0.5, stride=gs)`` (``gs``: the largest stride, at
least 32). It differs from a square letterbox (``Resize`` + ``YOLOv7Letterbox``) in three ways:

1. **Order and batches**: the images, sorted by path, are sorted by aspect ratio ``h / w`` with
   ``np.argsort`` and cut into consecutive batches of ``batch_size`` (so the shapes depend on the
   batch size): :class:`YOLOv7RectBatchSampler`.
2. **Per-batch shape**: each batch is padded to ``ceil([a, b] * s / gs + pad) * gs`` (``(h, w)``)
   with ``[a, b] = [max_ar, 1]`` when all its images are landscape, ``[1, 1 / min_ar]`` when all are
   portrait, else ``[1, 1]``: :func:`rect_batch_shape`. For ``s = 640`` a batch is at most 672 px
   on a side, not 640.
3. **Resize**: the long side to ``s`` with floored sizes and ``INTER_AREA`` when shrinking
   (``YOLOv7ResizeLongSide``), then ``letterbox(auto=False, scaleup=False)`` to the batch shape, which
   then only pads (grey 114, ``round(d -/+ 0.1)`` on each side): :func:`yolov7_rect_collate`.

Boxes go back with the official ``scale_coords``: minus the *float* half padding ``(dw, dh)`` (half a
pixel off the real padding when it is odd), divided by ``h / h0`` on both axes, clipped; the collate
and the resize record exactly these as ``pad_param`` and ``scale_factor`` for ``YOLOv7Head``. The NMS
settings are the head's defaults (``DEFAULT_TEST_CFG``: multi-label, 0.001, IoU 0.65, 300 boxes).

:func:`set_eval_protocol` switches a config's ``test_dataloader`` (and ``val_dataloader``) between
this protocol (``'official'``) and the square letterbox (``'square'``, one shape for every image:
what exported models take). The COCO configs validate with it; their ``test_dataloader`` is the
square form, for what reads it without our tools (``DetInferencer``, export, mmdet's tools), and
``tools/test.py`` evaluates with the protocol of ``val_dataloader`` (:func:`eval_protocol_of`).
"""
from __future__ import annotations

import copy
from typing import Iterator, Optional, Sequence

import numpy as np
from mmengine.dataset import pseudo_collate
from mmengine.dist import get_dist_info
from mmengine.registry import DATA_SAMPLERS, FUNCTIONS
from torch.utils.data import Sampler

from .transforms.resize_long_side import long_side_resized_hw

OFFICIAL_BATCH_SIZE = 32  # test.py --batch 32 (the README's command)
OFFICIAL_PAD = 0.5  # test.py: create_dataloader(..., pad=0.5, rect=True)
PAD_VALUE = 114


def official_stride(strides: Sequence[int]) -> int:
    """The official grid size ``gs = max(max stride, 32)`` that batch shapes are multiples of."""
    return max(int(max(strides)), 32)


def rect_batch_shape(aspect_ratios: Sequence[float], *, img_size: int, stride: int,
                     pad: float = OFFICIAL_PAD) -> tuple[int, int]:
    """``(H, W)`` of a batch whose images have these ``h / w`` ratios (official ``batch_shapes``)."""
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    low, high = ratios.min(), ratios.max()
    shape = [high, 1] if high < 1 else [1, 1 / low] if low > 1 else [1, 1]
    height, width = np.ceil(np.array(shape) * img_size / stride + pad).astype(int) * stride
    return int(height), int(width)


def rect_batches(widths: Sequence[int], heights: Sequence[int], paths: Sequence[str],
                 batch_size: int) -> list[np.ndarray]:
    """Dataset indices of each official batch: path order, then ``np.argsort`` of ``h / w``.

    ``np.argsort``'s default (unstable) sort on the path-ordered ratios is the official one, so equal
    ratios are ordered as the official code orders them on the same machine and numpy.
    """
    by_path = np.array(sorted(range(len(paths)), key=paths.__getitem__), dtype=np.int64)
    ratios = np.asarray(heights, dtype=np.float64)[by_path] / np.asarray(widths, dtype=np.float64)[by_path]
    order = by_path[ratios.argsort()]
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


@DATA_SAMPLERS.register_module()
class YOLOv7RectBatchSampler(Sampler):
    """The official evaluation batches (see the module docstring), whole batches dealt to the ranks.

    The image sizes are the dataset's ``width`` / ``height`` (what mmdet's ``AspectRatioBatchSampler``
    reads). With several processes, rank ``r`` takes batches ``r, r + world_size, ...``: every batch
    is the official one and no image is repeated (mmengine's result collection keeps them all).

    Args:
        sampler: The loader's sampler; only its ``dataset`` is used (the order is the official one).
        batch_size: Images per batch (``test.py --batch``; the shapes depend on it).
        drop_last: Must be False (every image is evaluated).
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if drop_last:
            raise ValueError('YOLOv7RectBatchSampler evaluates every image: drop_last must be False')
        dataset = sampler.dataset
        infos = [dataset.get_data_info(index) for index in range(len(dataset))]
        missing = [info.get('img_path', index) for index, info in enumerate(infos)
                   if not info.get('width') or not info.get('height')]
        if missing:
            raise ValueError(f'YOLOv7RectBatchSampler needs every image\'s width and height in the '
                             f'dataset; {len(missing)} have none (first: {missing[0]}). Use an '
                             'annotation file with image sizes, or the square protocol.')
        batches = rect_batches([info['width'] for info in infos], [info['height'] for info in infos],
                               [str(info.get('img_path', index)) for index, info in enumerate(infos)],
                               batch_size)
        rank, world_size = get_dist_info()
        self.batch_size = batch_size
        self.batches = [batch.tolist() for batch in batches[rank::world_size]]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches

    def __len__(self) -> int:
        return len(self.batches)


@FUNCTIONS.register_module()
def yolov7_rect_collate(data_batch: Sequence[dict], *, img_size: int, stride: int,
                        pad: float = OFFICIAL_PAD, pad_val: int = PAD_VALUE) -> dict:
    """Pad each resized image to the batch's official shape and stack them (uint8).

    Args:
        data_batch: ``PackDetInputs`` samples after ``YOLOv7ResizeLongSide(scale=img_size)``.
        img_size: The model size ``s`` (``test.py --img``).
        stride: The official grid size (:func:`official_stride`).
        pad: ``pad`` of the official loader.
        pad_val: Grey of the padding.

    Returns:
        ``dict(inputs=(B, C, H, W) uint8, data_samples=list)``; each sample's ``img_shape`` is
        ``(H, W)`` and ``pad_param`` the official ``(dh, dh, dw, dw)`` (floats) that boxes are shifted
        back by.
    """
    batch = pseudo_collate(data_batch)
    images, samples = batch['inputs'], batch['data_samples']
    ratios = [sample.ori_shape[0] / sample.ori_shape[1] for sample in samples]
    height, width = rect_batch_shape(ratios, img_size=img_size, stride=stride, pad=pad)
    stacked = images[0].new_full((len(images), images[0].shape[0], height, width), pad_val)
    for index, (image, sample) in enumerate(zip(images, samples)):
        _, img_h, img_w = image.shape  # (C, h, w)
        expected = long_side_resized_hw(sample.ori_shape, img_size)
        if (img_h, img_w) != expected:
            raise ValueError(f'{sample.img_path}: a {img_h} x {img_w} image in a rectangular batch, where '
                             f'YOLOv7ResizeLongSide(scale={img_size}) gives {expected[0]} x {expected[1]}; '
                             'the official protocol needs that transform in the test pipeline (not a '
                             'letterbox) and yolov7_rect_collate img_size equal to its scale.')
        half_h, half_w = (height - img_h) / 2, (width - img_w) / 2
        top, left = int(round(half_h - 0.1)), int(round(half_w - 0.1))  # the official rounding
        stacked[index, :, top:top + img_h, left:left + img_w] = image
        sample.set_metainfo(dict(img_shape=(height, width),
                                 pad_param=np.array([half_h, half_h, half_w, half_w], dtype=np.float32)))
    batch['inputs'] = stacked
    return batch


def _sized_step(pipeline: list, types: tuple[str, ...]) -> dict | None:
    return next((step for step in pipeline if step.get('type') in types), None)


def official_eval_dataloader(loader: dict, *, stride: int,
                             batch_size: int = OFFICIAL_BATCH_SIZE) -> dict:
    """The official-protocol version of a square evaluation ``loader`` config (a new dict).

    ``Resize`` + ``YOLOv7Letterbox(scale=(s, s))`` become ``YOLOv7ResizeLongSide(scale=s)``; the
    loader gets :class:`YOLOv7RectBatchSampler`, :func:`yolov7_rect_collate` and ``batch_size``.
    A loader already in the official protocol is returned unchanged (a copy).
    """
    loader = copy.deepcopy(loader)
    pipeline = loader['dataset'].get('pipeline', [])
    if _sized_step(pipeline, ('YOLOv7ResizeLongSide', )) is not None:
        return loader
    letterbox = _sized_step(pipeline, ('YOLOv7Letterbox', ))
    if letterbox is None:
        raise ValueError('The official evaluation protocol replaces the test pipeline\'s '
                         'YOLOv7Letterbox, which this config does not have; use a YOLOv7 test pipeline.')
    scale = letterbox['scale']
    width, height = (scale, scale) if isinstance(scale, int) else scale
    if width != height:
        raise ValueError(f'The official evaluation protocol needs a square model size, the test '
                         f'pipeline letterboxes to {scale!r}.')
    new_pipeline = []
    for step in pipeline:
        if step.get('type') == 'Resize':
            continue
        if step is letterbox:
            step = dict(type='YOLOv7ResizeLongSide', scale=scale)
        new_pipeline.append(step)
    loader['dataset']['pipeline'] = new_pipeline
    loader.pop('sampler', None)
    loader.update(batch_size=batch_size, sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_sampler=dict(type='YOLOv7RectBatchSampler'),
                  collate_fn=dict(type='yolov7_rect_collate', img_size=int(width), stride=stride))
    return loader


def square_eval_dataloader(loader: dict) -> dict:
    """The square-letterbox version of an evaluation ``loader`` config (a new dict).

    ``YOLOv7ResizeLongSide(scale=s)`` becomes ``Resize(scale=(s, s), keep_ratio=True)`` +
    ``YOLOv7Letterbox(scale=(s, s), pad_val=114, allow_scale_up=False)``; the rectangular batch
    sampler and collate are removed. A square loader is returned unchanged (a copy).
    """
    loader = copy.deepcopy(loader)
    pipeline = loader['dataset'].get('pipeline', [])
    resize = _sized_step(pipeline, ('YOLOv7ResizeLongSide', ))
    if resize is None:
        return loader
    scale = resize['scale']
    size = scale if isinstance(scale, int) else scale[0]
    new_pipeline = []
    for step in pipeline:
        if step is resize:
            new_pipeline += [dict(type='Resize', scale=(size, size), keep_ratio=True),
                             dict(type='YOLOv7Letterbox', scale=(size, size), pad_val=PAD_VALUE,
                                  allow_scale_up=False)]
        else:
            new_pipeline.append(step)
    loader['dataset']['pipeline'] = new_pipeline
    loader.pop('batch_sampler', None)
    if loader.get('collate_fn', {}).get('type') == 'yolov7_rect_collate':
        loader.pop('collate_fn')
    return loader


def eval_protocol_of(loader: dict) -> str:
    """``'official'`` for a loader with :class:`YOLOv7RectBatchSampler`, else ``'square'``."""
    batch_sampler = loader.get('batch_sampler') or {}
    return 'official' if batch_sampler.get('type') == 'YOLOv7RectBatchSampler' else 'square'


def set_eval_protocol(cfg, protocol: str, *, batch_size: Optional[int] = None) -> None:
    """Make ``cfg``'s ``test_dataloader`` and ``val_dataloader`` use ``protocol``, in place.

    Args:
        cfg: An mmengine ``Config`` of a YOLOv7 model (``model.bbox_head.strides``).
        protocol: ``'official'`` (rectangular batches of ``batch_size``, as ``test.py``) or
            ``'square'`` (every image letterboxed to ``s x s``).
        batch_size: Images per batch of the official protocol (the shapes depend on it). Defaults
            to the batch of the config's loader that is in the official protocol already
            (``val_dataloader`` first), else 32 (``test.py --batch 32``).
    """
    if protocol not in ('official', 'square'):
        raise ValueError(f"eval protocol must be 'official' or 'square', got {protocol!r}")
    if batch_size is None:
        batch_size = next((cfg[name].batch_size for name in ('val_dataloader', 'test_dataloader')
                           if cfg.get(name) and eval_protocol_of(cfg[name]) == 'official'),
                          OFFICIAL_BATCH_SIZE)
    strides = cfg.model.get('bbox_head', {}).get('strides', (8, 16, 32))
    for name in ('test_dataloader', 'val_dataloader'):
        if cfg.get(name) is None:
            continue
        loader = cfg[name].to_dict() if hasattr(cfg[name], 'to_dict') else dict(cfg[name])
        cfg[name] = (official_eval_dataloader(loader, stride=official_stride(strides), batch_size=batch_size)
                     if protocol == 'official' else square_eval_dataloader(loader))
