"""configure_distributed changes nothing for one process or on GPUs (the CPU path: test_distributed_cpu)."""
import copy

import pytest
import torch
from mmengine.config import Config

from yolov7_mmdet.utils.launch import configure_distributed


def config(launcher: str) -> Config:
    return Config(dict(launcher=launcher, sync_bn='torch',
                       env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=1800))))


def test_one_process_is_left_alone():
    cfg = config('none')
    before = copy.deepcopy(cfg.to_dict())
    configure_distributed(cfg)
    assert cfg.to_dict() == before


@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_with_cuda_the_config_keeps_nccl_and_mmengines_wrapper(monkeypatch, launcher):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = config(launcher)
    before = copy.deepcopy(cfg.to_dict())
    configure_distributed(cfg)
    assert cfg.to_dict() == before
