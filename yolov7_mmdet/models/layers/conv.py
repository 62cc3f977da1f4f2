"""The YOLOv7 convolution block: Conv2d(bias=False) -> BatchNorm -> activation.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696) builds every layer from one block, a
"same"-padded convolution followed by BatchNorm with ``eps=1e-3, momentum=0.03`` and SiLU (the tiny
models use ``LeakyReLU(0.1)``). This is mmcv's ``ConvModule`` with those settings; only the defaults
differ from mmdet's, so nothing is reimplemented here.

Public interface::

    YOLOV7_NORM_CFG       dict(type='BN', eps=1e-3, momentum=0.03)
    YOLOV7_ACT_CFG        dict(type='SiLU')
    YOLOV7_TINY_ACT_CFG   dict(type='LeakyReLU', negative_slope=0.1)

    yolov7_conv(in_channels, out_channels, kernel_size=1, stride=1, *, groups=1,
                conv_cfg=None, norm_cfg=YOLOV7_NORM_CFG, act_cfg=YOLOV7_ACT_CFG) -> ConvModule

The returned module has the sub-modules ``conv``, ``bn`` and ``activate`` (the official ``Conv`` has
``conv``, ``bn`` and ``act``), so official weights map onto it by renaming only.
"""
import copy
import math
from typing import Optional

from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType, OptConfigType

YOLOV7_NORM_CFG: dict = dict(type='BN', eps=1e-3, momentum=0.03)
YOLOV7_ACT_CFG: dict = dict(type='SiLU')
YOLOV7_TINY_ACT_CFG: dict = dict(type='LeakyReLU', negative_slope=0.1)

# PyTorch's own Conv2d initialisation (what the official models train from), as an mmengine init_cfg.
TORCH_DEFAULT_CONV_INIT: dict = dict(
    type='Kaiming', layer='Conv2d', a=math.sqrt(5), distribution='uniform', mode='fan_in',
    nonlinearity='leaky_relu')


def yolov7_conv(in_channels: int,
                out_channels: int,
                kernel_size: int = 1,
                stride: int = 1,
                *,
                groups: int = 1,
                conv_cfg: OptConfigType = None,
                norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                act_cfg: Optional[ConfigType] = YOLOV7_ACT_CFG) -> ConvModule:
    """Build a "same"-padded ``ConvModule`` with YOLOv7's BatchNorm and activation defaults.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Odd square kernel size; padding is ``kernel_size // 2``.
        stride: Convolution stride.
        groups: Convolution groups (E-ELAN's cardinality).
        conv_cfg: mmcv conv config, ``None`` for ``nn.Conv2d``.
        norm_cfg: Normalisation config; YOLOv7's BN by default.
        act_cfg: Activation config; SiLU by default, ``None`` for no activation.

    Returns:
        ConvModule: conv (no bias when normalised) -> norm -> activation.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f'YOLOv7 convs use odd kernels for "same" padding, got {kernel_size}')
    return ConvModule(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups,
        conv_cfg=copy.deepcopy(conv_cfg),
        norm_cfg=copy.deepcopy(norm_cfg),
        act_cfg=copy.deepcopy(act_cfg))
