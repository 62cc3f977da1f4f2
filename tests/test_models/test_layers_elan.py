"""YOLOv7 conv block, ELAN / E-ELAN and the transitions (yolov7_mmdet.models.layers)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolov7_mmdet.models.layers import (ELAN, YOLOV7_TINY_ACT_CFG, DownC, MPConv, ReOrg,
                                        build_transition, split_cardinality_state,
                                        stack_cardinality_state, yolov7_conv)


def _randomise_bn(module: nn.Module, generator: torch.Generator) -> None:
    """Give every BN non-trivial affine parameters and running statistics."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=generator) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=generator) * 0.1
            m.running_mean = torch.randn(m.num_features, generator=generator) * 0.1
            m.running_var = torch.rand(m.num_features, generator=generator) + 0.5


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_yolov7_conv_defaults():
    conv = yolov7_conv(8, 16, 3, 2)
    assert conv.conv.bias is None
    assert conv.conv.padding == (1, 1) and conv.conv.stride == (2, 2)
    assert conv.bn.eps == 1e-3 and conv.bn.momentum == 0.03
    assert isinstance(conv.activate, nn.SiLU)
    tiny = yolov7_conv(8, 16, 1, act_cfg=YOLOV7_TINY_ACT_CFG)
    assert isinstance(tiny.activate, nn.LeakyReLU) and tiny.activate.negative_slope == 0.1
    with pytest.raises(ValueError, match='odd kernels'):
        yolov7_conv(8, 16, 2)


@pytest.mark.parametrize('num_convs, concat_every, picked', [
    (4, 2, [4, 2, 0]),  # L / W6 backbone: [h4, h2, h0, b1]
    (6, 2, [6, 4, 2, 0]),  # X / E6 backbone
    (8, 2, [8, 6, 4, 2, 0]),  # D6 backbone
    (4, 1, [4, 3, 2, 1, 0]),  # neck ELAN-H
    (2, 1, [2, 1, 0]),  # tiny
])
def test_elan_concatenates_official_order(num_convs, concat_every, picked):
    block = ELAN(in_channels=8, out_channels=12, branch_channels=6, mid_channels=4,
                 num_convs=num_convs, concat_every=concat_every).eval()
    seen = {}
    block.short_conv.register_forward_hook(lambda m, i, o: seen.__setitem__('b1', o))
    block.main_conv.register_forward_hook(lambda m, i, o: seen.__setitem__(0, o))
    for index, conv in enumerate(block.chain, start=1):
        conv.register_forward_hook(lambda m, i, o, index=index: seen.__setitem__(index, o))
    block.final_conv.register_forward_hook(lambda m, i, o: seen.__setitem__('concat', i[0]))
    out = block(torch.randn(2, 8, 5, 7))

    expected = torch.cat([seen[k] for k in picked] + [seen['b1']], dim=1)
    assert torch.equal(seen['concat'], expected)
    assert block.concat_channels == expected.shape[1] == 2 * 6 + (len(picked) - 1) * 4
    assert out.shape == (2, 12, 5, 7)


def test_elan_rejects_a_chain_that_skips_its_input():
    with pytest.raises(ValueError, match='multiple of concat_every'):
        ELAN(in_channels=8, out_channels=8, branch_channels=4, num_convs=5, concat_every=2)


@pytest.mark.parametrize('groups', [2, 3])
@pytest.mark.parametrize('kwargs', [
    dict(branch_channels=6, mid_channels=6, num_convs=6, concat_every=2),  # E6E backbone pattern
    dict(branch_channels=8, mid_channels=4, num_convs=4, concat_every=1),  # ELAN-H pattern
])
@pytest.mark.parametrize('training', [False, True])
def test_e_elan_equals_parallel_elans(groups, kwargs, training):
    """Grouped E-ELAN == g official-style ELANs on the same input, outputs added (E6E for g=2)."""
    generator = torch.Generator().manual_seed(groups)
    parallel = [ELAN(in_channels=10, out_channels=14, **kwargs) for _ in range(groups)]
    for block in parallel:
        _randomise_bn(block, generator)
    grouped = ELAN(in_channels=10, out_channels=14, groups=groups, **kwargs)
    grouped.load_state_dict(stack_cardinality_state([b.state_dict() for b in parallel]))
    # and back: the grouped weights split into the parallel ones exactly
    for block, state in zip(parallel, split_cardinality_state(grouped.state_dict(), groups)):
        for key, value in block.state_dict().items():
            assert torch.equal(state[key], value), key
    for block in parallel + [grouped]:
        block.train(training)

    assert _count(grouped) == sum(_count(b) for b in parallel)
    x = torch.randn(3, 10, 6, 5, generator=generator)
    per_group = grouped.forward_cardinality(x)
    assert per_group.shape == (3, groups, 14, 6, 5)
    for index, block in enumerate(parallel):
        torch.testing.assert_close(per_group[:, index], block(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grouped(x), sum(b(x) for b in parallel), rtol=1e-5, atol=1e-5)


def test_stack_cardinality_state_rejects_mismatched_blocks():
    a = ELAN(in_channels=4, out_channels=4, branch_channels=2, num_convs=2, concat_every=1)
    b = ELAN(in_channels=4, out_channels=4, branch_channels=2, num_convs=4, concat_every=1)
    with pytest.raises(ValueError, match='identical'):
        stack_cardinality_state([a.state_dict(), b.state_dict()])
    with pytest.raises(ValueError, match='not divisible'):
        split_cardinality_state(a.state_dict(), 3)


@pytest.mark.parametrize('cls, hidden', [(MPConv, 6), (DownC, 10)])
def test_two_branch_transitions(cls, hidden):
    layer = cls(in_channels=10, out_channels=12).eval()
    assert layer.reduce_conv.conv.out_channels == hidden  # MP-C: out/2, DownC: in
    x = torch.randn(2, 10, 8, 6)
    out = layer(x)
    assert out.shape == (2, 12, 4, 3)
    # official order: [strided-conv branch, max-pool branch]
    torch.testing.assert_close(out[:, 6:], layer.pool_conv(F.max_pool2d(x, 2)))
    torch.testing.assert_close(out[:, :6], layer.down_conv(layer.reduce_conv(x)))
    with pytest.raises(ValueError, match='even out_channels'):
        cls(in_channels=10, out_channels=11)


def test_reorg_is_the_official_space_to_depth():
    x = torch.randn(2, 3, 6, 4)
    out = ReOrg()(x)
    assert out.shape == (2, 12, 3, 2)
    # channel group k holds the pixel at (row parity, col parity) below
    for k, (dy, dx) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        for i in range(3):
            for j in range(2):
                assert torch.equal(out[:, 3 * k:3 * k + 3, i, j], x[:, :, 2 * i + dy, 2 * j + dx])
    with pytest.raises(ValueError, match='even height and width'):
        ReOrg()(torch.randn(1, 3, 5, 4))


@pytest.mark.parametrize('kind, in_channels, out_channels',
                         [('conv', 8, 16), ('mp_conv', 8, 8), ('down_c', 8, 16), ('max_pool', 8, 8)])
def test_build_transition_halves_the_resolution(kind, in_channels, out_channels):
    layer = build_transition(kind, in_channels=in_channels, out_channels=out_channels)
    assert layer(torch.randn(1, in_channels, 8, 8)).shape == (1, out_channels, 4, 4)


def test_build_transition_rejects_bad_requests():
    with pytest.raises(ValueError, match='keeps the channels'):
        build_transition('max_pool', in_channels=8, out_channels=16)
    with pytest.raises(ValueError, match='unknown transition'):
        build_transition('avg_pool', in_channels=8, out_channels=8)
