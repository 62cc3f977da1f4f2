"""Down-sampling transition layers of YOLOv7 (arXiv:2207.02696) and the P6 models' ReOrg stem.

Each halves the spatial size between two computational blocks:

* ``MPConv`` (MP-C, L/X backbone and P5 necks):
  ``cat[3x3 s2(1x1(x)), 1x1(maxpool2(x))]``, each half ``out_channels // 2`` wide;
* ``DownC`` (E6/D6/E6E): ``cat[3x3 s2(1x1(x)), 1x1(maxpool2(x))]`` whose first 1x1 keeps the input width
  (``hidden_channels = in_channels`` in the official models);
* a plain 3x3 stride-2 conv (W6, the stems and tiny's neck);
* a 2x2 max-pool (tiny's backbone), which keeps the channels;
* ``ReOrg``: space-to-depth, ``(B, C, H, W) -> (B, 4C, H/2, W/2)``, the first layer of the P6 models.

The concatenation orders are the official ones, so official weights map onto these by renaming keys.

Public interface::

    MPConv(*, in_channels, out_channels, conv_cfg=None, norm_cfg=YOLOV7_NORM_CFG,
           act_cfg=YOLOV7_ACT_CFG, init_cfg=None)
    DownC(*, in_channels, out_channels, hidden_channels=None, conv_cfg=None,
          norm_cfg=YOLOV7_NORM_CFG, act_cfg=YOLOV7_ACT_CFG, init_cfg=None)
    ReOrg()
    TRANSITION_KINDS = ('conv', 'mp_conv', 'down_c', 'max_pool')
    build_transition(kind, *, in_channels, out_channels, conv_cfg=None,
                     norm_cfg=YOLOV7_NORM_CFG, act_cfg=YOLOV7_ACT_CFG) -> nn.Module
"""
from typing import Optional

import torch
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from .conv import YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, yolov7_conv

TRANSITION_KINDS = ('conv', 'mp_conv', 'down_c', 'max_pool')


def _half_width(out_channels: int) -> int:
    if out_channels % 2:
        raise ValueError(f'a two-branch transition needs an even out_channels, got {out_channels}')
    return out_channels // 2


class DownC(BaseModule):
    """Two-branch stride-2 transition ``cat[3x3 s2(1x1(x)), 1x1(maxpool2(x))]`` (E6/D6/E6E's DownC).

    Args:
        in_channels: Input channels.
        out_channels: Output channels; each branch gives half.
        hidden_channels: Width of the 1x1 before the strided 3x3; the official models use
            ``in_channels`` (the default).
        conv_cfg: mmcv conv config.
        norm_cfg: Normalisation config.
        act_cfg: Activation config.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 *,
                 in_channels: int,
                 out_channels: int,
                 hidden_channels: Optional[int] = None,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        half = _half_width(out_channels)
        hidden = in_channels if hidden_channels is None else hidden_channels
        cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.reduce_conv = yolov7_conv(in_channels, hidden, 1, **cfgs)
        self.down_conv = yolov7_conv(hidden, half, 3, 2, **cfgs)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool_conv = yolov7_conv(in_channels, half, 1, **cfgs)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, H, W) -> (B, out, H/2, W/2), ordered [conv branch, pool branch]."""
        return torch.cat([self.down_conv(self.reduce_conv(x)), self.pool_conv(self.pool(x))], dim=1)


class MPConv(DownC):
    """MP-C transition of the L/X models: a ``DownC`` whose 1x1 before the strided 3x3 is
    ``out_channels // 2`` wide.

    Args:
        in_channels: Input channels.
        out_channels: Output channels; each branch gives half.
        conv_cfg: mmcv conv config.
        norm_cfg: Normalisation config.
        act_cfg: Activation config.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 *,
                 in_channels: int,
                 out_channels: int,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            hidden_channels=_half_width(out_channels),
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)


class ReOrg(nn.Module):
    """Space-to-depth: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``.

    The four channel groups are, in order, the pixels at (even row, even col), (odd row, even col),
    (even row, odd col) and (odd row, odd col), as in the official ``ReOrg``.
    """

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        if height % 2 or width % 2:
            raise ValueError(f'ReOrg needs an even height and width, got {height}x{width}')
        # (B, C, H, W) -> (B, C, H/2, dy, W/2, dx), dy/dx = row/col parity
        x = x.view(batch, channels, height // 2, 2, width // 2, 2)
        # -> (B, dx, dy, C, H/2, W/2): channel group index 2*dx + dy, the official order
        x = x.permute(0, 5, 3, 1, 2, 4)
        # -> (B, 4C, H/2, W/2)
        return x.reshape(batch, 4 * channels, height // 2, width // 2)


def build_transition(kind: str,
                     *,
                     in_channels: int,
                     out_channels: int,
                     conv_cfg: OptConfigType = None,
                     norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                     act_cfg: ConfigType = YOLOV7_ACT_CFG) -> nn.Module:
    """Build a stride-2 transition by name.

    Args:
        kind: One of ``TRANSITION_KINDS``: ``'conv'`` (3x3 s2 conv), ``'mp_conv'`` (MP-C),
            ``'down_c'`` (DownC) or ``'max_pool'`` (2x2 max-pool; needs ``in == out``).
        in_channels: Input channels.
        out_channels: Output channels.
        conv_cfg: mmcv conv config.
        norm_cfg: Normalisation config.
        act_cfg: Activation config.

    Returns:
        nn.Module mapping (B, in, H, W) to (B, out, H/2, W/2).
    """
    cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
    if kind == 'conv':
        return yolov7_conv(in_channels, out_channels, 3, 2, **cfgs)
    if kind == 'mp_conv':
        return MPConv(in_channels=in_channels, out_channels=out_channels, **cfgs)
    if kind == 'down_c':
        return DownC(in_channels=in_channels, out_channels=out_channels, **cfgs)
    if kind == 'max_pool':
        if in_channels != out_channels:
            raise ValueError(f'a max-pool transition keeps the channels: {in_channels} != {out_channels}')
        return nn.MaxPool2d(kernel_size=2, stride=2)
    raise ValueError(f'unknown transition kind {kind!r}; expected one of {TRANSITION_KINDS}')
