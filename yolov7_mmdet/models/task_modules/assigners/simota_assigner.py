"""YOLOv7's SimOTA label assignment, batched over images and ground truths.

The algorithm is the official ``ComputeLossOTA.build_targets`` (YOLOv7, arXiv:2207.02696; SimOTA from
YOLOX, arXiv:2107.08430), reproduced exactly but without any Python loop over images or GTs and without
host synchronisation:

1. Candidates: the slots of :class:`YOLOv7CandidateRegion` (fine: 3 cells, coarse: 5 cells per GT,
   level and anchor). All candidates of an image form its columns; every GT of the image is a row, so a
   GT may also take a cell proposed by another GT, and a cell proposed by several GTs appears several
   times (one column per proposal), exactly as in the official code.
2. Cost of GT g for column s, from the *lead* head's predictions at that cell:
   ``BCE(sqrt(sigmoid(cls) * sigmoid(obj)), one_hot(label_g)) summed over classes
   + 3 * -log(IoU(gt_g, decoded box_s) + 1e-8)``.
3. Dynamic k: ``k_g = max(1, floor(sum of the top-k IoUs of row g))`` with top-k 10 (P5) or 20 (with
   an aux head); GT g takes its ``k_g`` cheapest columns.
4. One GT per column: a column taken by several GTs goes to the GT with the smallest cost for it
   (the minimum over *all* GTs of the image, as the official code does).

Memory stays bounded on crowded images: the (GT x column) matrices are built for a chunk of GT rows at a
time (``max_pairs_per_chunk`` elements), the class cost is gathered at each GT's label instead of being
expanded over all classes, and the per-column outcome (how many GTs took it, which one, the cheapest GT)
is folded chunk by chunk. The number of chunks depends only on tensor shapes, so nothing waits on the
device.

Deviations from the official code (documented in ``docs/label_assignment.md`` and tested):

* GT boxes are used in pixels on both axes (the official scales them with the image height only,
  which is wrong for non-square inputs).
* Boxes are clipped to the input; a GT whose clipped width or height is not positive is ignored (the
  official keeps it as a row that matches the cheapest cell anywhere in the image).
* Images without GTs produce no positives and never touch the device in a special way (the official
  creates empty results on ``cuda:0``).
"""
from typing import NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps

from .candidate_region import NUM_NEIGHBOURS, YOLOv7CandidateRegion

_IOU_LOG_EPS = 1e-8  # official: -log(IoU + 1e-8)
_MIN_LOG = -100.0  # log floor, as torch's binary_cross_entropy clamps its logs


class YOLOv7AssignResult(NamedTuple):
    """Assignment targets; every tensor is (B, L, K) with K = 5 * A * M slots per level.

    Slot k of a level stands for (neighbour, anchor, source GT) = unravel(k, (5, A, M)); its anchor
    is ``anchor_inds[k]``. A positive slot is a (cell, GT) pair to train; two positive slots may share a
    cell (official semantics, see ``docs/label_assignment.md``).

    Attributes:
        pos_mask: the slot is a positive.
        gt_inds: index into the M padded GTs of the image that the slot learns (meaningful where
            ``pos_mask``).
        grid_x: cell column on the slot's level.
        grid_y: cell row on the slot's level.
        anchor_inds: (K,) anchor index of every slot (the same on every level and image).
    """
    pos_mask: Tensor
    gt_inds: Tensor
    grid_x: Tensor
    grid_y: Tensor
    anchor_inds: Tensor


def decode_boxes(raw_xywh: Tensor, grid_x: Tensor, grid_y: Tensor, anchor_wh: Tensor,
                 stride: Union[float, Tensor]) -> Tensor:
    """Official YOLOv7 decode to xyxy pixels.

    Args:
        raw_xywh: (..., 4) raw logits (t_x, t_y, t_w, t_h).
        grid_x, grid_y: (...) cell indices.
        anchor_wh: (..., 2) anchor sizes in pixels (broadcastable).
        stride: the level's stride in pixels (a float or a 0-dim tensor on any device).

    Returns:
        (..., 4) boxes as xyxy pixels: xy = (2 * sigmoid(t_xy) - 0.5 + cell) * stride,
        wh = (2 * sigmoid(t_wh)) ** 2 * anchor.
    """
    cell = torch.stack((grid_x, grid_y), dim=-1).to(raw_xywh.dtype)
    centre = (raw_xywh[..., :2].sigmoid() * 2.0 - 0.5 + cell) * stride
    size = (raw_xywh[..., 2:].sigmoid() * 2.0) ** 2 * anchor_wh
    return torch.cat((centre - size / 2, centre + size / 2), dim=-1)


