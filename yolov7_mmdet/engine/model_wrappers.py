"""Distributed data parallel that also runs in CPU processes (gloo), e.g. to try a set-up or in CI.

mmengine's runner wraps the model with ``device_ids=[LOCAL_RANK]``, which DDP refuses for a module
on the CPU, and converts BatchNorm to SyncBatchNorm when the config sets ``sync_bn``, whose forward
raises ``SyncBatchNorm layers only work with GPU modules`` on the CPU. On a CPU module this wrapper
drops the device ids and turns SyncBatchNorm back into BatchNorm (with one warning, from rank 0):
each process then normalises with its own batch's statistics, as plain DDP on GPUs does. On a GPU
module it is mmengine's ``MMDistributedDataParallel`` unchanged. ``tools/train.py`` and
``tools/test.py`` select it for CPU processes (see :func:`yolov7_mmdet.utils.launch.configure_distributed`).
"""
from __future__ import annotations

import logging

from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from torch import nn

from mmdet.registry import MODEL_WRAPPERS


def _has_sync_batchnorm(module: nn.Module) -> bool:
    """torch's or mmcv's SyncBatchNorm (``sync_bn='torch'`` / ``'mmcv'``)."""
    return any(type(child).__name__ == 'SyncBatchNorm' for child in module.modules())


@MODEL_WRAPPERS.register_module()
class DeviceAwareDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts a CPU module (see the module docstring).

    Args:
        module (nn.Module): The model, already on its device.
        device_ids (list[int], optional): Passed on for a GPU module, dropped for a CPU module.
        **kwargs: Other arguments of ``MMDistributedDataParallel``.
    """

    def __init__(self, module: nn.Module, *, device_ids: list[int] | None = None, **kwargs) -> None:
        on_cpu = all(param.device.type == 'cpu' for param in module.parameters())
        if on_cpu:
            device_ids = None  # DDP takes no device ids for a CPU module
            if _has_sync_batchnorm(module):
                if get_rank() == 0:
                    print_log('SyncBatchNorm needs GPUs; on CPU processes it is reverted to '
                              'BatchNorm, so each process normalises with its own batch statistics.',
                              logger='current', level=logging.WARNING)
                module = revert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=device_ids, **kwargs)
