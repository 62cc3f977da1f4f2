"""ELAN and E-ELAN computational blocks of YOLOv7.

Paper: "YOLOv7: Trainable bag-of-freebies sets new state-of-the-art for real-time object detectors"
(Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696), section 3.1 and Fig. 2.

ELAN (efficient layer aggregation network)::

    x ─ 1x1 ─> b1                                          (short branch)
    x ─ 1x1 ─> h0 ─ 3x3 ─> h1 ─ 3x3 ─> h2 ... ─ 3x3 ─> hn   (main branch: a chain of n 3x3 convs)
    concat[hn, h(n-k), ..., h0, b1] ─ 1x1 ─> out             (the block's transition)

The concatenation order is the official one (newest first), so official weights map onto the block
by renaming keys.
``concat_every=k`` picks every k-th chain output counting back from ``hn`` down to ``h0``:

* backbone ELAN (L, W6: n=4, k=2): ``[h4, h2, h0, b1]``; X/E6: n=6 -> 5 tensors; D6: n=8 -> 6 tensors;
* neck ELAN-H and tiny (k=1): every intermediate output, e.g. L's neck ``[h4, h3, h2, h1, h0, b1]``,
  where the 1x1 branches are twice as wide as the 3x3 chain (``branch_channels = 2 * mid_channels``).

E-ELAN (extended ELAN) keeps the transition and changes only the computational block, as the paper
describes: *expand cardinality* (the 1x1 branches produce ``g`` groups of channels, the 3x3 chain is a
group convolution with ``g`` groups), *shuffle cardinality* (the tensors are concatenated group by group,
so each group of the transition sees its own ``g``-th of every tensor) and *merge cardinality* (the ``g``
group outputs of the transition are added). With ``g=2`` this is exactly the official E6E, which builds
two ELANs on the same input and adds their outputs; :func:`stack_cardinality_state` and
:func:`split_cardinality_state` convert weights between the two forms, and the parameter count is the same.

Public interface::

    elan_concat_channels(*, branch_channels, mid_channels, num_convs, concat_every) -> int
    ELAN(*, in_channels, out_channels, branch_channels, mid_channels=None, num_convs=4,
         concat_every=2, groups=1, conv_cfg=None, norm_cfg=YOLOV7_NORM_CFG,
         act_cfg=YOLOV7_ACT_CFG, init_cfg=None)
        .forward(x: (B, in, H, W)) -> (B, out, H, W)             (groups merged by addition)
        .forward_cardinality(x)    -> (B, groups, out, H, W)     (before the merge; E6E's aux reads [:, -1])
        .concat_channels: int                                    (width of one group's concatenation)
    stack_cardinality_state(states) -> state_dict       g single-group ELANs -> one g-group ELAN
    split_cardinality_state(state, groups) -> list      the inverse
"""
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from .conv import YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, yolov7_conv


