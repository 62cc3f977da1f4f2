"""Where every weight of an official YOLOv7 model lives in our :class:`~yolov7_mmdet.models.detectors.YOLOv7`.

The official models (github WongKinYiu/yolov7) are flat lists of layers ``model.{i}`` built from
``cfg/training/*.yaml``; ours are nested (backbone / neck / head). Walking our modules in the official
layer order gives, for every module of ours that holds weights, the official layer prefix(es) it comes
from; the key suffixes (``conv.weight``, ``bn.running_var``, ...) are the same on both sides.

* backbone: :func:`~yolov7_mmdet.models.backbones.official_layout.official_backbone_layout`;
* neck, from the first layer after the backbone: SPPCSPC (``cv1..cv7``; tiny: 9 plain layers), then per
  top-down level: 1x1 reduce, Upsample, 1x1 lateral, Concat, ELAN; per bottom-up level: the transition
  (MP-C: 5 layers incl. the Concat with the skip; 3x3 conv or DownC: + 1 Concat), ELAN. An ELAN is
  ``1x1, 1x1, n x 3x3, Concat, 1x1``; E6E's grouped E-ELAN is two such runs and a ``Shortcut``, whose
  weights are stacked group by group;
* head: the lead 3x3 convs (L: ``RepConv``, whose ``rbr_dense`` / ``rbr_1x1`` are our ``conv3x3`` /
  ``conv1x1``), the aux 3x3 convs (P6), then ``IDetect`` / ``IAuxDetect``: ``m`` -> ``lead_preds``,
  ``m2`` -> ``aux_preds``, ``ia`` / ``im`` -> ``lead_implicit_a`` / ``lead_implicit_m``; the detect
  layer's ``anchor_grid`` (pixels) -> ``bbox_head.anchors`` (the file's, e.g. changed by the official
  auto-anchor, not necessarily the config's).

Public interface::

    official_layout(model) -> list of (our_prefix, [official prefix per E-ELAN group]), detect index
    convert_official_state_dict(state, model, *, prefix='model.') -> dict   (our state dict)
    official_anchors(anchors, anchor_grid, head) -> (L, A, 2) pixels
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from ..backbones.official_layout import DOWN_C_PARTS, MP_CONV_PARTS, official_backbone_layout
from ..layers import DownC, MPConv, RepConvN, stack_cardinality_state

Layout = list[tuple[str, list[str]]]

# SPPCSPC children: ours <- official
_SPPCSPC_PARTS = (('pre_convs.0', 'cv1'), ('shortcut_conv', 'cv2'), ('pre_convs.1', 'cv3'),
                  ('pre_convs.2', 'cv4'), ('post_convs.0', 'cv5'), ('post_convs.1', 'cv6'),
                  ('final_conv', 'cv7'))
# tiny SPP layers (official yolov7-tiny.yaml 29-37): ours <- offset from the first neck layer
_TINY_SPP_PARTS = (('shortcut_conv', 0), ('pre_convs', 1), ('post_convs', 6), ('final_conv', 8))
_TINY_SPP_LAYERS = 9
# RepConv branches: ours <- official (Sequential(conv, bn))
_REPCONV_PARTS = (('conv3x3.conv', 'rbr_dense.0'), ('conv3x3.bn', 'rbr_dense.1'),
                  ('conv1x1.conv', 'rbr_1x1.0'), ('conv1x1.bn', 'rbr_1x1.1'))
# anchors (grid units) and anchor_grid (pixels) agree to this relative tolerance (fp16 files round both)
_ANCHOR_AGREEMENT_RTOL = 1e-3


def _elan_layout(ours: str, block: nn.Module, index: int) -> tuple[Layout, int]:
    """An ELAN: per group ``1x1, 1x1, n x 3x3, Concat, 1x1``; groups > 1 end with a ``Shortcut``."""
    num_convs = len(block.chain)
    run = num_convs + 4
    starts = [index + group * run for group in range(block.groups)]
    names = ['short_conv', 'main_conv'] + [f'chain.{i}' for i in range(num_convs)]
    layout = [(f'{ours}.{name}', [str(start + offset) for start in starts]) for offset, name in enumerate(names)]
    layout.append((f'{ours}.final_conv', [str(start + run - 1) for start in starts]))
    return layout, index + block.groups * run + (1 if block.groups > 1 else 0)


def _transition_layout(ours: str, transition: nn.Module, index: int) -> tuple[Layout, int]:
    """A bottom-up transition and the Concat with the skip that follows it."""
    if isinstance(transition, MPConv):
        return [(f'{ours}.{part}', [str(index + offset)]) for part, offset in MP_CONV_PARTS], index + 5
    if isinstance(transition, DownC):
        return [(f'{ours}.{part}', [f'{index}.{child}']) for part, child in DOWN_C_PARTS], index + 2
    return [(ours, [str(index)])], index + 2  # a plain 3x3 stride-2 conv


def official_layout(model: nn.Module) -> tuple[Layout, int]:
    """Map our module prefixes to official layer prefixes, in official order.

    Args:
        model: A :class:`YOLOv7` detector with ``YOLOv7Backbone``, ``YOLOv7PAFPN`` and ``YOLOv7Head``
            (before ``switch_to_deploy``; the meta device is fine).

    Returns:
        tuple: ``[(our_prefix, [official_prefix, ...]), ...]`` (one official prefix per E-ELAN group,
        relative to ``model.``) and the index of the official detect layer.
    """
    backbone_layout, index = official_backbone_layout(model.backbone.arch)
    layout: Layout = [(f'backbone.{ours}', [str(o) for o in officials]) for ours, officials in backbone_layout]
    neck, head = model.neck, model.bbox_head
    if neck.spp.tiny:
        layout += [(f'neck.spp.{ours}', [str(index + offset)]) for ours, offset in _TINY_SPP_PARTS]
        index += _TINY_SPP_LAYERS
    else:
        layout += [(f'neck.spp.{ours}', [f'{index}.{child}']) for ours, child in _SPPCSPC_PARTS]
        index += 1
    for level in range(neck.num_levels - 2, -1, -1):  # top-down: reduce, Upsample, lateral, Concat, ELAN
        layout += [(f'neck.reduce_convs.{level}', [str(index)]), (f'neck.lateral_convs.{level}', [str(index + 2)])]
        part, index = _elan_layout(f'neck.top_down_blocks.{level}', neck.top_down_blocks[level], index + 4)
        layout += part
    for level in range(1, neck.num_levels):  # bottom-up: transition (+ Concat), ELAN
        part, index = _transition_layout(f'neck.downsamples.{level - 1}', neck.downsamples[level - 1], index)
        layout += part
        part, index = _elan_layout(f'neck.bottom_up_blocks.{level - 1}', neck.bottom_up_blocks[level - 1], index)
        layout += part
    for level, conv in enumerate(head.lead_convs):
        if isinstance(conv, RepConvN):
            layout += [(f'bbox_head.lead_convs.{level}.{ours}', [f'{index}.{theirs}']) for ours, theirs in _REPCONV_PARTS]
        else:
            layout.append((f'bbox_head.lead_convs.{level}', [str(index)]))
        index += 1
    if head.with_aux:
        for level in range(head.num_levels):
            layout.append((f'bbox_head.aux_convs.{level}', [str(index)]))
            index += 1
    for level in range(head.num_levels):
        layout += [(f'bbox_head.lead_preds.{level}', [f'{index}.m.{level}']),
                   (f'bbox_head.lead_implicit_a.{level}', [f'{index}.ia.{level}']),
                   (f'bbox_head.lead_implicit_m.{level}', [f'{index}.im.{level}'])]
        if head.with_aux:
            layout.append((f'bbox_head.aux_preds.{level}', [f'{index}.m2.{level}']))
    return layout, index


def convert_official_state_dict(state: Mapping[str, Tensor], model: nn.Module, *,
                                prefix: str = 'model.') -> dict[str, Tensor]:
    """Convert an official training-graph state dict into a state dict of ``model``.

    Args:
        state: ``Model.state_dict()`` of the official model (``model.{i}....`` keys; ``prefix`` says
            how they start). RepConv must be unfused (the released training checkpoints are).
        model: The target :class:`YOLOv7` (same variant and number of classes).
        prefix: Prefix of the official layer indices.

    Returns:
        dict: A state dict that ``model.load_state_dict(..., strict=True)`` accepts.

    Raises:
        KeyError: An official layer that the layout needs is missing, or official weights are left
            over (another variant, a fused checkpoint).
        ValueError: The official anchors do not fit the head (another number of anchors), or the
            detect layer's ``anchors`` and ``anchor_grid`` disagree.
    """
    layout, detect_index = official_layout(model)
    remaining = {key: value for key, value in state.items() if key.startswith(prefix)}
    converted: dict[str, Tensor] = {}
    for ours, officials in layout:
        per_group = []
        for official in officials:
            head = f'{prefix}{official}.'
            part = {key[len(head):]: remaining.pop(key) for key in list(remaining) if key.startswith(head)}
            if not part:
                raise KeyError(f'official state has no keys under {head!r} (for {ours})')
            per_group.append(part)
        merged = per_group[0] if len(per_group) == 1 else stack_cardinality_state(per_group)
        converted.update({f'{ours}.{key}': value for key, value in merged.items()})
    anchors = official_anchors(remaining.pop(f'{prefix}{detect_index}.anchors', None),
                               remaining.pop(f'{prefix}{detect_index}.anchor_grid', None), model.bbox_head)
    if remaining:
        raise KeyError(f'{len(remaining)} official weights have no place in this model, e.g. '
                       f'{sorted(remaining)[:3]} (another variant, or a fused checkpoint?)')
    converted['bbox_head.anchors'] = anchors  # a saved buffer: tools/test.py and load_from use it
    return converted


def official_anchors(anchors: Tensor | None, anchor_grid: Tensor | None, head: nn.Module) -> Tensor:
    """The official detect layer's anchors as ``head.anchors``: ``(L, A, 2)`` pixels, float32.

    The official ``Detect`` keeps them twice: ``anchor_grid`` ``(L, 1, A, 1, 1, 2)`` in pixels (used by
    inference) and ``anchors`` ``(L, A, 2)`` in grid units, pixels / stride (used by the loss); the
    official auto-anchor (``check_anchors``) rewrites both. ``anchor_grid`` is taken; ``anchors`` is
    checked against it. A file with neither (a bare state dict) keeps the head's.

    Raises:
        ValueError: Another number of anchors than the head's, or ``anchors`` x stride differs from
            ``anchor_grid``.
    """
    if anchors is None and anchor_grid is None:
        return head.anchors.detach().to('cpu', torch.float32).clone()
    strides = head.strides.to('cpu', torch.float32).view(-1, 1, 1)  # (L,) -> (L, 1, 1)
    from_grid = None if anchor_grid is None else _as_head_anchors(anchor_grid, 'anchor_grid', head)
    from_anchors = None if anchors is None else _as_head_anchors(anchors, 'anchors', head) * strides
    if from_grid is None:
        return from_anchors
    if from_anchors is not None and not torch.allclose(from_anchors, from_grid, rtol=_ANCHOR_AGREEMENT_RTOL, atol=0):
        raise ValueError(f'the official detect layer\'s anchors x stride {from_anchors.tolist()} differ '
                         f'from its anchor_grid {from_grid.tolist()}')
    return from_grid


def _as_head_anchors(tensor: Tensor, name: str, head: nn.Module) -> Tensor:
    """An official anchor buffer as ``(L, A, 2)`` float32 (``anchor_grid`` is ``(L, 1, A, 1, 1, 2)``)."""
    if tensor.numel() != head.anchors.numel() or tensor.shape[0] != head.anchors.shape[0]:
        raise ValueError(f'official {name} has shape {tuple(tensor.shape)}, this head '
                         f'{tuple(head.anchors.shape)} (levels, anchors per level, 2)')
    return tensor.to('cpu', torch.float32).reshape(head.anchors.shape)  # (L, [1,] A, [1, 1,] 2) -> (L, A, 2)
