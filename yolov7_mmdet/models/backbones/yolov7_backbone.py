"""YOLOv7 backbones (tiny, L, X, W6, E6, D6, E6E) built from arch tables.

Paper: "YOLOv7: Trainable bag-of-freebies sets new state-of-the-art for real-time object detectors"
(Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696). The tables below are the ``backbone`` sections of
the official ``cfg/training/*.yaml`` (everything before SPPCSPC / tiny's SPP), written as data:

* a stem (``ReOrg`` space-to-depth first for the P6 models, then plain convs);
* stages, each a stride-2 transition (``conv``, ``mp_conv`` = MP-C, ``down_c`` = DownC or ``max_pool``)
  followed by an ELAN computational block (E-ELAN with ``groups=2`` for E6E).

Layer index 0 is the stem and index ``i >= 1`` is stage ``i``; in every official arch the stem has
stride 2 and stage ``i`` stride ``2 * 2**i``. ``out_indices`` selects among them; by default the maps of
stride >= 8 that the YOLOv7 necks read: (8, 16, 32) for tiny/L/X and (8, 16, 32, 64) for the P6 models.

Public interface::

    ConvSpec(out_channels, kernel_size=3, stride=1)
    ELANSpec(branch_channels, num_convs, concat_every, out_channels, mid_channels=None, groups=1)
    StageSpec(transition, transition_channels, block: ELANSpec)
    BackboneArch(stem: tuple[ConvSpec, ...], stages: tuple[StageSpec, ...], reorg=False,
                 act_cfg=YOLOV7_ACT_CFG)
        .strides, .out_channels (per layer: stem, stage1, ...), BackboneArch.from_config(mapping)
    YOLOV7_ARCHS: dict[str, BackboneArch]     keys tiny, l, x, w6, e6, d6, e6e
    resolve_arch(name | BackboneArch | mapping) -> BackboneArch
    YOLOv7Backbone(*, arch='l', out_indices=None, frozen_stages=-1, norm_eval=False, conv_cfg=None,
                   norm_cfg=YOLOV7_NORM_CFG, act_cfg=None, init_cfg=<PyTorch default conv init>)
        .forward(x: (B, 3, H, W)) -> tuple of (B, out_channels[i], H / strides[i], W / strides[i])
        .out_channels, .strides: tuple[int, ...] of the selected outputs
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers.conv import (TORCH_DEFAULT_CONV_INIT, YOLOV7_ACT_CFG, YOLOV7_NORM_CFG,
                           YOLOV7_TINY_ACT_CFG, yolov7_conv)
from ..layers.elan import ELAN, elan_concat_channels
from ..layers.transitions import TRANSITION_KINDS, ReOrg, build_transition


@dataclass(frozen=True)
class ConvSpec:
    """A stem conv: output width, kernel size and stride."""
    out_channels: int
    kernel_size: int = 3
    stride: int = 1


@dataclass(frozen=True)
class ELANSpec:
    """An ELAN / E-ELAN computational block; see :class:`~yolov7_mmdet.models.layers.ELAN`."""
    branch_channels: int
    num_convs: int
    concat_every: int
    out_channels: int
    mid_channels: Optional[int] = None
    groups: int = 1

    @property
    def chain_channels(self) -> int:
        """Width of the 3x3 chain (``mid_channels``, defaulting to ``branch_channels``)."""
        return self.branch_channels if self.mid_channels is None else self.mid_channels

    @property
    def concat_channels(self) -> int:
        """Width of the block's concatenation (per group), the input of its 1x1 transition."""
        return elan_concat_channels(
            branch_channels=self.branch_channels,
            mid_channels=self.chain_channels,
            num_convs=self.num_convs,
            concat_every=self.concat_every)


@dataclass(frozen=True)
class StageSpec:
    """A stride-2 transition of kind ``transition`` and width ``transition_channels``, then a block."""
    transition: str
    transition_channels: int
    block: ELANSpec

    def __post_init__(self) -> None:
        if self.transition not in TRANSITION_KINDS:
            raise ValueError(f'unknown transition {self.transition!r}; expected one of {TRANSITION_KINDS}')


