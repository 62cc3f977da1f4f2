"""Small backbones for the planned re-parameterization ablation (the paper's Fig. 4), on CPU.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696), section 3.2.1: RepConv with its identity
branch works in a plain net (RepVGG) but hurts inside a residual or a concatenation block, where it
adds a second identity path next to the block's own; there YOLOv7 uses RepConvN (no identity).

``RepAblationNet`` is a four-stage net whose blocks are one of three kinds, each holding two 3x3 convs
(the placements under test) that map ``c -> c`` channels, so that an identity branch is possible:

* ``plain``:    ``x -> conv3x3 -> conv3x3``
* ``residual``: ``x + conv3x3(conv3x3(x))`` (a ResNet basic block)
* ``concat``:   ``1x1(x) = a``, ``1x1(x) = b``, ``d1 = conv3x3(b)``, ``d2 = conv3x3(d1)``,
  ``1x1(cat(a, b, d1, d2))`` (an ELAN-style block)

and the 3x3 conv is one of ``conv`` (conv + BN + act), ``repconv`` (RepConvN with the identity
branch, RepVGG's block) or ``repconvn`` (RepConvN, no identity). Everything else is identical, so a
difference in accuracy comes from the conv under test. Configs: ``configs/ablation/rep_conv/``;
results: ``docs/rep_conv.md``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..layers import TORCH_DEFAULT_CONV_INIT, YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, RepConvN, yolov7_conv

BLOCK_KINDS = ('plain', 'residual', 'concat')
CONV_KINDS = ('conv', 'repconv', 'repconvn')


def build_ablation_conv(conv_kind: str, channels: int, *, norm_cfg: ConfigType,
                        act_cfg: ConfigType) -> nn.Module:
    """The 3x3 ``channels -> channels`` conv under test: plain conv, RepConv (identity) or RepConvN."""
    if conv_kind == 'conv':
        return yolov7_conv(channels, channels, 3, norm_cfg=norm_cfg, act_cfg=act_cfg)
    if conv_kind in ('repconv', 'repconvn'):
        return RepConvN(channels, channels, with_identity=conv_kind == 'repconv', norm_cfg=norm_cfg,
                        act_cfg=act_cfg)
    raise ValueError(f'conv_kind must be one of {CONV_KINDS}, got {conv_kind!r}')


class AblationBlock(BaseModule):
    """One block of ``RepAblationNet``: two 3x3 convs under test in a plain, residual or concat block.

    Args:
        block_kind: ``'plain'``, ``'residual'`` or ``'concat'`` (see the module docstring).
        conv_kind: ``'conv'``, ``'repconv'`` or ``'repconvn'``.
        channels: input and output width ``c``; the concat block's 3x3 convs work on ``c / 2``.
        norm_cfg: norm of every conv.
        act_cfg: activation of every conv.
        init_cfg: initialization config.
    """

    def __init__(self, *, block_kind: str, conv_kind: str, channels: int,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG, act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if block_kind not in BLOCK_KINDS:
            raise ValueError(f'block_kind must be one of {BLOCK_KINDS}, got {block_kind!r}')
        self.block_kind = block_kind
        cfgs = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        inner = channels // 2 if block_kind == 'concat' else channels
        self.conv_a = build_ablation_conv(conv_kind, inner, **cfgs)
        self.conv_b = build_ablation_conv(conv_kind, inner, **cfgs)
        if block_kind == 'concat':
            self.short = yolov7_conv(channels, inner, 1, **cfgs)
            self.main = yolov7_conv(channels, inner, 1, **cfgs)
            self.transition = yolov7_conv(4 * inner, channels, 1, **cfgs)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, c, H, W) -> (B, c, H, W)``."""
        if self.block_kind == 'plain':
            return self.conv_b(self.conv_a(x))
        if self.block_kind == 'residual':
            return x + self.conv_b(self.conv_a(x))
        main = self.main(x)
        first = self.conv_a(main)
        # four (B, c/2, H, W) maps -> (B, 2c, H, W) along channels
        return self.transition(torch.cat((self.short(x), main, first, self.conv_b(first)), dim=1))


@MODELS.register_module()
class RepAblationNet(BaseModule):
    """Stem + four stages (stride-2 3x3 conv, then ``blocks_per_stage`` ablation blocks).

    Args:
        block_kind: ``'plain'``, ``'residual'`` or ``'concat'``.
        conv_kind: ``'conv'``, ``'repconv'`` or ``'repconvn'``.
        stem_channels: width of the stride-2 stem conv.
        stage_channels: width of each stage (strides 4, 8, 16, 32); concat needs even widths.
        blocks_per_stage: ablation blocks after each stage's downsampling conv.
        out_indices: which stages are returned (default strides 8, 16, 32).
        norm_cfg: norm of every conv.
        act_cfg: activation of every conv.
        init_cfg: initialization config (PyTorch's default conv init, as the YOLOv7 backbone).
    """

    def __init__(self, *, block_kind: str, conv_kind: str, stem_channels: int = 16,
                 stage_channels: Sequence[int] = (32, 64, 128, 256), blocks_per_stage: int = 1,
                 out_indices: Sequence[int] = (1, 2, 3), norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = TORCH_DEFAULT_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        if not set(out_indices) <= set(range(len(stage_channels))):
            raise ValueError(f'out_indices {tuple(out_indices)} must index the '
                             f'{len(stage_channels)} stages')
        cfgs = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.stem = yolov7_conv(3, stem_channels, 3, 2, **cfgs)
        self.stages = nn.ModuleList()
        in_channels = stem_channels
        for channels in stage_channels:
            blocks = [AblationBlock(block_kind=block_kind, conv_kind=conv_kind, channels=channels, **cfgs)
                      for _ in range(blocks_per_stage)]
            self.stages.append(nn.Sequential(yolov7_conv(in_channels, channels, 3, 2, **cfgs), *blocks))
            in_channels = channels
        self.out_indices = tuple(out_indices)
        self.out_channels = tuple(stage_channels[i] for i in self.out_indices)
        self.strides = tuple(2 ** (i + 2) for i in self.out_indices)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``(B, 3, H, W)`` -> the maps of ``out_indices``, ``(B, out_channels[i], H / s_i, W / s_i)``."""
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
