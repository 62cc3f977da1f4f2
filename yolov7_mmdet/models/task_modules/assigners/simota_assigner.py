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
   an aux head); GT g takes its ``k_g`` cheapest columns. The copies of a cell have one cost; when
   only some of them fit in a GT's ``k_g``, it takes the first ones in candidate order, as the
   official ``torch.topk`` does on CUDA (see :func:`_lowest_copies`).
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
from torch import Tensor

from mmdet.registry import TASK_UTILS

from .candidate_region import NUM_NEIGHBOURS, YOLOv7CandidateRegion

_IOU_LOG_EPS = 1e-8  # official: -log(IoU + 1e-8)
_MIN_LOG = -100.0  # log floor, as torch's binary_cross_entropy clamps its logs


def _log1m(prob: Tensor) -> Tensor:
    """log(1 - p), floored like torch's binary_cross_entropy."""
    return torch.neg(prob).log1p_().clamp_(min=_MIN_LOG)  # one new tensor, not two


def _pairwise_iou(gt_bboxes: Tensor, boxes: Tensor) -> Tensor:
    """IoU (B, m, S) of (B, m, 4) and (B, S, 4) xyxy boxes.

    The same values as mmdet's ``bbox_overlaps`` (union floored at 1e-6), computed on separate x / y
    planes: about twice as fast on CPU, where the (B, m, S, 2) layout of the generic version vectorises
    poorly, and the hot spot of the assigner.
    """
    gt_x1, gt_y1, gt_x2, gt_y2 = (c[:, :, None] for c in gt_bboxes.unbind(-1))  # (B, m, 1) each
    x1, y1, x2, y2 = (c[:, None, :] for c in boxes.unbind(-1))  # (B, 1, S) each
    inter_w = (torch.minimum(gt_x2, x2) - torch.maximum(gt_x1, x1)).clamp_(min=0)
    inter_h = (torch.minimum(gt_y2, y2) - torch.maximum(gt_y1, y1)).clamp_(min=0)
    inter = inter_w.mul_(inter_h)
    gt_area = (gt_x2 - gt_x1) * (gt_y2 - gt_y1)
    area = (x2 - x1) * (y2 - y1)
    union = (gt_area + area).sub_(inter).clamp_(min=1e-6)
    return inter.div_(union)


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
        unique_cells: False (official): a cell proposed by n GTs is n columns, counted n times in the
            top-k IoU sums; a GT whose k-th and (k+1)-th cheapest columns are two copies of one cell
            then faces an exact tie that ``topk`` breaks arbitrarily, and two GTs may end up sharing
            the cell. True: every cell is one column (its first proposal), so each prediction learns at
            most one GT and no such tie exists; dynamic k then counts each cell once.
    """

    def __init__(self, *, candidate_region=dict(type='YOLOv7CandidateRegion'), topk: int = 10,
                 iou_cost_weight: float = 3.0, max_pairs_per_chunk: int = 2 ** 24,
                 unique_cells: bool = False) -> None:
        if isinstance(candidate_region, dict):
            candidate_region = TASK_UTILS.build(candidate_region)
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}')
        self.candidate_region: YOLOv7CandidateRegion = candidate_region
        self.topk = topk
        self.iou_cost_weight = iou_cost_weight
        self.max_pairs_per_chunk = max_pairs_per_chunk
        self.unique_cells = unique_cells

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

        prediction_ids, num_predictions = _prediction_ids(grid_x, grid_y, anchor_inds, level_shapes,
                                                          num_anchors)
        if self.unique_cells:
            slot_valid = _first_proposals(slot_valid, prediction_ids, num_predictions)
        if num_gts == 0:  # a batch without any GT: no slot at all, nothing to match
            return YOLOv7AssignResult(torch.zeros_like(slot_valid), torch.zeros_like(grid_x),
                                      grid_x, grid_y, anchor_inds)

        # (B, L, K) -> (B, S) with S = L * K columns per image.
        boxes, cls_cost_base, scores = self._column_features(
            preds, grid_x, grid_y, anchor_inds, anchors, strides, slot_valid.flatten(1))
        copies = _cell_copies(slot_valid.flatten(1), prediction_ids, num_predictions)
        pos, gt_inds = self._match(boxes, cls_cost_base, scores, gt_bboxes.float(), gt_labels,
                                   gt_valid, copies)
        return YOLOv7AssignResult(
            pos_mask=pos.view(batch, num_levels, -1), gt_inds=gt_inds.view(batch, num_levels, -1),
            grid_x=grid_x, grid_y=grid_y, anchor_inds=anchor_inds)

    def _column_features(self, preds: Sequence[Tensor], grid_x: Tensor, grid_y: Tensor,
                         anchor_inds: Tensor, anchors: Tensor, strides: Tensor,
                         column_valid: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Decode the guiding predictions at every slot.

        Returns:
            boxes: (B, S, 4) decoded xyxy pixels; zero-width (IoU 0 with anything) where invalid.
            cls_cost_base: (B, S) ``sum_c -log(1 - y_c)``, the class cost if no class were the
                label; inf for invalid columns, so that no GT takes them.
            scores: (B, C, S) ``y = sqrt(sigmoid(cls) * sigmoid(obj))`` (a transposed view).
        """
        batch = grid_x.shape[0]
        batch_inds = torch.arange(batch, device=grid_x.device)[:, None]
        boxes, scores = [], []
        for level, pred in enumerate(preds):
            # (B, A, H, W, 5+C) gathered at (image, anchor, y, x) -> (B, K, 5+C)
            at_slots = pred.detach()[batch_inds, anchor_inds[None], grid_y[:, level],
                                     grid_x[:, level]].float()
            boxes.append(decode_boxes(at_slots[..., :4], grid_x[:, level], grid_y[:, level],
                                      anchors[level].to(at_slots)[anchor_inds],
                                      strides[level].to(at_slots)))
            scores.append(at_slots[..., 5:].sigmoid_().mul_(at_slots[..., 4:5].sigmoid()).sqrt_())
        boxes = torch.cat(boxes, dim=1)
        boxes[..., 2] = torch.where(column_valid, boxes[..., 2], boxes[..., 0])
        scores = torch.cat(scores, dim=1)  # (B, S, C)
        cls_cost_base = -_log1m(scores).sum(dim=-1)
        cls_cost_base = cls_cost_base.masked_fill(~column_valid, float('inf'))
        return boxes, cls_cost_base, scores.transpose(1, 2)

    def _match(self, boxes: Tensor, cls_cost_base: Tensor, scores: Tensor, gt_bboxes: Tensor,
               gt_labels: Tensor, gt_valid: Tensor, copies: '_CellCopies') -> Tuple[Tensor, Tensor]:
        """Dynamic-k matching, folded over chunks of GT rows.

        Args:
            copies: the columns grouped by prediction, to break ties between copies of a cell.

        Returns:
            pos: (B, S) bool, the column is a positive.
            gt_inds: (B, S) long, the GT it learns.
        """
        batch, num_columns = cls_cost_base.shape
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
            cost, dynamic_k = self._chunk_cost(boxes, cls_cost_base, scores, gt_bboxes[:, rows],
                                               gt_labels[:, rows], gt_valid[:, rows], k_max)
            # each GT takes its dynamic_k cheapest columns: (B, m, k_max)
            top_cost, top_cols = cost.topk(k_max, dim=-1, largest=False)
            rank = torch.arange(k_max, device=device)
            takes = (rank < dynamic_k[..., None]) & top_cost.isfinite()
            top_cols = _lowest_copies(top_cols, takes, copies)
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

    def _chunk_cost(self, boxes: Tensor, cls_cost_base: Tensor, scores: Tensor, gt_bboxes: Tensor,
                    gt_labels: Tensor, gt_valid: Tensor, k_max: int) -> Tuple[Tensor, Tensor]:
        """Cost (B, m, S) of a chunk of m GT rows (inf where invalid) and their dynamic k (B, m)."""
        iou = _pairwise_iou(gt_bboxes, boxes)  # (B, m, S); 0 for invalid (zero-width) columns
        dynamic_k = iou.topk(k_max, dim=-1).values.sum(dim=-1).floor().long().clamp(min=1)
        dynamic_k = dynamic_k * gt_valid  # padded GTs take nothing
        # (B, C, S) rows picked by each GT's label -> (B, m, S): the label's score at every column
        labels = gt_labels.clamp(min=0)[:, :, None].expand(-1, -1, scores.shape[-1])
        label_score = scores.gather(1, labels)
        # class BCE summed over classes: the label's -log(1 - y) in the base becomes -log(y)
        cost = torch.log(iou.add_(_IOU_LOG_EPS)).mul_(-self.iou_cost_weight)
        cost += cls_cost_base[:, None, :]
        cost += _log1m(label_score)
        cost -= label_score.log_().clamp_(min=_MIN_LOG)
        return cost.masked_fill_(~gt_valid[:, :, None], float('inf')), dynamic_k


