"""A hook for the distributed tests: what each process trained on, and its weights after each step.

Imported by the test config through ``custom_imports`` (the test puts this folder on PYTHONPATH).
"""
from __future__ import annotations

import hashlib
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet.registry import HOOKS


def _detector(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def weights_digest(model) -> str:
    """SHA-1 of every parameter's bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha1()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def parameters(model) -> dict:
    return {name: param.detach().cpu().clone() for name, param in model.named_parameters()}


@HOOKS.register_module()
class DDPProbeHook(Hook):
    """Freeze BatchNorm statistics, record image ids and weight digests per step, save the initial
    and final weights to ``work_dir/probe_<rank>.pt``.

    BatchNorm runs on its running statistics (eval mode) in training, so a forward pass treats each
    image on its own and 2 processes x 2 images compute what 1 process x 4 images does; with batch
    statistics each process would normalise over its own 2 images (DDP without SyncBN).
    """
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.record: dict = dict(img_ids=[], digests=[])

    def before_train(self, runner) -> None:
        self.record['initial_digest'] = weights_digest(_detector(runner))
        if get_rank() == 0:  # rank 1's weights are compared by digest
            self.record['initial_state_dict'] = parameters(_detector(runner))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        for module in _detector(runner).modules():
            if isinstance(module, _BatchNorm):
                module.eval()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.record['img_ids'].append([sample.img_id for sample in data_batch['data_samples']])
        self.record['digests'].append(weights_digest(_detector(runner)))

    def after_train(self, runner) -> None:
        if get_rank() == 0:
            self.record['state_dict'] = parameters(_detector(runner))
        torch.save(self.record, osp.join(runner.work_dir, f'probe_{get_rank()}.pt'))