@TASK_UTILS.register_module()
class YOLOv7SimOTAAssigner:
    """SimOTA on YOLOv7's candidate region, fully batched (see the module docstring).

    Args:
        candidate_region: config (or instance) of the candidate selector; the fine region
            (``neighbour_offset=0.5``) for the lead head, the coarse one (``1.0``) for the aux head.
        topk: how many of a GT's best IoUs are summed for its dynamic k (10 for P5 models, 20 when the
            model trains an aux head; also the most columns one GT can take).
        iou_cost_weight: weight of ``-log IoU`` in the cost (official 3.0).
        max_pairs_per_chunk: upper bound on the elements of one (B, GT chunk, columns) matrix; lower it
            to trade speed for memory on crowded images.
    """

    def __init__(self, *, candidate_region=dict(type='YOLOv7CandidateRegion'), topk: int = 10,
                 iou_cost_weight: float = 3.0, max_pairs_per_chunk: int = 2 ** 24) -> None:
        if isinstance(candidate_region, dict):
            candidate_region = TASK_UTILS.build(candidate_region)
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}')
        self.candidate_region: YOLOv7CandidateRegion = candidate_region
        self.topk = topk
        self.iou_cost_weight = iou_cost_weight
        self.max_pairs_per_chunk = max_pairs_per_chunk

    @torch.no_grad()
    def assign(self, preds: Sequence[Tensor], *, anchors: Tensor, strides: Tensor, gt_bboxes: Tensor,
               gt_labels: Tensor, gt_valid: Tensor) -> YOLOv7AssignResult:
        """Assign GTs to cells of every level.

        Args:
            preds: L raw maps (B, A, H_l, W_l, 5 + C) of the head whose predictions guide the
                assignment (the lead head, for both the fine and the coarse set).
            anchors: (L, A, 2) anchors in pixels.
            strides: (L,) strides in pixels.
            gt_bboxes: (B, M, 4) xyxy pixels, clipped to the input (see :func:`sanitize_gt`).
            gt_labels: (B, M) class indices.
            gt_valid: (B, M) bool, False for padding and ignored GTs.

        Returns:
            YOLOv7AssignResult with (B, L, 5 * A * M) tensors.
        """
        level_shapes = [tuple(p.shape[2:4]) for p in preds]
        anchors = torch.as_tensor(anchors, dtype=torch.float32, device=gt_bboxes.device)
        strides = torch.as_tensor(strides, dtype=torch.float32, device=gt_bboxes.device)
        slots = self.candidate_region(gt_bboxes, gt_valid, anchors=anchors, strides=strides,
                                      level_shapes=level_shapes)
        batch, num_levels, _, num_anchors, num_gts = slots.valid.shape
        # (B, L, 5, A, M) -> (B, L, K): slots of a level in official candidate order.
        slot_valid = slots.valid.flatten(2)
        grid_x = slots.grid_x.flatten(2)
        grid_y = slots.grid_y.flatten(2)
        anchor_inds = torch.arange(num_anchors, device=gt_bboxes.device)[None, :, None].expand(
            NUM_NEIGHBOURS, -1, num_gts).flatten()  # (K,)

        if num_gts == 0:  # a batch without any GT: no slot at all, nothing to match
            return YOLOv7AssignResult(torch.zeros_like(slot_valid), torch.zeros_like(grid_x),
                                      grid_x, grid_y, anchor_inds)

        boxes, cls_cost_base, cls_cost_delta = self._column_features(
            preds, grid_x, grid_y, anchor_inds, anchors, strides)
        # (B, L, K) -> (B, S) with S = L * K columns per image.
        pos, gt_inds = self._match(boxes, cls_cost_base, cls_cost_delta, slot_valid.flatten(1),
                                   gt_bboxes.float(), gt_labels, gt_valid)
        return YOLOv7AssignResult(
            pos_mask=pos.view(batch, num_levels, -1), gt_inds=gt_inds.view(batch, num_levels, -1),
            grid_x=grid_x, grid_y=grid_y, anchor_inds=anchor_inds)

    def _column_features(self, preds: Sequence[Tensor], grid_x: Tensor, grid_y: Tensor,
                         anchor_inds: Tensor, anchors: Tensor,
                         strides: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Decode the guiding predictions at every slot.

        Returns:
            boxes: (B, S, 4) decoded xyxy pixels.
            cls_cost_base: (B, S) ``sum_c -log(1 - y_c)``, the class cost if no class were the label.
            cls_cost_delta: (B, C, S) what labelling class c adds: ``-log(y_c) + log(1 - y_c)``,
                with ``y = sqrt(sigmoid(cls) * sigmoid(obj))``.
        """
        batch = grid_x.shape[0]
        batch_inds = torch.arange(batch, device=grid_x.device)[:, None]
        boxes, log_y = [], []
        for level, pred in enumerate(preds):
            # (B, A, H, W, 5+C) gathered at (image, anchor, y, x) -> (B, K, 5+C)
            at_slots = pred.detach()[batch_inds, anchor_inds[None], grid_y[:, level],
                                     grid_x[:, level]].float()
            boxes.append(decode_boxes(at_slots[..., :4], grid_x[:, level], grid_y[:, level],
                                      anchors[level].to(at_slots)[anchor_inds], strides[level].to(at_slots)))
            # log sqrt(sigmoid(cls) * sigmoid(obj)), (B, K, C)
            log_y.append(0.5 * (F.logsigmoid(at_slots[..., 5:]) + F.logsigmoid(at_slots[..., 4:5])))
        log_y = torch.cat(log_y, dim=1)  # (B, S, C)
        log_not_y = torch.log1p(-log_y.exp()).clamp(min=_MIN_LOG)
        cls_cost_base = -log_not_y.sum(dim=-1)
        # (B, S, C) -> (B, C, S), so that a GT's label selects a row.
        cls_cost_delta = (log_not_y - log_y.clamp(min=_MIN_LOG)).transpose(1, 2)
        return torch.cat(boxes, dim=1), cls_cost_base, cls_cost_delta.contiguous()

    def _match(self, boxes: Tensor, cls_cost_base: Tensor, cls_cost_delta: Tensor,
               column_valid: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
               gt_valid: Tensor) -> Tuple[Tensor, Tensor]:
        """Dynamic-k matching, folded over chunks of GT rows.

        Returns:
            pos: (B, S) bool, the column is a positive.
            gt_inds: (B, S) long, the GT it learns.
        """
        batch, num_columns = column_valid.shape
        num_gts = gt_bboxes.shape[1]
        device = boxes.device
        take_count = torch.zeros(batch, num_columns, dtype=torch.long, device=device)
        taken_by = torch.full((batch, num_columns), -1, dtype=torch.long, device=device)
        cheapest_cost = torch.full((batch, num_columns), float('inf'), device=device)
        cheapest_gt = torch.zeros(batch, num_columns, dtype=torch.long, device=device)
        chunk = max(1, self.max_pairs_per_chunk // max(1, batch * num_columns))
        k_max = min(self.topk, num_columns)
        for start in range(0, num_gts, chunk):  # a shape-only loop: chunks of GT rows
            rows = slice(start, min(start + chunk, num_gts))
            cost, dynamic_k = self._chunk_cost(boxes, cls_cost_base, cls_cost_delta, column_valid,
                                               gt_bboxes[:, rows], gt_labels[:, rows],
                                               gt_valid[:, rows], k_max)
            # each GT takes its dynamic_k cheapest columns: (B, m, k_max)
            top_cost, top_cols = cost.topk(k_max, dim=-1, largest=False)
            rank = torch.arange(k_max, device=device)
            takes = (rank < dynamic_k[..., None]) & top_cost.isfinite()
            row_ids = torch.arange(rows.start, rows.stop, device=device)[None, :, None]
            take_count.scatter_add_(1, top_cols.flatten(1), takes.flatten(1).long())
            taken_by.scatter_reduce_(1, top_cols.flatten(1),
                                     torch.where(takes, row_ids, -1).flatten(1), reduce='amax')
            # the cheapest GT of every column, over all GTs of the image
            chunk_min, chunk_arg = cost.min(dim=1)
            better = chunk_min < cheapest_cost
            cheapest_cost = torch.where(better, chunk_min, cheapest_cost)
            cheapest_gt = torch.where(better, chunk_arg + rows.start, cheapest_gt)
        pos = take_count > 0
        gt_inds = torch.where(take_count > 1, cheapest_gt, taken_by.clamp(min=0))
        return pos, gt_inds

    def _chunk_cost(self, boxes: Tensor, cls_cost_base: Tensor, cls_cost_delta: Tensor,
                    column_valid: Tensor, gt_bboxes: Tensor, gt_labels: Tensor, gt_valid: Tensor,
                    k_max: int) -> Tuple[Tensor, Tensor]:
        """Cost (B, m, S) of a chunk of m GT rows (inf where invalid) and their dynamic k (B, m)."""
        pair_valid = gt_valid[:, :, None] & column_valid[:, None, :]  # (B, m, S)
        iou = bbox_overlaps(gt_bboxes, boxes).masked_fill(~pair_valid, 0.0)  # (B, m, S)
        dynamic_k = iou.topk(k_max, dim=-1).values.sum(dim=-1).floor().long().clamp(min=1)
        # (B, C, S) rows picked by each GT's label -> (B, m, S)
        labels = gt_labels.clamp(min=0)[:, :, None].expand(-1, -1, cls_cost_delta.shape[-1])
        cls_cost = cls_cost_base[:, None, :] + cls_cost_delta.gather(1, labels)
        cost = cls_cost - self.iou_cost_weight * torch.log(iou + _IOU_LOG_EPS)
        return cost.masked_fill(~pair_valid, float('inf')), dynamic_k

