"""Compound model scaling for concatenation-based models (YOLOv7, arXiv:2207.02696, section 3.2, Fig. 3c).

In a concatenation-based block (ELAN) the output width is the sum of the concatenated tensors, so
scaling the block's depth also changes its output width. Scaling depth and width independently (as for
plain or residual nets) would therefore change the input width of every following transition. The
paper's rule: scale the block's depth, compute how its output width changes, and scale the widths of
the transition layers by that same factor.

For YOLOv7 the blocks concatenate every second output of their 3x3 chain, so a depth factor 1.5 turns
4 stacked 3x3 convs into 6 and 4 concatenated tensors into 5: the concatenation (and so every
transition, stem and block output) widens by 5/4 = 1.25 while the chain's own width stays. Applied to
YOLOv7-L's backbone this gives YOLOv7-X's backbone exactly.

Everything here transforms arch tables (:mod:`yolov7_mmdet.models.backbones.yolov7_backbone` dataclasses),
never modules. Public interface::

    scale_block_depth(block: ELANSpec, depth: float) -> ELANSpec
    concat_width_factor(old: ELANSpec, new: ELANSpec) -> Fraction
    scale_width(channels: int, factor, divisor=8) -> int
    compound_scale(arch: BackboneArch, *, depth: float, width=None, divisor=8)
        -> tuple[BackboneArch, Fraction]         (the scaled arch and the width factor used)
"""
import dataclasses
from fractions import Fraction
from typing import Optional, Tuple, Union

from .backbones.yolov7_backbone import BackboneArch, ELANSpec, StageSpec

Number = Union[int, float, Fraction]


def scale_block_depth(block: ELANSpec, depth: float) -> ELANSpec:
    """Scale the number of stacked 3x3 convs of a block, keeping the concatenation pattern.

    The new depth is rounded to the nearest positive multiple of ``concat_every`` so that the block
    still concatenates its chain input (the official pattern). Widths are left to the caller.
    """
    if depth <= 0:
        raise ValueError(f'depth factor must be positive, got {depth}')
    step = block.concat_every
    num_convs = max(step, step * round(block.num_convs * depth / step))
    return dataclasses.replace(block, num_convs=num_convs)


def concat_width_factor(old: ELANSpec, new: ELANSpec) -> Fraction:
    """How much a block's concatenation (its output before the 1x1 transition) widened."""
    return Fraction(new.concat_channels, old.concat_channels)


def scale_width(channels: int, factor: Number, divisor: int = 8) -> int:
    """``channels * factor`` rounded to the nearest positive multiple of ``divisor``."""
    scaled = Fraction(channels) * Fraction(factor)
    return max(divisor, divisor * round(scaled / divisor))


def _derived_width_factor(arch: BackboneArch, depth: float) -> Fraction:
    factors = {
        concat_width_factor(stage.block, scale_block_depth(stage.block, depth))
        for stage in arch.stages
    }
    if len(factors) != 1:
        raise ValueError(f'the blocks widen by different factors {sorted(factors)} under depth '
                         f'{depth}; pass an explicit width factor')
    return factors.pop()


def compound_scale(arch: BackboneArch,
                   *,
                   depth: float,
                   width: Optional[Number] = None,
                   divisor: int = 8) -> Tuple[BackboneArch, Fraction]:
    """Compound-scale a concatenation-based backbone (paper Fig. 3c).

    Every block's depth is scaled by ``depth``; the stem convs, the stride-2 transitions and the blocks'
    1x1 transitions (their output widths) are scaled by ``width``, whose default is the widening of the
    blocks' concatenation that the depth scaling causes (the paper's rule). The widths inside the
    blocks (1x1 branches and the 3x3 chain) stay.

    Args:
        arch: The arch table to scale.
        depth: Depth factor of the computational blocks.
        width: Width factor of the transitions; ``None`` derives it from the blocks.
        divisor: Scaled widths are rounded to multiples of this.

    Returns:
        tuple: the scaled :class:`BackboneArch` and the width factor used (a ``Fraction``).
    """
    factor = _derived_width_factor(arch, depth) if width is None else Fraction(width)
    stem = tuple(
        dataclasses.replace(conv, out_channels=scale_width(conv.out_channels, factor, divisor))
        for conv in arch.stem)
    stages = []
    previous_out = stem[-1].out_channels
    for stage in arch.stages:
        block = scale_block_depth(stage.block, depth)
        block = dataclasses.replace(
            block, out_channels=scale_width(block.out_channels, factor, divisor))
        # a max-pool transition has no width of its own: it passes the previous block's output on
        transition_channels = (previous_out if stage.transition == 'max_pool' else scale_width(
            stage.transition_channels, factor, divisor))
        stages.append(StageSpec(stage.transition, transition_channels, block))
        previous_out = block.out_channels
    return dataclasses.replace(arch, stem=stem, stages=tuple(stages)), factor