def _prediction_ids(grid_x: Tensor, grid_y: Tensor, anchor_inds: Tensor,
                    level_shapes: Sequence[Tuple[int, int]], num_anchors: int) -> Tuple[Tensor, int]:
    """(B, S) index of each column's prediction (level, anchor, y, x) among all predictions of an
    image (unique over the levels), and the number of predictions of an image."""
    ids, offset = [], 0
    for level, (height, width) in enumerate(level_shapes):
        # (B, K) index of the prediction (anchor, y, x) on this level
        ids.append(offset + (anchor_inds[None] * height + grid_y[:, level]) * width + grid_x[:, level])
        offset += num_anchors * height * width
    return torch.stack(ids, 1).flatten(1), offset


def _first_proposals(slot_valid: Tensor, prediction_ids: Tensor, num_predictions: int) -> Tensor:
    """Keep only the first valid slot of every (level, anchor, cell) of an image: (B, L, K) bool."""
    batch, num_levels, num_slots = slot_valid.shape
    cell_ids = torch.where(slot_valid.flatten(1), prediction_ids, num_predictions)  # (B, S)
    order = torch.arange(cell_ids.shape[1], device=cell_ids.device).expand_as(cell_ids)
    first = torch.full((batch, num_predictions + 1), cell_ids.shape[1], dtype=torch.long,
                       device=cell_ids.device)
    first.scatter_reduce_(1, cell_ids, order, reduce='amin')
    is_first = first.gather(1, cell_ids) == order
    return slot_valid & is_first.view(batch, num_levels, num_slots)


