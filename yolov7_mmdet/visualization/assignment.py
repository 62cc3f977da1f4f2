"""What YOLOv7's label assignment does on one image, collected from the project's own assigner.

:func:`assign_image` runs exactly the calls the loss makes (``stack_gt_instances``, ``sanitize_gt``,
then ``loss_module.assigner.assign`` on the lead head's predictions and, for models with an aux head,
``loss_module.aux_assigner.assign`` guided as ``loss_module.aux_guided_by`` says), so the positives
it returns are the ones the loss trains. It adds, for display only: the candidate slots of the fine and
coarse regions (the assigners' own ``candidate_region``) and each positive's soft objectness target,
the CIoU between the trained head's prediction at the cell and its GT, clamped at 0 (the loss's
target, computed by the loss's own ``YOLOv7Loss.slot_ciou``).

:func:`assignment_summary` gives the per-GT, per-level counts (fine / coarse candidates, lead / aux
positives); :func:`draw_assignment` draws it all on the image. See ``docs/label_assignment.md``.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from ..models.losses.yolov7_loss import YOLOv7Loss
from ..models.task_modules.assigners import (CandidateSlots, YOLOv7AssignResult, YOLOv7CandidateRegion,
                                             sanitize_gt, stack_gt_instances)


class HeadAssignment(NamedTuple):
    """The assignment of one head of one image (batch dimension 1 kept, as the assigner returns it).

    Attributes:
        name: ``'lead'`` or ``'aux'``.
        region: ``'fine'`` or ``'coarse'`` (the assigner's candidate region).
        candidates: the candidate slots, (1, L, 5, A, M) tensors.
        result: the assigner's output, (1, L, K) tensors, K = 5 * A * M.
        targets: (1, L, K) soft objectness target of every slot (meaningful where positive).
    """
    name: str
    region: str
    candidates: CandidateSlots
    result: YOLOv7AssignResult
    targets: Tensor


class ImageAssignment(NamedTuple):
    """Everything :func:`draw_assignment` and :func:`assignment_summary` need for one image.

    Attributes:
        gt_bboxes: (M, 4) xyxy pixels of the network input, clipped as the loss clips them.
        gt_labels: (M,) class indices.
        gt_valid: (M,) bool, False for GTs the loss ignores (degenerate after clipping).
        strides: (L,) level strides in pixels.
        level_shapes: L pairs (H_l, W_l).
        heads: the lead head's assignment, then the aux head's when the model has one.
        coarse_candidates: the coarse region's slots (1, L, 5, A, M), also for models without an aux
            head (then drawn for comparison only: nothing trains on them).
    """
    gt_bboxes: Tensor
    gt_labels: Tensor
    gt_valid: Tensor
    strides: Tensor
    level_shapes: List[Tuple[int, int]]
    heads: List[HeadAssignment]
    coarse_candidates: CandidateSlots


def _region_name(region: YOLOv7CandidateRegion) -> str:
    return 'coarse' if region.neighbour_offset > 0.5 else 'fine'


def _slot_targets(preds: Sequence[Tensor], result: YOLOv7AssignResult, gt_bboxes: Tensor,
                  anchors: Tensor, strides: Tensor) -> Tensor:
    """(1, L, K) CIoU (clamped at 0) between each slot's prediction and the GT it is assigned."""
    targets = []
    for level, pred in enumerate(preds):
        grid_x, grid_y = result.grid_x[:, level], result.grid_y[:, level]  # (1, K)
        # (1, A, H, W, 5+C) gathered at (anchor, y, x) of every slot -> (1, K, 5+C)
        at_slots = pred[0, result.anchor_inds, grid_y[0], grid_x[0]][None].float()
        ciou = YOLOv7Loss.slot_ciou(at_slots[..., :4], grid_x, grid_y, result.gt_inds[:, level], gt_bboxes,
                                    anchors[level][result.anchor_inds], strides[level])
        targets.append(ciou.clamp(min=0))
    return torch.stack(targets, dim=1)


@torch.no_grad()
def assign_image(head, lead_maps: Sequence[Tensor], aux_maps: Optional[Sequence[Tensor]],
                 gt_instances: InstanceData, batch_input_shape: Tuple[int, int]) -> ImageAssignment:
    """Run the loss's assigners on one image's raw head outputs.

    Args:
        head: a ``YOLOv7Head`` (its ``loss_module`` holds the assigners the loss uses).
        lead_maps: L raw lead maps (1, A*(5+C), H_l, W_l), as ``head.forward`` returns them.
        aux_maps: L raw aux maps or None (models without an aux head).
        gt_instances: the image's GTs (``bboxes`` xyxy in the network input, ``labels``).
        batch_input_shape: (H, W) of the network input.

    Returns:
        ImageAssignment.
    """
    if lead_maps[0].shape[0] != 1:
        raise ValueError(f'assign_image takes one image, got a batch of {lead_maps[0].shape[0]}')
    loss = head.loss_module
    device = lead_maps[0].device
    gt_bboxes, gt_labels, gt_valid = stack_gt_instances([gt_instances], device=device)
    gt_bboxes, gt_valid = sanitize_gt(gt_bboxes, gt_valid, batch_input_shape)
    gts = dict(anchors=head.anchors.float(), strides=head.strides.float(), gt_bboxes=gt_bboxes,
               gt_labels=gt_labels, gt_valid=gt_valid)
    level_shapes = [tuple(m.shape[2:]) for m in lead_maps]
    lead = [head._anchor_major(m) for m in lead_maps]
    aux = None if aux_maps is None else [head._anchor_major(m) for m in aux_maps]

    def run(name: str, assigner, guide: Sequence[Tensor], trained: Sequence[Tensor]) -> HeadAssignment:
        region = assigner.candidate_region
        candidates = region(gt_bboxes, gt_valid, anchors=gts['anchors'], strides=gts['strides'],
                            level_shapes=level_shapes)
        result = assigner.assign(guide, **gts)
        targets = _slot_targets(trained, result, gt_bboxes, gts['anchors'], gts['strides'])
        return HeadAssignment(name, _region_name(region), candidates, result, targets)

    heads = [run('lead', loss.assigner, lead, lead)]
    coarse_region = (loss.aux_assigner.candidate_region if loss.aux_assigner is not None else
                     YOLOv7CandidateRegion(neighbour_offset=1.0,
                                           anchor_t=loss.assigner.candidate_region.anchor_t))
    if aux is not None:
        heads.append(run('aux', loss.aux_assigner, lead if loss.aux_guided_by == 'lead' else aux, aux))
    coarse = coarse_region(gt_bboxes, gt_valid, anchors=gts['anchors'], strides=gts['strides'],
                           level_shapes=level_shapes)
    return ImageAssignment(gt_bboxes[0], gt_labels[0], gt_valid[0], gts['strides'], level_shapes,
                           heads, coarse)


# ------------------------------------------------------------------------------------- summaries
def positive_cells(head: HeadAssignment, level: int) -> List[Tuple[int, int, int, int, float]]:
    """The positives of one head on one level as (gt, anchor, x, y, target) tuples, slot order."""
    result = head.result
    pos = result.pos_mask[0, level]
    slots = pos.nonzero().flatten().tolist()
    return [(int(result.gt_inds[0, level, s]), int(result.anchor_inds[s]), int(result.grid_x[0, level, s]),
             int(result.grid_y[0, level, s]), float(head.targets[0, level, s])) for s in slots]


def candidate_cells(candidates: CandidateSlots, level: int, gt: int) -> List[Tuple[int, int, int]]:
    """The candidate (anchor, x, y) slots of one GT on one level (distinct, sorted)."""
    # (1, L, 5, A, M) -> (5, A) for this level and GT
    valid = candidates.valid[0, level, :, :, gt]
    neighbour, anchor = valid.nonzero(as_tuple=True)
    xs = candidates.grid_x[0, level, neighbour, anchor, gt].tolist()
    ys = candidates.grid_y[0, level, neighbour, anchor, gt].tolist()
    return sorted(set(zip(anchor.tolist(), xs, ys)))


def assignment_summary(assignment: ImageAssignment, class_names: Optional[Sequence[str]] = None) -> str:
    """A compact text table: per GT and level, fine / coarse candidate slots and positives per head.

    Cells are written ``fine cand / coarse cand / lead pos [/ aux pos]``; a candidate or positive is an
    (anchor, cell) pair, so a cell counts once per anchor.
    """
    fine = assignment.heads[0].candidates
    coarse = assignment.coarse_candidates
    levels = [f'P{int(torch.log2(s))}' for s in assignment.strides]  # stride 8 -> P3
    header = 'fine/coarse/' + '/'.join(f'{h.name} pos' for h in assignment.heads)
    lines = [f'GT | class | box (x1, y1, x2, y2) | {" | ".join(levels)}   [{header}]']
    per_head_pos = [[positive_cells(h, level) for level in range(len(levels))] for h in assignment.heads]
    for gt, (box, label, valid) in enumerate(zip(assignment.gt_bboxes.tolist(),
                                                 assignment.gt_labels.tolist(),
                                                 assignment.gt_valid.tolist())):
        name = class_names[label] if class_names is not None and label < len(class_names) else str(label)
        coords = ', '.join(f'{v:.0f}' for v in box)
        if not valid:
            lines.append(f'{gt} | {name} | ({coords}) | ignored (degenerate after clipping)')
            continue
        cells = []
        for level in range(len(levels)):
            counts = [len(candidate_cells(fine, level, gt)), len(candidate_cells(coarse, level, gt))]
            counts += [sum(p[0] == gt for p in pos[level]) for pos in per_head_pos]
            cells.append('/'.join(map(str, counts)))
        lines.append(f'{gt} | {name} | ({coords}) | {" | ".join(cells)}')
    totals = [sum(len(level) for level in pos) for pos in per_head_pos]
    lines.append('positives in all: ' + ', '.join(f'{h.name} {n}' for h, n in zip(assignment.heads, totals)))
    return '\n'.join(lines)


# ------------------------------------------------------------------------------ decoder constraint
def reachable_centre_region(grid_x: Tensor, grid_y: Tensor, stride: float) -> Tensor:
    """(..., 4) xyxy pixels where a cell can put its box centre: ``(2 sigmoid(t) - 0.5 + cell) * stride``
    spans ``cell - 0.5 .. cell + 1.5`` cells (open bounds), on both axes."""
    corner = torch.stack((grid_x, grid_y), dim=-1).float()
    return torch.cat(((corner - 0.5) * stride, (corner + 1.5) * stride), dim=-1)


def centre_reachable(gt_bboxes: Tensor, grid_x: Tensor, grid_y: Tensor, stride: float) -> Tensor:
    """(...) bool: whether a cell's decoder can place its centre on the GT centre (strictly inside
    the open region, as the sigmoid never reaches 0 or 1). ``gt_bboxes`` (..., 4) xyxy pixels."""
    centre = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2
    region = reachable_centre_region(grid_x, grid_y, stride)
    return ((centre > region[..., :2]) & (centre < region[..., 2:])).all(dim=-1)


def constraint_cells(assignment: ImageAssignment, level: int, gt: int) -> List[Tuple[int, int, str]]:
    """The distinct candidate cells of one GT on one level: (x, y, 'fine') for the fine region, then
    (x, y, 'coarse') for the cells only the coarse region adds."""
    fine = {(x, y) for _, x, y in candidate_cells(assignment.heads[0].candidates, level, gt)}
    coarse = {(x, y) for _, x, y in candidate_cells(assignment.coarse_candidates, level, gt)}
    return [(x, y, 'fine') for x, y in sorted(fine)] + [(x, y, 'coarse') for x, y in sorted(coarse - fine)]


def busiest_level(assignment: ImageAssignment, gt: int) -> int:
    """The level where the GT has the most lead positives (then the most fine candidates)."""
    lead = assignment.heads[0]
    levels = range(len(assignment.level_shapes))
    scores = [(sum(p[0] == gt for p in positive_cells(lead, level)),
               len(candidate_cells(lead.candidates, level, gt))) for level in levels]
    return max(range(len(scores)), key=lambda level: scores[level])
