"""YOLOv7PAFPN: the concatenation-based path-aggregation neck of YOLOv7.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696) keeps the PAN topology of YOLOv4 / Scaled-YOLOv4
and builds every fusion block from ELAN ("ELAN-H" in the neck: the 1x1 branches are twice as wide as the
3x3 chain and every intermediate output is concatenated).  Per level ``i`` (P3 first) every tensor that
the neck emits is ``channels[i]`` wide::

    C_top ─ SPPCSPC ───────────────────────────────────────┬─────────────────────────────> N_top
                │ 1x1, up x2                                │               ▲ ELAN(cat[down, .])
    C_i ─ 1x1 ─ cat[lateral, up] ─ ELAN ─> T_i ─────────────┼─ cat ─ ELAN ─> N_i ─ down ─┘
                                            │ 1x1, up x2    │                ▲
    C_0 ─ 1x1 ─ cat[lateral, up] ─ ELAN ─> T_0 = N_0 ───────┴─ down ─────────┘

    top-down (T_i, i = top-1 .. 0), then bottom-up (N_i, i = 1 .. top); the neck returns (N_0, ..., N_top)

The down-sampling transition is MP-C (L, X), a 3x3 stride-2 conv (tiny, W6) or DownC (E6, D6, E6E).
Tiny uses the light SPP and 2-conv ELANs; X reuses the backbone's sparse concatenation (every second
3x3 output) with 6 convs; E6/D6/E6E use 6/8 convs; E6E doubles every ELAN as a grouped E-ELAN (g=2).

The per-level 3x3 convs that follow the neck in the official graphs (RepConv for L) belong to the
prediction branches and live in :class:`~yolov7_mmdet.models.dense_heads.YOLOv7Head`, so this neck is a
plain feature pyramid that other heads can use too.

Aux taps (P6 models): the official auxiliary head reads, per level, the top-down tensors
``(T_0, T_1, ..., T_{top-1}, SPPCSPC output)``; for E6E ("partial aux") it reads the *second* E-ELAN
branch of each top-down block before the two branches are added.  With ``aux_taps=True`` they are
appended to the output tuple: ``(N_0, ..., N_top, tap_0, ..., tap_top)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..layers import (ELAN, SPPCSPC, TORCH_DEFAULT_CONV_INIT, YOLOV7_ACT_CFG, YOLOV7_NORM_CFG,
                      build_transition, yolov7_conv)


@dataclass(frozen=True)
class PAFPNArch:
    """Arch table of one neck variant (levels P3 first).

    Attributes:
        channels: Width ``c_i`` of every tensor the neck makes at level ``i`` (laterals, upsampled and
            down-sampled inputs, ELAN outputs, the SPPCSPC output at the top).
        elan_branch: Width of the two 1x1 branches of the ELAN at each level.
        elan_mid: Width of the 3x3 chain of the ELAN at each level.
        elan_num_convs: Number of stacked 3x3 convs in every ELAN.
        elan_concat_every: 1: concatenate every chain output (ELAN-H); 2: every second one (X's neck).
        elan_groups: E-ELAN cardinality (2 for E6E).
        downsample: Transition kind of the bottom-up path (see ``build_transition``).
        tiny_spp: Use the tiny SPP (no 3x3 convs).
        aux_taps: Whether the official model feeds an auxiliary head from this neck.
    """

    channels: tuple[int, ...]
    elan_branch: tuple[int, ...]
    elan_mid: tuple[int, ...]
    elan_num_convs: int
    elan_concat_every: int
    downsample: str
    elan_groups: int = 1
    tiny_spp: bool = False
    aux_taps: bool = False


# Read from the official cfg/training/*.yaml "head" sections (layers up to the per-level 3x3 convs).
PAFPN_ARCHS: dict[str, PAFPNArch] = {
    'tiny': PAFPNArch(channels=(64, 128, 256), elan_branch=(32, 64, 128), elan_mid=(32, 64, 128),
                      elan_num_convs=2, elan_concat_every=1, downsample='conv', tiny_spp=True),
    'l': PAFPNArch(channels=(128, 256, 512), elan_branch=(128, 256, 512), elan_mid=(64, 128, 256),
                   elan_num_convs=4, elan_concat_every=1, downsample='mp_conv'),
    'x': PAFPNArch(channels=(160, 320, 640), elan_branch=(128, 256, 512), elan_mid=(128, 256, 512),
                   elan_num_convs=6, elan_concat_every=2, downsample='mp_conv'),
    'w6': PAFPNArch(channels=(128, 256, 384, 512), elan_branch=(128, 256, 384, 512),
                    elan_mid=(64, 128, 192, 256), elan_num_convs=4, elan_concat_every=1,
                    downsample='conv', aux_taps=True),
    'e6': PAFPNArch(channels=(160, 320, 480, 640), elan_branch=(128, 256, 384, 512),
                    elan_mid=(64, 128, 192, 256), elan_num_convs=6, elan_concat_every=1,
                    downsample='down_c', aux_taps=True),
    'd6': PAFPNArch(channels=(192, 384, 576, 768), elan_branch=(128, 256, 384, 512),
                    elan_mid=(64, 128, 192, 256), elan_num_convs=8, elan_concat_every=1,
                    downsample='down_c', aux_taps=True),
    'e6e': PAFPNArch(channels=(160, 320, 480, 640), elan_branch=(128, 256, 384, 512),
                     elan_mid=(64, 128, 192, 256), elan_num_convs=6, elan_concat_every=1,
                     downsample='down_c', elan_groups=2, aux_taps=True),
}


@MODELS.register_module()
class YOLOv7PAFPN(BaseModule):
    """The YOLOv7 neck (see the module docstring).

    Args:
        arch (str | PAFPNArch): One of ``PAFPN_ARCHS`` ('tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e') or a
            custom :class:`PAFPNArch`.
        in_channels (Sequence[int]): Widths of the backbone outputs, P3 first (the backbone's
            ``out_channels``); as many as the arch has levels.
        aux_taps (bool, optional): Append the aux head's inputs to the outputs. Defaults to the arch's
            own setting (True for the P6 models). ``switch_to_deploy`` turns it off.
        conv_cfg (dict, optional): mmcv conv config. Defaults to None.
        norm_cfg (dict): Norm config. Defaults to BN(eps=1e-3, momentum=0.03).
        act_cfg (dict): Activation config. Defaults to SiLU (the tiny configs pass LeakyReLU(0.1)).
        init_cfg (dict or list[dict], optional): Initialization config. Defaults to PyTorch's own conv
            initialisation (what the official models train from).

    Attributes:
        out_channels (tuple[int]): Widths of the returned pyramid ``(N_0, ..., N_top)``.
        aux_channels (tuple[int]): Widths of the aux taps.
        num_levels (int): Number of pyramid levels.
    """

    def __init__(self,
                 *,
                 arch: str | PAFPNArch = 'l',
                 in_channels: Sequence[int],
                 aux_taps: Optional[bool] = None,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = TORCH_DEFAULT_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str) and arch not in PAFPN_ARCHS:
            raise KeyError(f'unknown YOLOv7PAFPN arch {arch!r}; expected one of {sorted(PAFPN_ARCHS)}')
        spec = PAFPN_ARCHS[arch] if isinstance(arch, str) else arch
        channels = spec.channels
        if len(in_channels) != len(channels):
            raise ValueError(f'arch {arch!r} has {len(channels)} levels, got in_channels={in_channels}')
        self.arch = arch
        self.num_levels = len(channels)
        self.in_channels = tuple(in_channels)
        self.out_channels = channels
        self.aux_channels = channels
        self.aux_taps = spec.aux_taps if aux_taps is None else aux_taps
        cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        top = self.num_levels - 1

        def elan(level: int) -> ELAN:
            return ELAN(in_channels=2 * channels[level], out_channels=channels[level],
                        branch_channels=spec.elan_branch[level], mid_channels=spec.elan_mid[level],
                        num_convs=spec.elan_num_convs, concat_every=spec.elan_concat_every,
                        groups=spec.elan_groups, **cfgs)

        self.spp = SPPCSPC(in_channels[top], channels[top], tiny=spec.tiny_spp, **cfgs)
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        # Top-down path, indexed by the level it produces (0 .. top-1).
        self.reduce_convs = nn.ModuleList(
            yolov7_conv(channels[i + 1], channels[i], 1, **cfgs) for i in range(top))
        self.lateral_convs = nn.ModuleList(
            yolov7_conv(in_channels[i], channels[i], 1, **cfgs) for i in range(top))
        self.top_down_blocks = nn.ModuleList(elan(i) for i in range(top))
        # Bottom-up path, entry j produces level j + 1.
        self.downsamples = nn.ModuleList(
            build_transition(spec.downsample, in_channels=channels[i], out_channels=channels[i + 1],
                             **cfgs) for i in range(top))
        self.bottom_up_blocks = nn.ModuleList(elan(i + 1) for i in range(top))

    def _top_down_block(self, level: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the top-down ELAN of ``level``; return its output and its aux tap.

        The tap is the output itself, except for E-ELAN where it is the last group's transition output
        before the groups are added (E6E's "partial aux").
        """
        block = self.top_down_blocks[level]
        if block.groups == 1 or not self.aux_taps:
            out = block(x)
            return out, out
        per_group = block.forward_cardinality(x)  # (B, g, C, H, W)
        return per_group.sum(dim=1), per_group[:, -1]

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Fuse the backbone pyramid.

        Args:
            inputs (Sequence[Tensor]): ``(B, in_channels[i], H_i, W_i)`` per level, P3 first, with
                ``H_i = 2 * H_{i+1}`` (strides 8, 16, 32(, 64)).

        Returns:
            tuple[Tensor]: ``(B, out_channels[i], H_i, W_i)`` per level, followed (when ``aux_taps``)
            by the aux taps ``(B, aux_channels[i], H_i, W_i)`` per level.
        """
        if len(inputs) != self.num_levels:
            raise ValueError(f'YOLOv7PAFPN({self.arch!r}) expects {self.num_levels} feature maps, '
                             f'got {len(inputs)}')
        top = self.num_levels - 1
        top_down = [None] * self.num_levels
        taps = [None] * self.num_levels
        top_down[top] = taps[top] = self.spp(inputs[top])
        for level in range(top - 1, -1, -1):
            upsampled = self.upsample(self.reduce_convs[level](top_down[level + 1]))
            fused = torch.cat([self.lateral_convs[level](inputs[level]), upsampled], dim=1)
            top_down[level], taps[level] = self._top_down_block(level, fused)
        outs = [top_down[0]]
        for level in range(1, self.num_levels):
            fused = torch.cat([self.downsamples[level - 1](outs[-1]), top_down[level]], dim=1)
            outs.append(self.bottom_up_blocks[level - 1](fused))
        if self.aux_taps:
            return tuple(outs) + tuple(taps)
        return tuple(outs)
