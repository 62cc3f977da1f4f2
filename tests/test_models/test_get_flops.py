"""tools/analysis_tools/get_flops.py: MACs of every conv, FLOPs = 2 x MACs, deploy vs training graph."""
import importlib.util
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from yolov7_mmdet.models.deploy import switch_to_deploy

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / 'configs' / '_base_' / 'models' / 'yolov7_tiny.py'
# REFERENCE.md, yolov7-tiny with 80 classes: training graph / fused (the paper's #Param)
TINY_TRAINING_PARAMS, TINY_FUSED_PARAMS = 6_228_762, 6_219_709


def _load_tool():
    path = ROOT / 'tools' / 'analysis_tools' / 'get_flops.py'
    spec = importlib.util.spec_from_file_location('tool_get_flops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


get_flops = _load_tool()


def _expected_macs(cfg: Config, height: int, width: int) -> int:
    """What mmengine should count for the deployed model, by hooks: the multiply-accumulates of every
    Conv2d, plus one per output element of the nearest upsampling (its only other counted op)."""
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    switch_to_deploy(model)
    total = []

    def conv_hook(module, inputs, output):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total.append(output.numel() * module.in_channels // module.groups * kernel)

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(conv_hook)
        elif isinstance(module, nn.Upsample):
            module.register_forward_hook(lambda module, inputs, output: total.append(output.numel()))
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    return sum(total)


@pytest.fixture(scope='module')
def tiny_cfg() -> Config:
    return Config.fromfile(TINY_CONFIG)


def test_deploy_graph_macs_are_the_conv_macs(tiny_cfg):
    result = get_flops.count_complexity(tiny_cfg, shape=(64, 96))
    assert result['deployed']
    assert result['params'] == TINY_FUSED_PARAMS
    assert result['macs'] == _expected_macs(tiny_cfg, 64, 96)
    assert result['flops'] == 2 * result['macs']


def test_training_graph_is_counted_on_request(tiny_cfg):
    result = get_flops.count_complexity(tiny_cfg, shape=(64, 64), deploy=False)
    assert not result['deployed'] and result['params'] == TINY_TRAINING_PARAMS
    deployed = get_flops.count_complexity(tiny_cfg, shape=(64, 64))
    assert result['macs'] > deployed['macs']  # unfused BN and implicit layers cost extra


def test_cli_prints_macs_and_flops(capsys):
    get_flops.main([str(TINY_CONFIG), '--shape', '64', '64'])
    out = capsys.readouterr().out
    assert 'MACs (multiply-accumulates' in out and 'FLOPs (2 x MACs' in out
    assert f'Params: {TINY_FUSED_PARAMS:,}' in out


def test_shape_must_fit_the_stride(tiny_cfg):
    with pytest.raises(ValueError, match='multiples of 32'):
        get_flops.count_complexity(tiny_cfg, shape=(64, 80))


def test_models_without_a_deploy_switch_are_counted_as_built():
    cfg = Config.fromfile(ROOT / 'configs' / 'backbone_swap' / 'yolox_yolov7-tiny_8xb8-300e_coco.py')
    result = get_flops.count_complexity(cfg, shape=(64, 64))
    assert not result['deployed'] and result['flops'] == 2 * result['macs'] > 0


def test_two_stage_swap_config_is_counted_with_its_roi_head():
    """Faster R-CNN's tensor mode predicts proposals, which needs image metadata."""
    cfg = Config.fromfile(ROOT / 'configs' / 'backbone_swap' / 'faster-rcnn_yolov7-l_fpn_1x_coco.py')
    cfg.model.backbone.arch = 'tiny'  # the same detector, a smaller backbone to build
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    result = get_flops.count_complexity(cfg, shape=(128, 128))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert result['params'] == sum(param.numel() for param in model.parameters())
    assert result['flops'] == 2 * result['macs'] > 0
