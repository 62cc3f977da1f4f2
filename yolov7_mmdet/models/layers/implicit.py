"""Implicit knowledge (YOLOR) in the YOLOv7 detection heads, and its folding into the head convs.

YOLOR (Wang, Yeh, Liao, 2021; arXiv:2105.04206) adds learned, input-independent vectors to the
prediction heads; YOLOv7 (arXiv:2207.02696, section 3 and appendix) keeps them in its ``IDetect`` lead
head: ``ImplicitM * conv1x1(x + ImplicitA)``.  Both are per-channel constants, so after training they
fold exactly into the 1x1 conv (the paper's "implicit knowledge ... can be simplified to a vector"):

    m * (W (x + a) + b) = (m W) x + m (W a + b)

which is why the deployed graphs (``cfg/deploy``) have a plain ``Detect`` head with the same 1x1 convs.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class _ImplicitVector(nn.Module):
    """A learned vector ``(1, C, 1, 1)`` initialised from N(mean, std); subclasses say how it is applied."""

    def __init__(self, channels: int, *, mean: float, std: float) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=mean, std=std)


class ImplicitA(_ImplicitVector):
    """Learned additive vector: ``(B, C, H, W) -> (B, C, H, W)``, ``x + implicit``.

    Args:
        channels (int): Channels of the input it is added to.
        mean (float): Mean of the initialisation. Defaults to 0.
        std (float): Standard deviation of the initialisation. Defaults to 0.02.
    """

    def __init__(self, channels: int, *, mean: float = 0., std: float = .02) -> None:
        super().__init__(channels, mean=mean, std=std)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.implicit


class ImplicitM(_ImplicitVector):
    """Learned multiplicative vector: ``(B, C, H, W) -> (B, C, H, W)``, ``x * implicit``.

    Args:
        channels (int): Channels of the input it multiplies.
        mean (float): Mean of the initialisation. Defaults to 1.
        std (float): Standard deviation of the initialisation. Defaults to 0.02.
    """

    def __init__(self, channels: int, *, mean: float = 1., std: float = .02) -> None:
        super().__init__(channels, mean=mean, std=std)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.implicit


@torch.no_grad()
def fold_implicit_into_conv(conv: nn.Conv2d, *, implicit_a: ImplicitA | None = None,
                            implicit_m: ImplicitM | None = None) -> None:
    """Fold ``implicit_m * conv(x + implicit_a)`` into ``conv`` itself, in place.

    Args:
        conv (nn.Conv2d): A 1x1, unpadded, ungrouped conv with a bias (the head's prediction conv).
            Adding ``implicit_a`` before a padded conv would not commute with the zero padding,
            so other convs are rejected.
        implicit_a (ImplicitA, optional): Added to the conv input, ``C_in`` channels.
        implicit_m (ImplicitM, optional): Multiplies the conv output, ``C_out`` channels.

    Raises:
        ValueError: If the conv is not 1x1 / unpadded / ungrouped / biased, or widths do not match.
    """
    if conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1 or conv.bias is None:
        raise ValueError('fold_implicit_into_conv needs a biased, ungrouped 1x1 conv without padding, '
                         f'got {conv}')
    weight = conv.weight.view(conv.out_channels, conv.in_channels)  # (C_out, C_in, 1, 1) -> (C_out, C_in)
    if implicit_a is not None:
        a = implicit_a.implicit.view(-1)  # (1, C_in, 1, 1) -> (C_in,)
        if a.numel() != conv.in_channels:
            raise ValueError(f'ImplicitA has {a.numel()} channels, the conv takes {conv.in_channels}')
        conv.bias.add_(weight @ a)
    if implicit_m is not None:
        m = implicit_m.implicit.view(-1)  # (1, C_out, 1, 1) -> (C_out,)
        if m.numel() != conv.out_channels:
            raise ValueError(f'ImplicitM has {m.numel()} channels, the conv gives {conv.out_channels}')
        conv.bias.mul_(m)
        conv.weight.mul_(m.view(-1, 1, 1, 1))
