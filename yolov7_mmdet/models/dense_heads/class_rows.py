"""Fine-tuning from a checkpoint trained for another number of classes (e.g. the 80 COCO classes).

A prediction conv of YOLOv7 outputs, per anchor, ``[x, y, w, h, obj, cls_0 .. cls_{C-1}]``. When the
checkpoint's head was trained for C' != C classes, only the class rows are specific to its classes: the
box and objectness rows (and their ImplicitM scales) are loaded, and the C class rows of each anchor
keep the values the model was initialised with. Under mmengine's runner that is the official
initialisation (PyTorch's default conv init plus the class bias prior ``log(0.6 / (C - 0.99))``,
``YOLOv7Head.init_weights``), since the runner initialises the model before ``load_from``. The official
``train.py`` instead drops these tensors whole (``intersect_dicts`` skips every shape mismatch), so its
box and objectness rows start from scratch too.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import Tensor, nn

# Per anchor: x, y, w, h, objectness; then the classes.
BOX_AND_OBJECTNESS = 5
# Head parts whose output channels are anchor-major (A * (5 + C)), and the dim holding them.
_PREDICTION_PARTS = (('lead_preds', 0), ('aux_preds', 0), ('lead_implicit_m', 1))


def _prediction_tensors(head: nn.Module) -> Iterator[tuple[str, Tensor, int]]:
    """``(key relative to the head, tensor, output-channel dim)`` of every anchor-major tensor."""
    for part, dim in _PREDICTION_PARTS:
        modules = getattr(head, part, None)
        if modules is not None:
            for key, param in modules.named_parameters(prefix=part):
                yield key, param, dim


def _classes_in(theirs: Tensor, ours: Tensor, dim: int, num_anchors: int) -> Optional[int]:
    """The checkpoint's class count when ``theirs`` differs from ``ours`` only by it, else None."""
    if theirs.dim() != ours.dim() or theirs.shape == ours.shape:
        return None
    other_dims_equal = all(a == b for i, (a, b) in enumerate(zip(theirs.shape, ours.shape)) if i != dim)
    rows, remainder = divmod(theirs.shape[dim], num_anchors)
    if not other_dims_equal or remainder or rows <= BOX_AND_OBJECTNESS:
        return None
    return rows - BOX_AND_OBJECTNESS


@torch.no_grad()
def load_box_rows_only(head: nn.Module, state_dict: dict, prefix: str) -> Optional[str]:
    """Rewrite ``state_dict``'s prediction tensors of another class count to fit ``head``.

    Each such tensor becomes a copy of the head's own, with the box and objectness rows of every
    anchor taken from the checkpoint; other keys are left alone.

    Args:
        head: A ``YOLOv7Head`` (``num_base_priors`` anchors, ``num_classes`` classes).
        state_dict: The state dict being loaded (modified in place).
        prefix: The head's key prefix in ``state_dict`` (e.g. ``'bbox_head.'``).

    Returns:
        str or None: One line saying which tensors were loaded in part and which rows were skipped,
        or None when nothing had another class count.
    """
    num_anchors, num_classes = head.num_base_priors, head.num_classes
    adapted, their_classes = [], set()
    for key, ours, dim in _prediction_tensors(head):
        theirs = state_dict.get(prefix + key)
        classes = None if theirs is None else _classes_in(theirs, ours, dim, num_anchors)
        if classes is None:
            continue
        merged = ours.detach().clone()
        # (.., A*(5+C), ..) -> (.., A, 5+C, ..): the box and objectness rows are the first 5 per anchor
        merged.unflatten(dim, (num_anchors, -1)).narrow(dim + 1, 0, BOX_AND_OBJECTNESS).copy_(
            theirs.unflatten(dim, (num_anchors, -1)).narrow(dim + 1, 0, BOX_AND_OBJECTNESS))
        state_dict[prefix + key] = merged
        adapted.append(key)
        their_classes.add(classes)
    if not adapted:
        return None
    return (f'{prefix.rstrip(".")}: the checkpoint predicts {"/".join(map(str, sorted(their_classes)))} classes, this '
            f'head {num_classes}: loaded only the box and objectness rows of {", ".join(adapted)}; their '
            f'{num_anchors} anchors x {num_classes} class rows were skipped and keep their initialisation')
