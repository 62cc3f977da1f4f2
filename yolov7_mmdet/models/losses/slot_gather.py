"""Sparse pieces of YOLOv7's loss: one gradient map per level, objectness without a dense target.

The loss reads a level's raw map ``(B, A, H, W, 5 + C)`` twice: the objectness logit of every cell,
and all channels at a few thousand assignment slots. Written with plain indexing, autograd's backward
allocates and zero-fills one full-size gradient map for each read and then adds them: three passes
over a map of tens of millions of values per level, which dominated the loss's backward pass.
:class:`GatherSlotsAndObjectness` does both reads in one autograd node whose backward zero-fills a
single map, writes the dense objectness gradient into its channel 4 and adds the slot gradients
in place.

The objectness BCE needs no dense target either. With ``softplus(x) = log(1 + exp(x))``,
``BCE(x, t) = softplus(x) - t * x`` for every target t, so the sum over a level is the sum of
``softplus`` over all cells (target 0 everywhere) minus ``t * x`` at the few positive cells, whose
logits the slot gather already holds (:func:`last_positive_per_cell` picks, per cell, the slot whose
IoU the official code would have written there).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


class GatherSlotsAndObjectness(torch.autograd.Function):
    """``(pred, indices, weight) -> (box, objectness and class logits at the slots, objectness sum)``.

    The slots' logits come out as three separate tensors, so that autograd builds no zero-filled
    ``(B, K, 5 + C)`` gradient per slice either.

    Forward args:
        pred: (B, A, H, W, 5 + C) raw map of one level (any float dtype, any strides).
        batch_inds, anchor_inds, grid_y, grid_x: index tensors broadcasting to (B, K).
        obj_weight: (B, A, H, W) float weight of every cell's objectness term, or None for 1.

    Forward returns:
        (B, K, 4) box, (B, K) objectness and (B, K, C) class logits of the slots in ``pred``'s dtype,
        and the 0-dim float32 sum of ``obj_weight * softplus(objectness)`` over the whole level.
    """

    @staticmethod
    def forward(ctx, pred: Tensor, batch_inds: Tensor, anchor_inds: Tensor, grid_y: Tensor,
                grid_x: Tensor, obj_weight: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        at_slots = pred[batch_inds, anchor_inds, grid_y, grid_x]  # (B, K, 5+C)
        softplus = F.softplus(pred[..., 4].float())  # BCE with target 0
        if obj_weight is not None:
            softplus = softplus * obj_weight
        ctx.save_for_backward(pred, batch_inds, anchor_inds, grid_y, grid_x, obj_weight)
        ctx.set_materialize_grads(False)
        return at_slots[..., :4], at_slots[..., 4], at_slots[..., 5:], softplus.sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_box: Optional[Tensor], grad_obj: Optional[Tensor],
                 grad_cls: Optional[Tensor], grad_sum: Optional[Tensor]):
        pred, batch_inds, anchor_inds, grid_y, grid_x, obj_weight = ctx.saved_tensors
        grad = torch.zeros_like(pred)  # the one full-size map; pred's strides, so no copy upstream
        if grad_sum is not None:
            obj_grad = torch.sigmoid(pred[..., 4].float()).mul_(grad_sum)  # d softplus / dx
            if obj_weight is not None:
                obj_grad.mul_(obj_weight)
            grad[..., 4] = obj_grad
        # slot gradients added at (image, anchor, y, x) of their channels; slots may share a cell
        cell = (batch_inds, anchor_inds, grid_y, grid_x)
        for channels, slot_grad in ((slice(0, 4), grad_box), (4, grad_obj), (slice(5, None), grad_cls)):
            if slot_grad is not None:
                grad[..., channels].index_put_(cell, slot_grad.to(grad.dtype), accumulate=True)
        return grad, None, None, None, None, None


def last_positive_per_cell(pos: Tensor, cells: Tensor) -> Tensor:
    """(B, K) bool: the positive slots that are the last positive of their cell in slot order.

    The official code writes the objectness targets of a level at once, ``tobj[b, a, gj, gi] = iou``,
    with its positives in candidate order (image, neighbour, anchor, GT), which is our slot order.
    When two positives share a cell, PyTorch's CPU ``index_put_`` keeps the last write; on CUDA the
    winner of duplicate indices is unspecified (it may differ from run to run). We take the CPU's
    last write, deterministically on every device. A stable sort groups equal cells and keeps slot
    order inside a group, without a dense buffer over all cells.

    Args:
        pos: (B, K) bool, positive slots.
        cells: (B, K) long, index of each slot's cell, unique across the batch (includes the image).
    """
    flat_pos = pos.flatten()
    # non-positives get keys of their own (below every cell index), so they never join a group
    order_ids = torch.arange(flat_pos.numel(), device=pos.device)
    keys = torch.where(flat_pos, cells.flatten(), -1 - order_ids)
    sorted_keys, order = keys.sort(stable=True)
    group_ends = torch.ones_like(flat_pos)
    group_ends[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    is_last = torch.empty_like(flat_pos).scatter_(0, order, group_ends)
    return (flat_pos & is_last).view_as(pos)
