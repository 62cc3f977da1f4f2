"""Test helper: give every BatchNorm non-trivial statistics, so that folding and merging are really tested
(with fresh BN, running_mean=0 and running_var=1 hide most mistakes)."""
import torch
from torch import nn


@torch.no_grad()
def randomize_bn_(module: nn.Module, *, seed: int = 0) -> nn.Module:
    """Fill every BN's weight, bias, running_mean and running_var with seeded random values; in place."""
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            size = bn.num_features
            bn.weight.copy_(torch.rand(size, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(size, generator=generator) * 0.1)
            bn.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            bn.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
    return module
