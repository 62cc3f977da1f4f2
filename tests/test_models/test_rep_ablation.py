"""RepAblationNet: the small nets of the planned re-parameterization ablation (docs/rep_conv.md)."""
import pytest
import torch

from yolov7_mmdet.models.backbones import BLOCK_KINDS, CONV_KINDS, RepAblationNet
from yolov7_mmdet.models.backbones.rep_ablation import AblationBlock
from yolov7_mmdet.models.deploy import switch_to_deploy
from yolov7_mmdet.models.layers import RepConvN


def _randomise_bn(module: torch.nn.Module) -> None:
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)


@pytest.mark.parametrize('block_kind', BLOCK_KINDS)
@pytest.mark.parametrize('conv_kind', CONV_KINDS)
def test_shapes_identity_branches_and_deploy(block_kind, conv_kind):
    torch.manual_seed(0)
    net = RepAblationNet(block_kind=block_kind, conv_kind=conv_kind, stem_channels=8,
                         stage_channels=(8, 16, 16, 32))
    net.init_weights()
    _randomise_bn(net)
    net.eval()
    x = torch.rand(2, 3, 64, 64)
    outs = net(x)
    assert net.out_channels == (16, 16, 32) and net.strides == (8, 16, 32)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2)]
    rep_convs = [m for m in net.modules() if isinstance(m, RepConvN)]
    assert len(rep_convs) == (0 if conv_kind == 'conv' else 8)  # 2 per block, 1 block per stage
    assert all((m.identity_bn is not None) == (conv_kind == 'repconv') for m in rep_convs)
    switch_to_deploy(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for before, after in zip(outs, net(x)):
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_residual_block_adds_its_input():
    block = AblationBlock(block_kind='residual', conv_kind='conv', channels=8).eval()
    torch.nn.init.zeros_(block.conv_b.bn.weight)  # the branch outputs SiLU(0) = 0
    torch.nn.init.zeros_(block.conv_b.bn.bias)
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(block(x), x)
    plain = AblationBlock(block_kind='plain', conv_kind='conv', channels=8).eval()
    plain.load_state_dict(block.state_dict())
    assert plain(x).abs().max() == 0


def test_bad_kinds_are_errors():
    with pytest.raises(ValueError, match="block_kind must be one of .* got 'dense'"):
        AblationBlock(block_kind='dense', conv_kind='conv', channels=8)
    with pytest.raises(ValueError, match="conv_kind must be one of .* got 'rep'"):
        AblationBlock(block_kind='plain', conv_kind='rep', channels=8)
    with pytest.raises(ValueError, match='out_indices'):
        RepAblationNet(block_kind='plain', conv_kind='conv', out_indices=(1, 4))
