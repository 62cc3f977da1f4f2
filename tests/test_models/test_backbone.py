"""YOLOv7Backbone: exact official sizes, output maps, freezing, norm_eval, init and bad input."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from yolov7_mmdet.models.backbones import YOLOV7_ARCHS, BackboneArch, YOLOv7Backbone
from yolov7_mmdet.models.layers import ELAN

# REFERENCE.md "Backbone only": sum(p.numel()) of the official yaml backbone sections (BN unfused).
OFFICIAL_BACKBONE_PARAMS = dict(
    tiny=2_464_416, l=13_371_808, x=20_275_272, w6=35_988_608, e6=47_510_208, d6=64_954_752,
    e6e=82_974_976)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_official_arch_is_tested():
    assert set(YOLOV7_ARCHS) == set(OFFICIAL_BACKBONE_PARAMS)


@pytest.mark.parametrize('arch', sorted(OFFICIAL_BACKBONE_PARAMS))
def test_parameter_count_equals_official(arch):
    with torch.device('meta'):  # shapes only: no memory, no init cost
        backbone = YOLOv7Backbone(arch=arch)
    assert _count(backbone) == OFFICIAL_BACKBONE_PARAMS[arch]


def test_e6e_is_the_grouped_e6():
    with torch.device('meta'):
        e6, e6e = YOLOv7Backbone(arch='e6'), YOLOv7Backbone(arch='e6e')
    assert [m.groups for m in e6e.modules() if isinstance(m, ELAN)] == [2] * 5
    # the official E6E duplicates each E6 ELAN; transitions and stem are shared
    elan_params = sum(_count(m) for m in e6.modules() if isinstance(m, ELAN))
    assert _count(e6e) == _count(e6) + elan_params


@pytest.mark.parametrize('arch, size, channels, strides', [
    ('tiny', (64, 96), (128, 256, 512), (8, 16, 32)),
    ('l', (64, 96), (512, 1024, 1024), (8, 16, 32)),
    ('w6', (128, 64), (256, 512, 768, 1024), (8, 16, 32, 64)),
    ('e6e', (64, 64), (320, 640, 960, 1280), (8, 16, 32, 64)),
])
def test_default_outputs_are_what_the_neck_reads(arch, size, channels, strides):
    backbone = MODELS.build(dict(type='YOLOv7Backbone', arch=arch)).eval()
    assert backbone.out_channels == channels and backbone.strides == strides
    height, width = size
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, height, width))
    assert [tuple(o.shape) for o in outs] == [(1, c, height // s, width // s)
                                             for c, s in zip(channels, strides)]


def test_out_indices_select_any_layer():
    backbone = YOLOv7Backbone(arch='tiny', out_indices=(0, 1, 4))
    assert backbone.strides == (2, 4, 32) and backbone.out_channels == (32, 64, 512)
    outs = backbone(torch.randn(2, 3, 64, 64))
    assert [o.shape[1:] for o in outs] == [(32, 32, 32), (64, 16, 16), (512, 2, 2)]


def test_p6_strides_include_the_reorg():
    assert YOLOV7_ARCHS['e6'].strides == (2, 4, 8, 16, 32, 64)
    assert YOLOV7_ARCHS['l'].strides == (2, 4, 8, 16, 32)


def test_frozen_stages_freeze_params_and_bn():
    backbone = YOLOv7Backbone(arch='tiny', frozen_stages=2)
    backbone.train()
    for name in ('stem', 'stage1', 'stage2'):
        layer = getattr(backbone, name)
        assert not any(p.requires_grad for p in layer.parameters()), name
        assert not any(m.training for m in layer.modules() if isinstance(m, _BatchNorm)), name
    for name in ('stage3', 'stage4'):
        layer = getattr(backbone, name)
        assert all(p.requires_grad for p in layer.parameters()), name
        assert all(m.training for m in layer.modules() if isinstance(m, _BatchNorm)), name
    # frozen BN statistics do not move in a training forward pass, trainable ones do
    frozen_bn, trained_bn = backbone.stage1[1].chain[0].bn, backbone.stage3[1].chain[0].bn
    frozen_before, trained_before = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64))
    assert torch.equal(frozen_bn.running_mean, frozen_before)
    assert not torch.equal(trained_bn.running_mean, trained_before)


def test_norm_eval_keeps_every_bn_in_eval_mode():
    backbone = YOLOv7Backbone(arch='tiny', norm_eval=True).train()
    bns = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert all(p.requires_grad for p in backbone.parameters())
    assert YOLOv7Backbone(arch='tiny').train().stem[0].bn.training


def test_default_init_is_pytorch_conv_init():
    """Kaiming-uniform(a=sqrt(5)): |w| <= 1 / sqrt(fan_in), as the official (PyTorch default) init."""
    backbone = YOLOv7Backbone(arch='tiny')
    backbone.init_weights()
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            assert module.weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-6


def test_activation_defaults_follow_the_arch():
    assert isinstance(YOLOv7Backbone(arch='tiny').stem[0].activate, nn.LeakyReLU)
    assert isinstance(YOLOv7Backbone(arch='l').stem[0].activate, nn.SiLU)
    silu_tiny = YOLOv7Backbone(arch='tiny', act_cfg=dict(type='SiLU'))  # yolov7-tiny-silu
    assert isinstance(silu_tiny.stem[0].activate, nn.SiLU)


def test_user_arch_table_from_config():
    arch = dict(
        stem=[(16, 3, 2)],
        stages=[
            dict(transition='conv', transition_channels=32,
                 block=dict(branch_channels=16, num_convs=2, concat_every=1, out_channels=32)),
            dict(transition='mp_conv', transition_channels=32,
                 block=dict(branch_channels=16, num_convs=4, concat_every=2, out_channels=48, groups=2)),
        ])
    backbone = MODELS.build(dict(type='YOLOv7Backbone', arch=arch))
    assert isinstance(backbone.arch, BackboneArch)
    assert backbone.out_channels == (48, ) and backbone.strides == (8, )
    assert backbone(torch.randn(1, 3, 32, 32))[0].shape == (1, 48, 4, 4)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch='m'), KeyError, 'unknown YOLOv7 arch'),
    (dict(arch=3), TypeError, 'arch must be'),
    (dict(arch='tiny', out_indices=(5, )), ValueError, 'out_indices'),
    (dict(arch='tiny', out_indices=()), ValueError, 'out_indices'),
    (dict(arch='tiny', frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(arch=dict(stem=[(8, 3, 2)], stages=[], bogus=1)), ValueError, 'unknown arch keys'),
])
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        YOLOv7Backbone(**kwargs)


def test_bad_input_size_is_rejected():
    with pytest.raises(ValueError, match='multiple of the backbone stride 32'):
        YOLOv7Backbone(arch='tiny')(torch.randn(1, 3, 48, 64))
