"""Golden parity: our backbones reproduce the official ones (tests/fixtures/official_backbone_*.pt).

The fixtures hold the official backbones' stage outputs for a 64x64 input, with every weight set by
the deterministic formula below keyed by the *official* parameter name (see
tests/fixtures/make_official_backbone_golden.md). Here the same weights are written under the official
names, converted with ``convert_official_backbone_state`` (which also stacks E6E's parallel ELANs into
the grouped E-ELAN) and loaded strictly, so this checks the layer mapping, the concatenation orders,
the transitions, ReOrg and the E-ELAN grouping at once.
"""
import zlib
from pathlib import Path

import pytest
import torch

from yolov7_mmdet.models.backbones import YOLOV7_ARCHS, YOLOv7Backbone
from yolov7_mmdet.models.backbones.official_layout import (convert_official_backbone_state,
                                                           official_backbone_layout,
                                                           transition_layout)

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'
OFFICIAL_NUM_LAYERS = dict(tiny=29, l=51, x=59, w6=47, e6=57, d6=67, e6e=112)  # yaml backbone lengths


PERIOD = 65521  # a prime: rows of any conv weight start at different points of the table


def hash_uniform(index: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) values from an integer hash (exact integer arithmetic, so the same on every
    torch version and machine; 24 random bits are exact in float32)."""
    x = (index * 2654435761) & 0xFFFFFFFF
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return (x >> 8).float() * 2.0**-24


def pseudo_random(shape, seed: int) -> torch.Tensor:
    """A hashed table of ``PERIOD`` values for this seed, repeated to fill ``shape`` (cheap for 80M)."""
    numel = int(torch.Size(shape).numel())
    table = hash_uniform(torch.arange(min(numel, PERIOD), dtype=torch.int64) + seed * PERIOD)
    return table.repeat(-(-numel // table.numel()))[:numel].view(shape)


def golden_value(official_key: str, shape) -> torch.Tensor:
    """The fixture's weight for one official tensor (conv weights: variance 1 / fan_in)."""
    noise = pseudo_random(shape, zlib.crc32(official_key.encode()) % 10007)
    if official_key.endswith('conv.weight'):
        fan_in = torch.Size(shape[1:]).numel()
        return (2 * noise - 1) * (3.0 / fan_in)**0.5
    if official_key.endswith('bn.weight'):
        return 0.8 + 0.4 * noise
    if official_key.endswith(('bn.bias', 'bn.running_mean')):
        return 0.2 * noise - 0.1
    assert official_key.endswith('bn.running_var'), official_key
    return 0.5 + noise


def official_style_state(backbone: YOLOv7Backbone) -> dict:
    """An official-keyed state dict (``model.{i}...``) holding the golden weights."""
    ours = backbone.state_dict()
    state = {}
    layout, _ = official_backbone_layout(backbone.arch)
    for prefix, officials in layout:
        for key, value in ours.items():
            if not key.startswith(prefix + '.'):
                continue
            suffix = key[len(prefix) + 1:]
            for official in officials:
                official_key = f'model.{official}.{suffix}'
                if suffix.endswith('num_batches_tracked'):
                    state[official_key] = torch.zeros((), dtype=torch.long)
                else:  # one group's share of a stacked E-ELAN tensor
                    shape = (value.shape[0] // len(officials), ) + tuple(value.shape[1:])
                    state[official_key] = golden_value(official_key, shape)
    return state


@pytest.mark.parametrize('arch', sorted(OFFICIAL_NUM_LAYERS))
def test_layout_spans_the_official_backbone(arch):
    layout, num_layers = official_backbone_layout(arch)
    assert num_layers == OFFICIAL_NUM_LAYERS[arch]
    with torch.device('meta'):
        backbone = YOLOv7Backbone(arch=arch)
    mapped = {prefix for prefix, _ in layout}
    holders = {name.rsplit('.', 2)[0] for name, _ in backbone.named_parameters()}
    assert mapped == holders


@pytest.mark.parametrize('arch', sorted(YOLOV7_ARCHS))
def test_outputs_match_the_official_backbone(arch):
    golden = torch.load(FIXTURES / f'official_backbone_{arch}.pt', weights_only=True)
    with torch.device('meta'):  # skip the random init: every tensor is assigned below
        backbone = YOLOv7Backbone(arch=arch).eval()
    state = convert_official_backbone_state(official_style_state(backbone), arch)
    backbone.load_state_dict(state, strict=True, assign=True)
    image = pseudo_random((1, 3, 64, 64), 4242) * 2 - 1
    with torch.no_grad():
        outs = backbone(image)
    assert len(outs) == len(golden['outputs'])
    for ours, theirs in zip(outs, golden['outputs']):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_conversion_reports_missing_official_layers():
    with pytest.raises(KeyError, match="model.0."):
        convert_official_backbone_state({}, 'tiny')


def test_unknown_transition_has_no_layout():
    with pytest.raises(ValueError, match='unknown transition'):
        transition_layout('avg_pool', 'stage1.0', 3)
