"""SPPCSPC: the spatial-pyramid-pooling block with a CSP shortcut that opens the YOLOv7 neck.

Spatial pyramid pooling (He et al., 2014) inside a cross-stage-partial split (CSPNet, Wang et al., 2019),
as used by Scaled-YOLOv4 and YOLOv7 (arXiv:2207.02696) on the deepest backbone stage::

    x ─1x1─3x3─1x1─> h ─┬─ maxpool 5 ─┐
                        ├─ maxpool 9 ─┤
                        ├─ maxpool 13 ┤
                        └─────────────┴─ cat ─1x1─3x3─> y1 ─┐
    x ─1x1──────────────────────────────────────────> y2 ───┴─ cat[y1, y2] ─1x1─> out

All max-pools have stride 1 and "same" padding, so the resolution is kept.  The tiny models use a
lighter form (``tiny=True``): no 3x3 convs, and the pyramid is concatenated largest pool first,
``cat[pool13(h), pool9(h), pool5(h), h]``, as in the official ``yolov7-tiny.yaml`` (layers 29-37).
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from .conv import YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, yolov7_conv


@MODELS.register_module()
class SPPCSPC(BaseModule):
    """SPP inside a CSP split (see the module docstring).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_sizes (Sequence[int]): Max-pool kernel sizes (odd). Defaults to (5, 9, 13).
        expand_ratio (float): Hidden width is ``int(2 * out_channels * expand_ratio)`` (the official
            formula). Defaults to 0.5, i.e. hidden = out.
        tiny (bool): The yolov7-tiny form: no 3x3 convs, pyramid concatenated largest pool first.
            Defaults to False.
        conv_cfg (dict, optional): mmcv conv config. Defaults to None.
        norm_cfg (dict): Norm config. Defaults to BN(eps=1e-3, momentum=0.03).
        act_cfg (dict): Activation config. Defaults to SiLU.
        init_cfg (dict or list[dict], optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 kernel_sizes: Sequence[int] = (5, 9, 13),
                 expand_ratio: float = 0.5,
                 tiny: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f'SPP kernel sizes must be odd to keep the resolution, got {kernel_sizes}')
        hidden = int(2 * out_channels * expand_ratio)
        cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.tiny = tiny
        if tiny:
            self.pre_convs = yolov7_conv(in_channels, hidden, 1, **cfgs)
        else:
            self.pre_convs = nn.Sequential(
                yolov7_conv(in_channels, hidden, 1, **cfgs),
                yolov7_conv(hidden, hidden, 3, **cfgs),
                yolov7_conv(hidden, hidden, 1, **cfgs))
        self.shortcut_conv = yolov7_conv(in_channels, hidden, 1, **cfgs)
        self.pools = nn.ModuleList(
            nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes)
        pyramid_channels = (len(kernel_sizes) + 1) * hidden
        if tiny:
            self.post_convs = yolov7_conv(pyramid_channels, hidden, 1, **cfgs)
        else:
            self.post_convs = nn.Sequential(
                yolov7_conv(pyramid_channels, hidden, 1, **cfgs),
                yolov7_conv(hidden, hidden, 3, **cfgs))
        self.final_conv = yolov7_conv(2 * hidden, out_channels, 1, **cfgs)

    def init_weights(self) -> None:
        """PyTorch's default conv initialisation (what the official models train from), unless an
        ``init_cfg`` is given. mmcv's ``ConvModule.init_weights``, which mmengine would call for the
        direct ConvModule children, draws Kaiming-normal (fan-out) weights instead."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H, W)``."""
        h = self.pre_convs(x)
        pyramid = [h] + [pool(h) for pool in self.pools]
        if self.tiny:
            pyramid = pyramid[::-1]  # official tiny order: [pool13, pool9, pool5, h]
        y1 = self.post_convs(torch.cat(pyramid, dim=1))
        y2 = self.shortcut_conv(x)
        return self.final_conv(torch.cat([y1, y2], dim=1))
