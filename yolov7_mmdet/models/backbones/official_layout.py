"""Where each official YOLOv7 backbone layer lives in :class:`YOLOv7Backbone`.

The official models are flat lists of layers (``model.{i}``, from ``cfg/*/yolov7*.yaml``); ours are
nested. Walking an arch table in the official order gives, for every module of ours that holds
weights, the official layer(s) it comes from:

* stem: ``ReOrg`` (no weights) then one ``Conv`` per stem conv;
* transition ``conv``: one ``Conv``; ``max_pool``: one ``MP`` (no weights); ``down_c``: one ``DownC``
  (``cv1`` -> ``reduce_conv``, ``cv2`` -> ``down_conv``, ``cv3`` -> ``pool_conv``);
  ``mp_conv`` (MP-C): five layers ``MP``, 1x1 on the pool (``pool_conv``), 1x1 on the input
  (``reduce_conv``), 3x3 s2 (``down_conv``), ``Concat``;
* ELAN: 1x1 (``short_conv``), 1x1 (``main_conv``), the 3x3 chain, ``Concat``, 1x1 (``final_conv``);
  an E-ELAN with ``g`` groups is ``g`` such runs followed by one ``Shortcut`` (official E6E, g=2),
  whose weights are stacked group by group (:func:`~yolov7_mmdet.models.layers.stack_cardinality_state`).

Public interface::

    official_backbone_layout(arch) -> (list of (our_prefix, [official layer index per group]),
                                       number of official backbone layers)
    transition_layout(kind, ours, index) -> (layout, next index)      (also for the necks)
    elan_layout(num_convs, groups, ours, index) -> (layout, next index)
    MP_CONV_PARTS, DOWN_C_PARTS                                       (our sub-module <- official)
    convert_official_backbone_state(state, arch, *, prefix='model.') -> dict   (our state dict)

The official ``Conv`` holds ``conv`` and ``bn`` like mmcv's ``ConvModule``, so the key suffixes stay.
"""
from typing import Dict, List, Mapping, Tuple, Union

from torch import Tensor

from ..layers.elan import stack_cardinality_state
from .yolov7_backbone import BackboneArch, resolve_arch

Layout = List[Tuple[str, List[Union[int, str]]]]

# (our sub-module, official layer offset) of MP-C: MP, 1x1 on the pool, 1x1, 3x3 s2, Concat
MP_CONV_PARTS = (('pool_conv', 1), ('reduce_conv', 2), ('down_conv', 3))
# (our sub-module, official child) of DownC
DOWN_C_PARTS = (('reduce_conv', 'cv1'), ('down_conv', 'cv2'), ('pool_conv', 'cv3'))


def transition_layout(kind: str, ours: str, index: int) -> Tuple[Layout, int]:
    """Layout of a transition of ``kind`` (see ``TRANSITION_KINDS``) whose first official layer is
    ``index``; returns it and the index of the next official layer."""
    if kind == 'conv':
        return [(ours, [index])], index + 1
    if kind == 'max_pool':
        return [], index + 1
    if kind == 'mp_conv':
        return [(f'{ours}.{name}', [index + offset]) for name, offset in MP_CONV_PARTS], index + 5
    if kind == 'down_c':
        return [(f'{ours}.{name}', [f'{index}.{child}']) for name, child in DOWN_C_PARTS], index + 1
    raise ValueError(f'unknown transition kind {kind!r}')


def elan_layout(num_convs: int, groups: int, ours: str, index: int) -> Tuple[Layout, int]:
    """Layout of an ELAN (``groups=1``) or E-ELAN whose first official layer is ``index``; returns it
    and the index of the next official layer (after E6E's ``Shortcut``)."""
    run = num_convs + 4  # two 1x1 branches, the chain, Concat, final 1x1
    starts = [index + group * run for group in range(groups)]
    names = ['short_conv', 'main_conv'] + [f'chain.{i}' for i in range(num_convs)]
    layout: Layout = [(f'{ours}.{name}', [start + offset for start in starts])
                      for offset, name in enumerate(names)]
    layout.append((f'{ours}.final_conv', [start + run - 1 for start in starts]))
    shortcut = 1 if groups > 1 else 0
    return layout, index + groups * run + shortcut


def official_backbone_layout(arch: Union[str, BackboneArch]) -> Tuple[Layout, int]:
    """Map our module prefixes to official layer indices (one per E-ELAN group).

    Args:
        arch: An arch name or table.

    Returns:
        tuple: ``[(our_prefix, [official_layer, ...]), ...]`` where an official layer is an index
        ``i`` (``model.{i}``) or ``'{i}.cvN'`` inside a DownC, and the number of official backbone
        layers (the index the official neck starts at).
    """
    arch = resolve_arch(arch)
    layout: Layout = []
    index = 1 if arch.reorg else 0  # our stem Sequential also starts with ReOrg: same indices
    for _ in arch.stem:
        layout.append((f'stem.{index}', [index]))
        index += 1
    for number, stage in enumerate(arch.stages, start=1):
        part, index = transition_layout(stage.transition, f'stage{number}.0', index)
        layout += part
        part, index = elan_layout(stage.block.num_convs, stage.block.groups, f'stage{number}.1', index)
        layout += part
    return layout, index


def convert_official_backbone_state(state: Mapping[str, Tensor],
                                    arch: Union[str, BackboneArch],
                                    *,
                                    prefix: str = 'model.') -> Dict[str, Tensor]:
    """Convert the backbone part of an official state dict into :class:`YOLOv7Backbone` keys.

    Args:
        state: Official state dict (``model.{i}.conv.weight``, ...); keys beyond the backbone are
            ignored.
        arch: The arch the state belongs to.
        prefix: Prefix of the official layer indices.

    Returns:
        dict: state dict for ``YOLOv7Backbone(arch=arch)`` (E-ELAN groups stacked).
    """
    layout, _ = official_backbone_layout(arch)
    converted: Dict[str, Tensor] = {}
    for ours, officials in layout:
        per_group = []
        for official in officials:
            head = f'{prefix}{official}.'
            part = {key[len(head):]: value for key, value in state.items() if key.startswith(head)}
            if not part:
                raise KeyError(f'official state has no keys under {head!r} (for {ours})')
            per_group.append(part)
        merged = per_group[0] if len(per_group) == 1 else stack_cardinality_state(per_group)
        converted.update({f'{ours}.{key}': value for key, value in merged.items()})
    return converted
