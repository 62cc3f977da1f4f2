"""Compound scaling of concatenation-based models (paper section 3.2): L -> X exactly."""
import dataclasses
from fractions import Fraction

import pytest
import torch

from yolov7_mmdet.models.backbones import YOLOV7_ARCHS, ELANSpec, YOLOv7Backbone
from yolov7_mmdet.models.scaling import (compound_scale, concat_width_factor, scale_block_depth,
                                         scale_width)

OFFICIAL_X_BACKBONE_PARAMS = 20_275_272  # REFERENCE.md, layers 0-58 of cfg/training/yolov7x.yaml


def test_l_scaled_by_depth_1_5_is_x():
    scaled, width = compound_scale(YOLOV7_ARCHS['l'], depth=1.5)
    assert width == Fraction(5, 4)  # 4 -> 5 concatenated tensors
    assert scaled == YOLOV7_ARCHS['x']
    with torch.device('meta'):
        backbone = YOLOv7Backbone(arch=scaled)
    assert sum(p.numel() for p in backbone.parameters()) == OFFICIAL_X_BACKBONE_PARAMS


def test_explicit_width_matching_the_rule_gives_the_same_table():
    assert compound_scale(YOLOV7_ARCHS['l'], depth=1.5, width=1.25)[0] == YOLOV7_ARCHS['x']


def test_scaling_keeps_block_inner_widths_and_widens_transitions():
    l_arch = YOLOV7_ARCHS['l']
    scaled, width = compound_scale(l_arch, depth=2.0)  # 4 -> 8 convs, 4 -> 6 tensors
    assert width == Fraction(3, 2)
    for old, new in zip(l_arch.stages, scaled.stages):
        assert new.block.num_convs == 8
        assert new.block.branch_channels == old.block.branch_channels
        assert new.block.out_channels == old.block.out_channels * 3 // 2
        assert new.transition_channels == old.transition_channels * 3 // 2
    assert [c.out_channels for c in scaled.stem] == [48, 96, 96]
    YOLOv7Backbone(arch=scaled)  # widths stay consistent: it builds


def test_identity_scaling_is_a_no_op():
    for name, arch in YOLOV7_ARCHS.items():
        assert compound_scale(arch, depth=1.0) == (arch, Fraction(1)), name


def test_max_pool_transitions_follow_the_previous_block():
    scaled, width = compound_scale(YOLOV7_ARCHS['tiny'], depth=2.0)  # 2 -> 4 convs, 4 -> 6 tensors
    assert width == Fraction(3, 2)
    for previous, stage in zip(scaled.stages, scaled.stages[1:]):
        assert stage.transition == 'max_pool'
        assert stage.transition_channels == previous.block.out_channels
    YOLOv7Backbone(arch=scaled)


def test_block_depth_keeps_the_concatenation_pattern():
    block = ELANSpec(branch_channels=64, num_convs=4, concat_every=2, out_channels=256)
    assert scale_block_depth(block, 1.5).num_convs == 6
    assert scale_block_depth(block, 1.2).num_convs == 4  # 4.8 -> nearest multiple of 2
    assert scale_block_depth(block, 0.1).num_convs == 2  # never below one step
    assert concat_width_factor(block, scale_block_depth(block, 2.0)) == Fraction(6, 4)
    with pytest.raises(ValueError, match='positive'):
        scale_block_depth(block, 0)


def test_scale_width_rounds_to_the_divisor():
    assert scale_width(32, Fraction(5, 4)) == 40
    assert scale_width(100, 1.1) == 112  # 110 -> nearest multiple of 8
    assert scale_width(4, 0.5) == 8  # never below the divisor


def test_blocks_widening_differently_need_an_explicit_width():
    l_arch = YOLOV7_ARCHS['l']
    mixed_stage = dataclasses.replace(
        l_arch.stages[0], block=dataclasses.replace(l_arch.stages[0].block, concat_every=1))
    mixed = dataclasses.replace(l_arch, stages=(mixed_stage, ) + l_arch.stages[1:])
    with pytest.raises(ValueError, match='explicit width'):
        compound_scale(mixed, depth=1.5)
    scaled, width = compound_scale(mixed, depth=1.5, width=1.25)
    assert width == Fraction(5, 4) and scaled.stages[0].block.num_convs == 6
