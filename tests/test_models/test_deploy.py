"""``switch_to_deploy``: the inference graph gives the training graph's eval outputs (fp32, < 1e-4)."""
import pytest
import torch
from bn_stats import randomize_bn_
from mmcv.cnn import ConvModule
from torch import nn
from yolov7_builders import build_model

from yolov7_mmdet.models.deploy import switch_to_deploy
from yolov7_mmdet.models.layers import ImplicitA, ImplicitM, RepConvN


@torch.no_grad()
def randomize_implicit_(model):
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, (ImplicitA, ImplicitM)):
            module.implicit.add_(torch.randn(module.implicit.shape, generator=generator) * 0.3)


@pytest.mark.parametrize('arch,size', [('tiny', 64), ('l', 64), ('w6', 64)])
def test_deployed_model_gives_the_same_outputs(arch, size):
    torch.manual_seed(0)
    model = build_model(arch)
    model.init_weights()
    randomize_bn_(model, seed=2)
    randomize_implicit_(model)
    model.eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        before, _ = model._forward(x)
        model.switch_to_deploy()
        after, aux = model._forward(x)
    assert aux is None
    for a, b in zip(before, after):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-4
    # a plain conv net: no BN, no RepConvN branch, no implicit vector, no aux branch left
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert not any(isinstance(m, (ImplicitA, ImplicitM)) for m in model.modules())
    assert all(m.deployed for m in model.modules() if isinstance(m, RepConvN))
    assert not model.bbox_head.with_aux and not model.neck.aux_taps


def test_without_fuse_bn_only_implicit_and_aux_go():
    model = build_model('w6', device='meta')
    switch_to_deploy(model, fuse_bn=False)
    assert not model.bbox_head.with_aux and not model.bbox_head.with_implicit
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fusing_after_a_bn_only_deploy_and_twice_is_fine():
    torch.manual_seed(0)
    model = build_model('tiny')
    model.init_weights()
    randomize_bn_(model)
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, _ = model._forward(x)
        switch_to_deploy(model, fuse_bn=False)
        switch_to_deploy(model)
        switch_to_deploy(model)
        got, _ = model._forward(x)
    for a, b in zip(expected, got):
        assert (a - b).abs().max().item() < 1e-4
    assert all(isinstance(m.norm, nn.Identity) for m in model.modules() if isinstance(m, ConvModule) and m.with_norm)
