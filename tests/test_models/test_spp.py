"""SPPCSPC and the tiny SPP: shapes, parameter counts of the official layers, and wiring."""
import pytest
import torch
from torch import nn

from yolov7_mmdet.models.layers import SPPCSPC


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_bn(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + 2 * c_out


def test_sppcspc_parameter_count_equals_yolov7_l_layer_51():
    h = 512  # SPPCSPC(1024 -> 512): hidden = out
    expected = (conv_bn(1024, h, 1) * 2 + conv_bn(h, h, 3) + conv_bn(h, h, 1) + conv_bn(4 * h, h, 1)
                + conv_bn(h, h, 3) + conv_bn(2 * h, 512, 1))
    assert count(SPPCSPC(1024, 512)) == expected


def test_tiny_spp_parameter_count_equals_yolov7_tiny_layers_29_to_37():
    expected = conv_bn(512, 256, 1) * 2 + conv_bn(1024, 256, 1) + conv_bn(512, 256, 1)
    assert count(SPPCSPC(512, 256, tiny=True)) == expected


@pytest.mark.parametrize('tiny', [False, True])
def test_keeps_resolution(tiny):
    block = SPPCSPC(16, 8, tiny=tiny)
    assert block(torch.randn(2, 16, 11, 13)).shape == (2, 8, 11, 13)


def test_tiny_concatenates_the_largest_pool_first():
    torch.manual_seed(0)
    block = SPPCSPC(4, 4, tiny=True).eval()
    x = torch.randn(1, 4, 16, 16)
    seen = {}

    def record_input(module, args, output):
        seen['in'] = args[0]

    block.post_convs.register_forward_hook(record_input)
    block(x)
    h = block.pre_convs(x)
    expected = torch.cat([nn.functional.max_pool2d(h, k, 1, k // 2) for k in (13, 9, 5)] + [h], 1)
    torch.testing.assert_close(seen['in'], expected)


def test_rejects_even_pool_kernels():
    with pytest.raises(ValueError, match='odd'):
        SPPCSPC(8, 8, kernel_sizes=(4, 8))


def test_init_weights_keeps_pytorch_default_conv_init():
    torch.manual_seed(0)
    block = SPPCSPC(512, 256)
    block.init_weights()
    weight = block.final_conv.conv.weight  # 1x1, fan_in 512
    expected_std = 1 / (3 * 512) ** 0.5  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert abs(weight.std().item() / expected_std - 1) < 0.05
    assert weight.abs().max().item() <= 1 / 512 ** 0.5
