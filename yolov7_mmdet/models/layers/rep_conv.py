"""RepConvN: the planned re-parameterized 3x3 convolution of YOLOv7.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696), section 3.2.1 "planned re-parameterized
convolution": a RepVGG block (Ding et al., 2021; arXiv:2101.03697) trains a 3x3 conv + BN, a 1x1 conv +
BN and, where the shapes allow, an identity BN in parallel, and sums them before the activation.  The
paper shows that the identity branch hurts when the block follows a residual or concatenation, so
YOLOv7 uses RepConv *without* identity ("RepConvN") there.  In the official graphs only YOLOv7-L's three
head convs are RepConvs, and their in/out widths differ, so none of them has an identity branch.

All branches are linear up to the activation, so ``switch_to_deploy()`` merges them into one 3x3 conv
with bias (the 1x1 kernel is zero-padded to 3x3, the identity becomes a centred one-hot kernel).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from .conv import YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, yolov7_conv


def fuse_kernel_and_bn(kernel: Tensor, bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Fold an eval-mode BN that follows a bias-free conv into (kernel, bias).

    ``bn(conv(x)) = gamma * (W x - mean) / std + beta = (gamma / std) W x + (beta - gamma * mean / std)``.

    Args:
        kernel (Tensor): Conv weight ``(C_out, C_in, kh, kw)``.
        bn (nn.BatchNorm2d): The BN over the ``C_out`` channels, using its running statistics.

    Returns:
        tuple[Tensor, Tensor]: The fused kernel ``(C_out, C_in, kh, kw)`` and bias ``(C_out,)``.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    return kernel * scale.view(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


@MODELS.register_module()
class RepConvN(BaseModule):
    """Re-parameterizable 3x3 conv: 3x3 conv+BN, 1x1 conv+BN (+ identity BN), summed, then activated.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the 3x3 and 1x1 branches. Defaults to 1.
        with_identity (bool): Add the identity BN branch (RepVGG's third branch). Only valid when
            ``in_channels == out_channels`` and ``stride == 1``; YOLOv7 never uses it. Defaults to False.
        norm_cfg (dict): Norm layer of every branch. Defaults to BN(eps=1e-3, momentum=0.03).
        act_cfg (dict, optional): Activation after the sum. Defaults to SiLU.
        init_cfg (dict or list[dict], optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 stride: int = 1,
                 with_identity: bool = False,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: OptConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if with_identity and (in_channels != out_channels or stride != 1):
            raise ValueError('RepConvN: the identity branch needs in_channels == out_channels and '
                             f'stride 1, got {in_channels} -> {out_channels}, stride {stride}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.conv3x3 = yolov7_conv(in_channels, out_channels, 3, stride, norm_cfg=norm_cfg, act_cfg=None)
        self.conv1x1 = yolov7_conv(in_channels, out_channels, 1, stride, norm_cfg=norm_cfg, act_cfg=None)
        self.identity_bn = build_norm_layer(norm_cfg, in_channels)[1] if with_identity else None
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else nn.Identity()
        self.fused_conv: Optional[nn.Conv2d] = None

    @property
    def deployed(self) -> bool:
        """Whether the branches were merged into ``fused_conv``."""
        return self.fused_conv is not None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``."""
        if self.deployed:
            return self.act(self.fused_conv(x))
        out = self.conv3x3(x) + self.conv1x1(x)
        if self.identity_bn is not None:
            out = out + self.identity_bn(x)
        return self.act(out)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[Tensor, Tensor]:
        """The single 3x3 kernel ``(C_out, C_in, 3, 3)`` and bias ``(C_out,)`` equal to the branches' sum.

        Uses the BN running statistics, i.e. it is exact for the module in eval mode.
        """
        kernel, bias = fuse_kernel_and_bn(self.conv3x3.conv.weight, self.conv3x3.bn)
        kernel_1x1, bias_1x1 = fuse_kernel_and_bn(self.conv1x1.conv.weight, self.conv1x1.bn)
        kernel = kernel + F.pad(kernel_1x1, [1, 1, 1, 1])  # 1x1 -> centre of a 3x3
        bias = bias + bias_1x1
        if self.identity_bn is not None:
            # x = conv(x, I) with I[c, c, 1, 1] = 1: a centred one-hot 3x3 kernel per channel.
            eye = torch.eye(self.in_channels, dtype=kernel.dtype, device=kernel.device)
            identity_kernel = F.pad(eye.view(self.in_channels, self.in_channels, 1, 1), [1, 1, 1, 1])
            kernel_id, bias_id = fuse_kernel_and_bn(identity_kernel, self.identity_bn)
            kernel = kernel + kernel_id
            bias = bias + bias_id
        return kernel, bias

    def switch_to_deploy(self) -> None:
        """Merge all branches into one biased 3x3 conv (``fused_conv``) and delete them. Idempotent."""
        if self.deployed:
            return
        kernel, bias = self.equivalent_kernel_bias()
        conv = self.conv3x3.conv
        fused = nn.Conv2d(self.in_channels, self.out_channels, 3, stride=self.stride, padding=1,
                          bias=True).to(device=kernel.device, dtype=kernel.dtype)
        fused.weight.data.copy_(kernel)
        fused.bias.data.copy_(bias)
        fused.weight.requires_grad_(conv.weight.requires_grad)
        fused.bias.requires_grad_(conv.weight.requires_grad)
        self.fused_conv = fused
        del self.conv3x3, self.conv1x1, self.identity_bn
