"""One switch from the training graph of a YOLOv7 model to its inference graph.

YOLOv7's training-only parts all reduce to a plain conv net after training (arXiv:2207.02696,
sections 3.2 and 3.3; ``cfg/deploy`` and ``Model.fuse()`` of the official code):

1. the implicit-knowledge vectors of the lead head fold into its 1x1 convs (exact);
2. the auxiliary head (P6 models) is dropped, and the neck stops emitting its taps;
3. with ``fuse_bn``: every RepConvN merges its branches into one 3x3 conv, then every remaining
   conv + BN pair folds into one biased conv (mmcv's ``fuse_conv_bn``). Exact in eval mode.

Without ``fuse_bn`` the result is the official ``cfg/deploy`` graph (BN and RepConv unfused); with it,
the fused graph whose parameter count the paper reports.
"""
from mmcv.cnn import fuse_conv_bn
from torch import nn

from .layers import RepConvN


def switch_to_deploy(model: nn.Module, *, fuse_bn: bool = True) -> nn.Module:
    """Switch ``model`` (a whole detector or any part of it) to its inference graph, in place.

    Every sub-module with a ``switch_to_deploy()`` method except RepConvN (the head: fold implicit,
    drop aux) is switched, every module with an ``aux_taps`` flag (the neck) stops emitting aux taps,
    and with ``fuse_bn`` RepConvN and BN are merged into the convs. Idempotent.

    Args:
        model (nn.Module): The model; its outputs in eval mode are unchanged up to float rounding.
        fuse_bn (bool): Also merge RepConvN branches and fold BN (uses the BN running statistics, so
            the model should not be trained afterwards). Defaults to True.

    Returns:
        nn.Module: ``model`` itself.
    """
    for module in list(model.modules()):  # a list: the head deletes its aux branch on the way
        if hasattr(module, 'aux_taps'):
            module.aux_taps = False
        if module is not model and not isinstance(module, RepConvN) and callable(
                getattr(module, 'switch_to_deploy', None)):
            module.switch_to_deploy()
    if fuse_bn:
        for module in model.modules():
            if isinstance(module, RepConvN):
                module.switch_to_deploy()
        fuse_conv_bn(model)
    return model
