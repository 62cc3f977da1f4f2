"""YOLOv7PAFPN: per-variant widths and parameter counts against the official graphs, wiring, aux taps."""
import dataclasses

import pytest
import torch

from yolov7_mmdet.models.necks import PAFPN_ARCHS, YOLOv7PAFPN

# Backbone output widths (P3..) of the official models: the layers the neck's "route backbone" convs read.
BACKBONE_CHANNELS = {
    'tiny': (128, 256, 512), 'l': (512, 1024, 1024), 'x': (640, 1280, 1280),
    'w6': (256, 512, 768, 1024), 'e6': (320, 640, 960, 1280), 'd6': (384, 768, 1152, 1536),
    'e6e': (320, 640, 960, 1280),
}
# Parameters of the official "head" layers from SPPCSPC (tiny: its SPP) up to the last ELAN, i.e. without
# the per-level 3x3 convs and the detect layer: measured by summing p.numel() over those layers of
# models.yolo.Model(cfg/training/<variant>.yaml) of the official repository (commit a207844).
OFFICIAL_NECK_PARAMS = {
    'tiny': 1_983_360, 'l': 16_902_144, 'x': 40_815_872, 'w6': 24_931_328, 'e6': 35_089_024,
    'd6': 47_960_832, 'e6e': 54_134_848,
}


def slim(arch, divisor=8):
    """The variant's arch with every width divided by ``divisor``: same wiring, fast on a CPU."""
    spec = PAFPN_ARCHS[arch]
    scale = lambda widths: tuple(w // divisor for w in widths)  # noqa: E731
    return dataclasses.replace(spec, channels=scale(spec.channels), elan_branch=scale(spec.elan_branch),
                               elan_mid=scale(spec.elan_mid))


def build_slim(arch, **kwargs):
    return YOLOv7PAFPN(arch=slim(arch), in_channels=tuple(c // 8 for c in BACKBONE_CHANNELS[arch]), **kwargs)


def build(arch, **kwargs):
    return YOLOv7PAFPN(arch=arch, in_channels=BACKBONE_CHANNELS[arch], **kwargs)


def pyramid(channels, size, batch=1, device='cpu'):
    return tuple(torch.randn(batch, c, size // 2 ** i, size // 2 ** i, device=device)
                 for i, c in enumerate(channels))


@pytest.mark.parametrize('arch', sorted(PAFPN_ARCHS))
def test_parameter_count_equals_official(arch):
    with torch.device('meta'):
        neck = build(arch)
    assert sum(p.numel() for p in neck.parameters()) == OFFICIAL_NECK_PARAMS[arch]


@pytest.mark.parametrize('arch', sorted(PAFPN_ARCHS))
def test_output_shapes_and_aux_taps(arch):
    with torch.device('meta'):
        neck = build(arch)
        outs = neck(pyramid(BACKBONE_CHANNELS[arch], 80, batch=2, device='meta'))
    levels = neck.num_levels
    has_aux = arch in ('w6', 'e6', 'd6', 'e6e')
    assert neck.aux_taps == has_aux
    assert len(outs) == levels * (2 if has_aux else 1)
    expected = [(2, c, 80 // 2 ** i, 80 // 2 ** i) for i, c in enumerate(neck.out_channels)]
    if has_aux:
        expected += [(2, c, 80 // 2 ** i, 80 // 2 ** i) for i, c in enumerate(neck.aux_channels)]
    assert [tuple(o.shape) for o in outs] == expected


def test_l_widths_read_from_the_official_yaml():
    neck = build('l')
    assert neck.out_channels == (128, 256, 512)
    assert neck.spp.out_channels == 512
    # route-backbone laterals: 1024 -> 256 (P4), 512 -> 128 (P3)
    assert [m.conv.in_channels for m in neck.lateral_convs] == [512, 1024]
    assert [m.conv.out_channels for m in neck.lateral_convs] == [128, 256]
    # ELAN-H: every intermediate output concatenated, 1x1 branches twice the 3x3 chain width
    block = neck.top_down_blocks[1]
    assert block.final_conv.conv.in_channels == 2 * 256 + 4 * 128


def test_x_reuses_the_sparse_concatenation():
    with torch.device('meta'):
        neck = build('x')
    block = neck.bottom_up_blocks[1]  # official layers 108-117: cat of 5 tensors of 512
    assert block.concat_every == 2 and block.final_conv.conv.in_channels == 5 * 512


def test_aux_taps_can_be_switched_off():
    with torch.device('meta'):
        neck = build('w6', aux_taps=False)
        outs = neck(pyramid(BACKBONE_CHANNELS['w6'], 64, device='meta'))
    assert len(outs) == 4


def test_w6_taps_are_the_top_down_tensors():
    torch.manual_seed(0)
    neck = build_slim('w6').eval()
    inputs = pyramid(neck.in_channels, 16)
    with torch.no_grad():
        outs = neck(inputs)
        spp = neck.spp(inputs[3])
    lead, taps = outs[:4], outs[4:]
    torch.testing.assert_close(taps[3], spp)
    assert taps[0] is lead[0]  # the P3 output is the last top-down tensor (official layer 83)


def test_e6e_partial_aux_reads_the_second_branch_before_the_merge():
    torch.manual_seed(0)
    neck = build_slim('e6e').eval()
    inputs = pyramid(neck.in_channels, 16)
    captured = {}

    def record(module, args, output):
        captured['transition'] = output  # (B, g*C, H, W), groups outermost

    neck.top_down_blocks[0].final_conv.register_forward_hook(record)
    with torch.no_grad():
        plain = build_slim('e6e', aux_taps=False).eval()
        plain.load_state_dict(neck.state_dict())
        lead_only = plain(inputs)
        outs = neck(inputs)
        per_group = captured['transition'].view(1, 2, 20, 16, 16)  # (B, g*C, H, W) -> (B, g, C, H, W)
    torch.testing.assert_close(outs[4], per_group[:, 1])  # tap of P3: second branch only
    torch.testing.assert_close(outs[0], per_group.sum(1))  # lead P3: both branches added
    for a, b in zip(outs[:4], lead_only):  # taps do not change the lead outputs
        torch.testing.assert_close(a, b)


def test_bad_configuration_and_inputs_raise():
    with pytest.raises(KeyError, match='unknown'):
        YOLOv7PAFPN(arch='m', in_channels=(1, 2, 3))
    with pytest.raises(ValueError, match='levels'):
        YOLOv7PAFPN(arch='w6', in_channels=(256, 512, 768))
    neck = build('tiny')
    with pytest.raises(ValueError, match='expects 3'):
        neck(pyramid((128, 256), 16))