class _CellCopies(NamedTuple):
    """The columns of each image grouped by prediction: the copies of a cell proposed by several GTs.

    Attributes:
        by_cell: (B, S) column indices sorted by (prediction, column); invalid columns are groups of
            their own.
        group_start: (B, S) for every column, the position in ``by_cell`` of its group's first column.
    """
    by_cell: Tensor
    group_start: Tensor


def _cell_copies(column_valid: Tensor, prediction_ids: Tensor, num_predictions: int) -> _CellCopies:
    """Group the (B, S) columns by prediction (see :class:`_CellCopies`)."""
    columns = torch.arange(prediction_ids.shape[1], device=prediction_ids.device)
    ids = torch.where(column_valid, prediction_ids, num_predictions + columns)
    sorted_ids, by_cell = ids.sort(dim=1, stable=True)
    return _CellCopies(by_cell, torch.searchsorted(sorted_ids, ids))


def _lowest_copies(top_cols: Tensor, takes: Tensor, copies: _CellCopies) -> Tensor:
    """Give the copies of a cell that a GT takes to the cell's lowest columns: (B, m, k).

    A cell proposed by n GTs is n columns with one cost, so a GT's k-th and (k+1)-th cheapest
    columns are often two copies of one cell; which copy it takes decides which GTs share the cell
    and in which order their objectness targets are written. The official code runs ``torch.topk``
    per GT: CUDA's kernel (the official training) fills ties at the k-th value with the first
    columns seen, CPU's does so only through its ``partial_sort`` path (k = 1 and ``64 * k <= S``).
    Our ``topk`` picks some copies; this keeps their number and makes them the lowest columns
    (official candidate order). Exact ties between different predictions are left to ``topk``
    (they need two equal costs of continuous outputs).

    Args:
        top_cols: (B, m, k) columns of each GT's k cheapest, ascending cost.
        takes: (B, m, k) bool, the GT takes that column.
        copies: the columns grouped by prediction.
    """
    num_ranks = top_cols.shape[-1]
    # (B, m, k): the group of each taken column identifies its prediction
    group = copies.group_start.gather(1, top_cols.flatten(1)).view_as(top_cols)
    # (B, m, k, 1) vs (B, m, 1, k): taken columns listed before, of the same prediction
    same = (group[..., :, None] == group[..., None, :]) & takes[..., None, :]
    before = torch.ones(num_ranks, num_ranks, dtype=torch.bool, device=top_cols.device).tril(-1)
    copy_rank = (same & before).sum(-1)
    lowest = copies.by_cell.gather(1, (group + copy_rank).flatten(1)).view_as(top_cols)
    return torch.where(takes, lowest, top_cols)
