"""Test helper: build the YOLOv7 models of ``configs/_base_/models`` (mmdet scope, optional meta device)."""
from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import yolov7_mmdet  # noqa: F401  (registration)

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models'
ARCHS = ('tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e')
P6_ARCHS = ('w6', 'e6', 'd6', 'e6e')


def model_cfg(arch: str, **overrides):
    """The ``model`` dict of ``configs/_base_/models/yolov7_<arch>.py``; overrides use dotted keys."""
    cfg = Config.fromfile(str(CONFIG_DIR / f'yolov7_{arch}.py'))
    cfg.merge_from_dict({f'model.{key}': value for key, value in overrides.items()})
    return cfg.model


def build_model(arch: str, *, device: str = 'cpu', **overrides):
    """Build the model of ``arch``'s base config; ``device='meta'`` allocates nothing."""
    init_default_scope('mmdet')
    cfg = model_cfg(arch, **overrides)
    with torch.device(device):
        return MODELS.build(cfg)