def elan_concat_channels(*, branch_channels: int, mid_channels: int, num_convs: int,
                         concat_every: int) -> int:
    """Width of an ELAN's concatenation (per group): ``b1``, ``h0`` and ``num_convs // concat_every``
    chain outputs."""
    if num_convs < 1 or concat_every < 1 or num_convs % concat_every:
        raise ValueError(f'num_convs ({num_convs}) must be a positive multiple of concat_every '
                         f'({concat_every}) so that the chain input h0 is concatenated')
    return 2 * branch_channels + (num_convs // concat_every) * mid_channels


class ELAN(BaseModule):
    """ELAN block (``groups=1``) or E-ELAN block (``groups=g``); see the module docstring.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of the 1x1 transition (per group; groups are added).
        branch_channels: Width of each 1x1 branch (``b1``, ``h0``), per group.
        mid_channels: Width of the 3x3 chain, per group; defaults to ``branch_channels``.
        num_convs: Number of stacked 3x3 convs (the block's depth).
        concat_every: Concatenate every k-th chain output (2: backbone ELAN, 1: ELAN-H / tiny).
        groups: Cardinality ``g`` of E-ELAN; 1 is the plain ELAN.
        conv_cfg: mmcv conv config.
        norm_cfg: Normalisation config.
        act_cfg: Activation config.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 *,
                 in_channels: int,
                 out_channels: int,
                 branch_channels: int,
                 mid_channels: Optional[int] = None,
                 num_convs: int = 4,
                 concat_every: int = 2,
                 groups: int = 1,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if groups < 1:
            raise ValueError(f'groups must be >= 1, got {groups}')
        mid_channels = branch_channels if mid_channels is None else mid_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.concat_every = concat_every
        self.concat_channels = elan_concat_channels(
            branch_channels=branch_channels,
            mid_channels=mid_channels,
            num_convs=num_convs,
            concat_every=concat_every)
        cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        # Expand cardinality: both 1x1 branches read the shared input and emit g groups of channels.
        self.short_conv = yolov7_conv(in_channels, groups * branch_channels, 1, **cfgs)
        self.main_conv = yolov7_conv(in_channels, groups * branch_channels, 1, **cfgs)
        chain_in = [branch_channels] + [mid_channels] * (num_convs - 1)
        self.chain = nn.ModuleList(
            yolov7_conv(groups * c_in, groups * mid_channels, 3, groups=groups, **cfgs)
            for c_in in chain_in)
        self.final_conv = yolov7_conv(
            groups * self.concat_channels, groups * out_channels, 1, groups=groups, **cfgs)

    def forward_cardinality(self, x: Tensor) -> Tensor:
        """Run the block up to (not including) the merge of its groups.

        Args:
            x: (B, in_channels, H, W).

        Returns:
            Tensor: (B, groups, out_channels, H, W), one transition output per group.
        """
        short = self.short_conv(x)
        chain_outs = [self.main_conv(x)]
        for conv in self.chain:
            chain_outs.append(conv(chain_outs[-1]))
        # Newest first: [hn, h(n-k), ..., h0] then b1 (the official order).
        picked = chain_outs[::-self.concat_every] + [short]
        batch, _, height, width = x.shape
        # Shuffle cardinality: each (B, g*c_i, H, W) -> (B, g, c_i, H, W); concatenating on dim 2 gives
        # (B, g, sum c_i, H, W), i.e. channels grouped g-major, so group j of the transition reads
        # exactly its own part of every tensor. For g=1 this is the plain concatenation.
        grouped = torch.cat(
            [t.view(batch, self.groups, -1, height, width) for t in picked], dim=2)
        out = self.final_conv(grouped.view(batch, -1, height, width))
        # (B, g*out, H, W) -> (B, g, out, H, W)
        return out.view(batch, self.groups, self.out_channels, height, width)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W); E-ELAN merges its groups by addition."""
        per_group = self.forward_cardinality(x)
        if self.groups == 1:
            return per_group[:, 0]  # (B, 1, C, H, W) -> (B, C, H, W), a view
        return per_group.sum(dim=1)


def stack_cardinality_state(states: Sequence[Mapping[str, Tensor]]) -> Dict[str, Tensor]:
    """State dict of a ``g``-group E-ELAN from the state dicts of ``g`` parallel ELANs.

    The official E6E builds ``g`` ELANs on the same input and adds their outputs. Every tensor of our
    grouped block (1x1 branches, grouped 3x3 chain, grouped transition, their BN statistics) is the
    concatenation along the output-channel dim 0 of the ``g`` per-branch tensors, group ``j`` first
    from ``states[j]``. ``num_batches_tracked`` is taken from ``states[0]``.

    Args:
        states: ``g`` state dicts of ``ELAN(groups=1)`` blocks with identical shapes.

    Returns:
        dict: state dict for the same ``ELAN`` built with ``groups=g``.
    """
    if not states:
        raise ValueError('need at least one ELAN state dict')
    keys = list(states[0])
    for state in states[1:]:
        if list(state) != keys:
            raise ValueError('parallel ELANs must have identical state-dict keys')
    return {
        key: (states[0][key].clone() if key.endswith('num_batches_tracked') else torch.cat(
            [state[key] for state in states], dim=0))
        for key in keys
    }


def split_cardinality_state(state: Mapping[str, Tensor], groups: int) -> List[Dict[str, Tensor]]:
    """Inverse of :func:`stack_cardinality_state`: ``groups`` single-group ELAN state dicts."""
    split: List[Dict[str, Tensor]] = [{} for _ in range(groups)]
    for key, value in state.items():
        if key.endswith('num_batches_tracked'):
            parts = [value.clone() for _ in range(groups)]
        else:
            if value.shape[0] % groups:
                raise ValueError(f'{key}: dim 0 ({value.shape[0]}) is not divisible by {groups}')
            parts = [part.clone() for part in value.chunk(groups, dim=0)]
        for group_state, part in zip(split, parts):
            group_state[key] = part
    return split
