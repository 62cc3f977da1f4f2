"""RepConvN: branch arithmetic, the identity rule, and exact merging by ``switch_to_deploy``."""
import pytest
import torch
import torch.nn.functional as F
from bn_stats import randomize_bn_
from torch import nn

from yolov7_mmdet.models.layers import RepConvN, fuse_kernel_and_bn


def test_fuse_kernel_and_bn_matches_conv_then_bn():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    bn = randomize_bn_(nn.BatchNorm2d(6, eps=1e-3)).eval()
    x = torch.randn(2, 4, 7, 7)
    kernel, bias = fuse_kernel_and_bn(conv.weight, bn)
    torch.testing.assert_close(F.conv2d(x, kernel, bias, padding=1), bn(conv(x)), rtol=0, atol=1e-5)


def test_forward_is_the_sum_of_the_branches():
    torch.manual_seed(0)
    block = randomize_bn_(RepConvN(4, 8)).eval()
    x = torch.randn(2, 4, 9, 9)
    expected = F.silu(block.conv3x3(x) + block.conv1x1(x))
    torch.testing.assert_close(block(x), expected)
    assert block.identity_bn is None


@pytest.mark.parametrize('in_channels,out_channels,stride,with_identity', [
    (8, 16, 1, False),  # YOLOv7-L's head convs: widths differ, no identity
    (8, 8, 1, True),    # RepVGG's full block
    (8, 8, 1, False),
    (8, 12, 2, False),
])
def test_switch_to_deploy_is_exact(in_channels, out_channels, stride, with_identity):
    torch.manual_seed(1)
    block = randomize_bn_(RepConvN(in_channels, out_channels, stride=stride,
                                   with_identity=with_identity), seed=3).eval()
    x = torch.randn(2, in_channels, 10, 10)
    before = block(x)
    block.switch_to_deploy()
    assert block.deployed
    assert not hasattr(block, 'conv3x3') and not hasattr(block, 'conv1x1')
    assert [name for name, _ in block.named_children()] == ['act', 'fused_conv']
    after = block(x)
    assert after.shape == (2, out_channels, 10 // stride, 10 // stride)
    assert (after - before).abs().max().item() < 1e-5
    block.switch_to_deploy()  # idempotent
    torch.testing.assert_close(block(x), after, rtol=0, atol=0)


def test_deployed_parameter_count():
    block = RepConvN(128, 256)
    # 3x3 + 1x1 kernels, two BNs (weight + bias)
    assert sum(p.numel() for p in block.parameters()) == 128 * 256 * 10 + 4 * 256
    block.eval().switch_to_deploy()
    assert sum(p.numel() for p in block.parameters()) == 128 * 256 * 9 + 256


def test_identity_needs_equal_widths_and_stride_one():
    with pytest.raises(ValueError, match='identity'):
        RepConvN(8, 16, with_identity=True)
    with pytest.raises(ValueError, match='identity'):
        RepConvN(8, 8, stride=2, with_identity=True)


def test_leaky_relu_activation_and_no_activation():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 5, 5)
    leaky = RepConvN(4, 4, act_cfg=dict(type='LeakyReLU', negative_slope=0.1)).eval()
    linear = RepConvN(4, 4, act_cfg=None).eval()
    linear.load_state_dict(leaky.state_dict())
    torch.testing.assert_close(leaky(x), F.leaky_relu(linear(x), 0.1))
