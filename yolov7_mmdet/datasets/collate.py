"""``yolov7_collate``: stack a batch of equal-size images inside the data loader's workers.

mmengine's default ``pseudo_collate`` hands the model a *list* of ``(C, H, W)`` uint8 tensors, and
mmdet's ``DetDataPreprocessor`` then converts, normalises and pads them one by one in the main
process. YOLOv7 training batches are all ``img_scale`` (mosaic + affine) and evaluation batches all
letterboxed to one size, so the batch can be stacked into one ``(B, C, H, W)`` uint8 tensor in the
worker processes instead; the preprocessor then works on the whole batch at once (its tensor path).
``benchmarks/bench_collate.py`` measures the main-process time of both ways. On the 2-core CPU of
the development machine (idle) stacking *loses* for big batches (16 x 640: 119 ms vs 71 ms; the
whole-batch float tensors no longer fit the caches) and wins only for small ones (8 x 256: 1.6x;
8 x 128: 1.5x, on about 1 ms), so the shipped configs keep mmengine's ``pseudo_collate``. It stays
available as ``collate_fn=dict(type='yolov7_collate')`` for GPU training, where one host-to-device
copy of a stacked batch may beat one per image (not measured here: no GPU was available).

Batches of mixed sizes (e.g. a dataset evaluated without a letterbox) fall back to the list, exactly
what ``pseudo_collate`` gives, so the config stays usable with any pipeline.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS

from .. import registry  # noqa: F401  (the mmdet scope's function registry, see yolov7_mmdet/registry.py)


@FUNCTIONS.register_module()
def yolov7_collate(data_batch: Sequence[dict]) -> dict:
    """``pseudo_collate``, with ``inputs`` stacked to ``(B, C, H, W)`` when all images share a shape.

    Args:
        data_batch: The samples of ``PackDetInputs``: dicts with ``inputs`` (a ``(C, H, W)`` tensor)
            and ``data_samples``.

    Returns:
        ``dict(inputs=Tensor (B, C, H, W) or list of (C, H, W) tensors, data_samples=list)``.
    """
    batch = pseudo_collate(data_batch)
    inputs = batch['inputs']
    if inputs and all(image.shape == inputs[0].shape for image in inputs):
        batch['inputs'] = torch.stack(inputs)  # B x (C, H, W) -> (B, C, H, W), dtype kept (uint8)
    return batch