@dataclass(frozen=True)
class BackboneArch:
    """A whole backbone as data. ``act_cfg`` is the default activation (tiny: LeakyReLU(0.1))."""
    stem: Tuple[ConvSpec, ...]
    stages: Tuple[StageSpec, ...]
    reorg: bool = False
    act_cfg: Mapping[str, Any] = field(default_factory=lambda: dict(YOLOV7_ACT_CFG))

    @property
    def strides(self) -> Tuple[int, ...]:
        """Output stride of every layer: the stem, then each stage."""
        stem_stride = (2 if self.reorg else 1) * math.prod(conv.stride for conv in self.stem)
        return tuple(stem_stride * 2**i for i in range(len(self.stages) + 1))

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Output width of every layer: the stem, then each stage."""
        return (self.stem[-1].out_channels, ) + tuple(s.block.out_channels for s in self.stages)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> 'BackboneArch':
        """Build from plain config data, e.g.
        ``dict(stem=[(32, 3, 1)], stages=[dict(transition='conv', transition_channels=64,
        block=dict(branch_channels=32, num_convs=2, concat_every=1, out_channels=64))], reorg=False)``.
        """
        unknown = set(cfg) - {'stem', 'stages', 'reorg', 'act_cfg'}
        if unknown:
            raise ValueError(f'unknown arch keys {sorted(unknown)}')
        stages = tuple(
            StageSpec(
                transition=stage['transition'],
                transition_channels=stage['transition_channels'],
                block=ELANSpec(**stage['block'])) for stage in cfg['stages'])
        return cls(
            stem=tuple(ConvSpec(*conv) for conv in cfg['stem']),
            stages=stages,
            reorg=cfg.get('reorg', False),
            act_cfg=dict(cfg.get('act_cfg', YOLOV7_ACT_CFG)))


def _elan_stages(transition: str, widths: Sequence[Tuple[int, int, int]], *, num_convs: int,
                 concat_every: int, groups: int = 1) -> Tuple[StageSpec, ...]:
    """Stages whose blocks share one pattern; ``widths`` = (transition, branch, block out) per stage."""
    return tuple(
        StageSpec(transition, trans, ELANSpec(branch, num_convs, concat_every, out, groups=groups))
        for trans, branch, out in widths)


def _l_like(stem: Sequence[int], widths: Sequence[Tuple[int, int, int]], num_convs: int) -> BackboneArch:
    """L / X: stem 3x3 (s1, s2, s1), a 3x3 s2 conv into stage 1, MP-C into stages 2-4."""
    stages = (_elan_stages('conv', widths[:1], num_convs=num_convs, concat_every=2) +
              _elan_stages('mp_conv', widths[1:], num_convs=num_convs, concat_every=2))
    stem_strides = (1, 2, 1)
    return BackboneArch(
        stem=tuple(ConvSpec(c, 3, s) for c, s in zip(stem, stem_strides)), stages=stages)


def _p6(stem: int, transition: str, widths: Sequence[Tuple[int, int, int]], *, num_convs: int,
        groups: int = 1) -> BackboneArch:
    """W6 / E6 / D6 / E6E: ReOrg, one 3x3 conv, then five stride-2 stages."""
    return BackboneArch(
        stem=(ConvSpec(stem, 3, 1), ),
        stages=_elan_stages(transition, widths, num_convs=num_convs, concat_every=2, groups=groups),
        reorg=True)


# (transition width, ELAN branch width c, ELAN output width) per stage, from cfg/training/*.yaml
_E6_WIDTHS = ((160, 64, 160), (320, 128, 320), (640, 256, 640), (960, 384, 960), (1280, 512, 1280))
YOLOV7_ARCHS: Dict[str, BackboneArch] = {
    'tiny': BackboneArch(
        stem=(ConvSpec(32, 3, 2), ),
        stages=(_elan_stages('conv', [(64, 32, 64)], num_convs=2, concat_every=1) +
                _elan_stages('max_pool', [(64, 64, 128), (128, 128, 256), (256, 256, 512)],
                             num_convs=2, concat_every=1)),
        act_cfg=dict(YOLOV7_TINY_ACT_CFG)),
    'l': _l_like((32, 64, 64), ((128, 64, 256), (256, 128, 512), (512, 256, 1024), (1024, 256, 1024)),
                 num_convs=4),
    'x': _l_like((40, 80, 80), ((160, 64, 320), (320, 128, 640), (640, 256, 1280), (1280, 256, 1280)),
                 num_convs=6),
    'w6': _p6(64, 'conv', ((128, 64, 128), (256, 128, 256), (512, 256, 512), (768, 384, 768),
                           (1024, 512, 1024)), num_convs=4),
    'e6': _p6(80, 'down_c', _E6_WIDTHS, num_convs=6),
    'd6': _p6(96, 'down_c', ((192, 64, 192), (384, 128, 384), (768, 256, 768), (1152, 384, 1152),
                             (1536, 512, 1536)), num_convs=8),
    'e6e': _p6(80, 'down_c', _E6_WIDTHS, num_convs=6, groups=2),
}

def resolve_arch(arch: Union[str, BackboneArch, Mapping[str, Any]]) -> BackboneArch:
    """An arch table from a name in ``YOLOV7_ARCHS``, a table, or config data (``from_config``)."""
    if isinstance(arch, BackboneArch):
        return arch
    if isinstance(arch, str):
        if arch not in YOLOV7_ARCHS:
            raise KeyError(f'unknown YOLOv7 arch {arch!r}; expected one of {sorted(YOLOV7_ARCHS)}')
        return YOLOV7_ARCHS[arch]
    if isinstance(arch, Mapping):
        return BackboneArch.from_config(arch)
    raise TypeError(f'arch must be a name, a BackboneArch or a mapping, got {type(arch).__name__}')


@MODELS.register_module()
class YOLOv7Backbone(BaseModule):
    """YOLOv7 backbone (see the module docstring for the layout).

    Args:
        arch: ``'tiny'``, ``'l'``, ``'x'``, ``'w6'``, ``'e6'``, ``'d6'``, ``'e6e'``, a
            :class:`BackboneArch`, or a mapping accepted by :meth:`BackboneArch.from_config`.
        out_indices: Layers whose outputs are returned (0 = stem, i = stage i). Defaults to every
            layer of stride >= 8.
        frozen_stages: Freeze (no gradient, BN in eval mode) the stem and stages ``1..frozen_stages``;
            -1 freezes nothing, 0 only the stem.
        norm_eval: Keep every BN layer in eval mode during training (frozen running statistics).
        conv_cfg: mmcv conv config.
        norm_cfg: Normalisation config; YOLOv7's BN (eps 1e-3, momentum 0.03) by default.
        act_cfg: Activation config; ``None`` takes the arch's own (SiLU; tiny: LeakyReLU(0.1)).
        init_cfg: mmengine init config; by default PyTorch's Conv2d initialisation, as the official code.
    """

    def __init__(self,
                 *,
                 arch: Union[str, BackboneArch, Mapping[str, Any]] = 'l',
                 out_indices: Optional[Sequence[int]] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = TORCH_DEFAULT_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch = resolve_arch(arch)
        num_layers = len(self.arch.stages) + 1
        if out_indices is None:
            out_indices = tuple(i for i, s in enumerate(self.arch.strides) if s >= 8)
        self.out_indices = tuple(out_indices)
        if not self.out_indices or any(not 0 <= i < num_layers for i in self.out_indices):
            raise ValueError(f'out_indices {self.out_indices} must be non-empty and in [0, {num_layers})')
        if not -1 <= frozen_stages < num_layers:
            raise ValueError(f'frozen_stages must be in [-1, {num_layers}), got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        cfgs = dict(
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=dict(self.arch.act_cfg) if act_cfg is None else act_cfg)

        self.stem = self._build_stem(**cfgs)
        self.layers = ['stem']
        in_channels = self.arch.stem[-1].out_channels
        for index, stage in enumerate(self.arch.stages, start=1):
            self.add_module(f'stage{index}', self._build_stage(stage, in_channels, **cfgs))
            self.layers.append(f'stage{index}')
            in_channels = stage.block.out_channels
        self.out_channels = tuple(self.arch.out_channels[i] for i in self.out_indices)
        self.strides = tuple(self.arch.strides[i] for i in self.out_indices)
        self._freeze_stages()

    def _build_stem(self, **cfgs) -> nn.Sequential:
        layers: List[nn.Module] = [ReOrg()] if self.arch.reorg else []
        in_channels = 12 if self.arch.reorg else 3  # ReOrg: RGB -> 4 x 3 channels
        for conv in self.arch.stem:
            layers.append(yolov7_conv(in_channels, conv.out_channels, conv.kernel_size, conv.stride, **cfgs))
            in_channels = conv.out_channels
        return nn.Sequential(*layers)

    @staticmethod
    def _build_stage(stage: StageSpec, in_channels: int, **cfgs) -> nn.Sequential:
        transition = build_transition(
            stage.transition, in_channels=in_channels, out_channels=stage.transition_channels, **cfgs)
        block = stage.block
        elan = ELAN(
            in_channels=stage.transition_channels,
            out_channels=block.out_channels,
            branch_channels=block.branch_channels,
            mid_channels=block.mid_channels,
            num_convs=block.num_convs,
            concat_every=block.concat_every,
            groups=block.groups,
            **cfgs)
        return nn.Sequential(transition, elan)

    @property
    def size_divisor(self) -> int:
        """Input height and width must be multiples of this (the deepest stride)."""
        return self.arch.strides[-1]

    def _freeze_stages(self) -> None:
        for name in self.layers[:self.frozen_stages + 1]:
            layer = getattr(self, name)
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'YOLOv7Backbone':
        """Switch mode, keeping frozen stages and (with ``norm_eval``) every BN in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> the selected maps, (B, out_channels[i], H / strides[i], W / strides[i])."""
        height, width = x.shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(f'input size {height}x{width} is not a multiple of the backbone stride '
                             f'{self.size_divisor}; pad the batch (e.g. pad_size_divisor) first')
        outs = []
        for index, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
