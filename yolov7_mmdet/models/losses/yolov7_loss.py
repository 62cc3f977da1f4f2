"""YOLOv7's training loss (official ``ComputeLossOTA`` / ``ComputeLossAuxOTA``), batched.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022, arXiv:2207.02696). Per level and head:

* box: mean over positives of ``1 - CIoU`` (YOLOv5's CIoU, in grid units relative to the cell);
* objectness: BCE over every prediction, target = the positive's CIoU (detached, clamped at 0) at
  assigned cells and 0 elsewhere, weighted per level (4.0, 1.0, 0.4) for P5 / (4.0, 1.0, 0.25, 0.06)
  for P6;
* class: BCE over positives and classes, skipped when there is a single class.

The gains follow the official training script: ``box *= 3 / L``, ``cls *= C / 80 * 3 / L``,
``obj *= (img_size / 640) ** 2 * 3 / L``, and each component is multiplied by the batch size, so the
sum of the returned components is the official total loss.

Lead-guided, coarse-to-fine (models with an aux head), in plain words:

* *lead guided*: both label sets are chosen by SimOTA from the **lead** head's predictions; the aux
  head does not pick its own targets, it learns what the final head considers good;
* *fine*: the lead head's candidates are the GT's centre cell and the 2 neighbours nearest to the
  centre (3 cells); *coarse*: the aux head's candidates are the centre cell and all 4 neighbours
  (5 cells), so the aux head gets more positives (recall), with weight 0.25;
* *the decoder constraint*: a predicted centre can only move between -0.5 and 1.5 cells from its
  cell's corner (``2 * sigmoid(t) - 0.5``). The two extra coarse cells lie on the far sides of the
  centre, so they can never put their box on the GT centre: their IoU, which is also their objectness
  target, stays below 1. They learn to be useful, never perfect.

Worked example: a GT centred at (3.3, 4.7) grid cells. Fine cells: (3, 4), (2, 4), (3, 5) (the centre
is left of and below its cell's middle); coarse adds (4, 4) and (3, 3). From (4, 4) the centre is at
offset x = 3.3 - 4 = -0.7 < -0.5, and from (3, 3) at y = 4.7 - 3 = 1.7 > 1.5: unreachable. Every fine
cell reaches its offset, e.g. (2, 4) needs (1.3, 0.7). More in ``docs/label_assignment.md``.

Everything is computed on padded tensors: no Python loop over images or boxes, no host sync. The
backward pass allocates one gradient map per level (``slot_gather.GatherSlotsAndObjectness``), and the
objectness and class BCEs use ``BCE(x, t) = softplus(x) - t * x``, so no dense target is built. Under
mixed precision the loss and its assignment run in fp32 (autocast off).
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS, TASK_UTILS

from ..task_modules.assigners import YOLOv7AssignResult, decode_boxes, sanitize_gt
from .slot_gather import GatherSlotsAndObjectness, last_positive_per_cell

# Official objectness weights per level (P3, P4, P5[, P6[, P7]]).
_OBJ_LEVEL_WEIGHTS = {3: (4.0, 1.0, 0.4), 4: (4.0, 1.0, 0.25, 0.06), 5: (4.0, 1.0, 0.25, 0.06, 0.02)}


def yolo_ciou(pred_xywh: Tensor, target_xywh: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of aligned (..., 4) centre-size boxes, YOLOv5 / YOLOv7 flavour.

    Differs from mmdet's ``ciou_loss`` on purpose: the aspect term's weight ``alpha`` is not gated by
    IoU > 0.5 and ``eps`` is added to the heights, so a zero-height target stays finite. Both match
    the official implementation.
    """
    pred_lt = pred_xywh[..., :2] - pred_xywh[..., 2:] / 2
    pred_rb = pred_xywh[..., :2] + pred_xywh[..., 2:] / 2
    tgt_lt = target_xywh[..., :2] - target_xywh[..., 2:] / 2
    tgt_rb = target_xywh[..., :2] + target_xywh[..., 2:] / 2
    inter = (torch.minimum(pred_rb, tgt_rb) - torch.maximum(pred_lt, tgt_lt)).clamp(min=0).prod(-1)
    pred_w, pred_h = (pred_rb - pred_lt).unbind(-1)
    tgt_w, tgt_h = (tgt_rb - tgt_lt).unbind(-1)
    pred_h, tgt_h = pred_h + eps, tgt_h + eps
    iou = inter / (pred_w * pred_h + tgt_w * tgt_h - inter + eps)

    enclose = torch.maximum(pred_rb, tgt_rb) - torch.minimum(pred_lt, tgt_lt)  # (..., 2)
    diagonal_sq = enclose.pow(2).sum(-1) + eps
    centre_dist_sq = ((tgt_lt + tgt_rb - pred_lt - pred_rb) ** 2).sum(-1) / 4
    aspect_gap = torch.atan(tgt_w / (tgt_h + eps)) - torch.atan(pred_w / (pred_h + eps))
    aspect = (4 / math.pi ** 2) * aspect_gap ** 2
    with torch.no_grad():
        alpha = aspect / (aspect - iou + (1 + eps))
    return iou - (centre_dist_sq / diagonal_sq + aspect * alpha)


def _inside_fraction(boxes: Tensor, regions: Tensor, eps: float = 1e-6) -> Tensor:
    """(B, P, 4) boxes, (B, N, 4) regions (xyxy) -> (B, P, N): the share of each box inside a region.

    The values of mmdet's ``bbox_overlaps(mode='iof')`` (box area floored at ``eps``), which builds its
    floor with ``new_tensor`` and so copies to the device (a host synchronisation) on every call.
    """
    # (B, P, 1, 2) against (B, 1, N, 2) -> (B, P, N, 2)
    inter_wh = (torch.minimum(boxes[:, :, None, 2:], regions[:, None, :, 2:])
                - torch.maximum(boxes[:, :, None, :2], regions[:, None, :, :2])).clamp(min=0)
    area = (boxes[..., 2:] - boxes[..., :2]).prod(-1).clamp(min=eps)  # (B, P)
    return inter_wh.prod(-1) / area[:, :, None]


@MODELS.register_module()
class YOLOv7Loss(nn.Module):
    """YOLOv7 loss with lead-guided, coarse-to-fine SimOTA assignment.

    Args:
        num_classes: number of classes C.
        assigner: config of the lead head's (fine) assigner.
        aux_assigner: config of the aux head's (coarse) assigner, used when aux predictions are given.
        aux_guided_by: ``'lead'`` (the paper: the aux set is computed from the lead head's predictions)
            or ``'aux'`` (ablation: independent assignment from the aux head's own predictions).
        box_gain, obj_gain, cls_gain: hyp ``box`` / ``obj`` / ``cls`` before the official scaling
            by levels, classes and image size.
        img_size: the training image size the ``obj`` gain is scaled with (``(img_size / 640) ** 2``).
        obj_level_weights: objectness weight per level; the official values by level count if None.
        aux_weight: weight of every aux term (official 0.25).
        label_smoothing: class label smoothing eps (targets 1 - eps / 2 and eps / 2).
        ignore_iof_thr: a non-positive prediction whose decoded box lies inside an ignore (crowd)
            region for at least this fraction of its area is left out of the objectness loss.
    """

    def __init__(self, *, num_classes: int,
                 assigner: dict = dict(
                     type='YOLOv7SimOTAAssigner', topk=10,
                     candidate_region=dict(type='YOLOv7CandidateRegion', neighbour_offset=0.5)),
                 aux_assigner: Optional[dict] = dict(
                     type='YOLOv7SimOTAAssigner', topk=20,
                     candidate_region=dict(type='YOLOv7CandidateRegion', neighbour_offset=1.0)),
                 aux_guided_by: str = 'lead', box_gain: float = 0.05, obj_gain: float = 0.7,
                 cls_gain: float = 0.3, img_size: int = 640,
                 obj_level_weights: Optional[Sequence[float]] = None, aux_weight: float = 0.25,
                 label_smoothing: float = 0.0, ignore_iof_thr: float = 0.5) -> None:
        super().__init__()
        if aux_guided_by not in ('lead', 'aux'):
            raise ValueError(f"aux_guided_by must be 'lead' or 'aux', got {aux_guided_by!r}")
        self.num_classes = num_classes
        self.assigner = TASK_UTILS.build(assigner)
        self.aux_assigner = TASK_UTILS.build(aux_assigner) if aux_assigner is not None else None
        self.aux_guided_by = aux_guided_by
        self.box_gain, self.obj_gain, self.cls_gain = box_gain, obj_gain, cls_gain
        self.img_size = img_size
        self.obj_level_weights = obj_level_weights
        self.aux_weight = aux_weight
        self.cls_pos, self.cls_neg = 1.0 - 0.5 * label_smoothing, 0.5 * label_smoothing
        self.ignore_iof_thr = ignore_iof_thr

    def forward(self, lead_preds: Sequence[Tensor], aux_preds: Optional[Sequence[Tensor]] = None, *,
                anchors: Tensor, strides: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
                gt_valid: Tensor, batch_input_shape: Tuple[int, int],
                ignore_bboxes: Optional[Tensor] = None,
                ignore_valid: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Compute the losses.

        Args:
            lead_preds: L raw maps (B, A, H_l, W_l, 5 + C) of the lead head.
            aux_preds: L raw maps of the aux head, same layout, or None.
            anchors: (L, A, 2) anchors in pixels.
            strides: (L,) strides in pixels.
            gt_bboxes: (B, M, 4) xyxy pixels in the network input.
            gt_labels: (B, M) class indices.
            gt_valid: (B, M) bool.
            batch_input_shape: (H, W) of the network input.
            ignore_bboxes: (B, N, 4) xyxy pixels of ignore (crowd) regions, or None.
            ignore_valid: (B, N) bool, required with ``ignore_bboxes``.

        Returns:
            ``loss_box``, ``loss_obj``, ``loss_cls`` (and ``loss_aux_*`` with aux predictions), each
            scaled by its gain and the batch size; their sum is the official total loss.
        """
        if aux_preds is not None and self.aux_assigner is None:
            raise ValueError('aux predictions were given but the loss has no aux_assigner')
        if ignore_bboxes is not None and ignore_valid is None:
            raise ValueError('ignore_bboxes needs ignore_valid')
        device = lead_preds[0].device
        # under mixed precision the maps may be fp16 / bf16: assignment and loss still run in fp32
        with torch.autocast(device.type, enabled=False):
            anchors = torch.as_tensor(anchors, dtype=torch.float32, device=device)
            strides = torch.as_tensor(strides, dtype=torch.float32, device=device)
            gt_bboxes, gt_valid = sanitize_gt(gt_bboxes.to(device), gt_valid.to(device), batch_input_shape)
            gt_labels = gt_labels.to(device).long()
            gts = dict(anchors=anchors, strides=strides, gt_bboxes=gt_bboxes, gt_labels=gt_labels,
                       gt_valid=gt_valid)
            ignore = None if ignore_bboxes is None else (ignore_bboxes.to(device).float(),
                                                         ignore_valid.to(device))

            gains = self._gains(len(lead_preds), batch=lead_preds[0].shape[0])
            lead_targets = self.assigner.assign(lead_preds, **gts)
            losses = self._scaled(self._head_losses(lead_preds, lead_targets, ignore, **gts), gains, '')
            if aux_preds is not None:
                guide = lead_preds if self.aux_guided_by == 'lead' else aux_preds
                aux_targets = self.aux_assigner.assign(guide, **gts)
                aux_terms = self._head_losses(aux_preds, aux_targets, ignore, **gts)
                losses.update(self._scaled(aux_terms, [g * self.aux_weight for g in gains], 'aux_'))
            return losses

    def _gains(self, num_levels: int, batch: int) -> Tuple[float, float, float]:
        """Official hyp scaling (train.py) times the batch size, for box, obj, cls."""
        level_scale = 3.0 / num_levels
        box = self.box_gain * level_scale
        obj = self.obj_gain * (self.img_size / 640) ** 2 * level_scale
        cls = self.cls_gain * self.num_classes / 80 * level_scale
        return box * batch, obj * batch, cls * batch

    @staticmethod
    def _scaled(terms: Tuple[Tensor, Tensor, Tensor], gains: Sequence[float],
                prefix: str) -> Dict[str, Tensor]:
        return {f'loss_{prefix}{name}': term * gain
                for name, term, gain in zip(('box', 'obj', 'cls'), terms, gains)}

    def _level_weights(self, num_levels: int) -> Sequence[float]:
        weights = self.obj_level_weights or _OBJ_LEVEL_WEIGHTS.get(num_levels)
        if weights is None or len(weights) < num_levels:
            raise ValueError(f'no objectness level weights for {num_levels} levels')
        return weights

    def _head_losses(self, preds: Sequence[Tensor], targets: YOLOv7AssignResult,
                     ignore: Optional[Tuple[Tensor, Tensor]], *, anchors: Tensor, strides: Tensor,
                     gt_bboxes: Tensor, gt_labels: Tensor,
                     gt_valid: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Unscaled box, objectness and class losses of one head, summed over levels."""
        level_weights = self._level_weights(len(preds))
        box = obj = cls = preds[0].new_zeros((), dtype=torch.float32)
        batch_inds = torch.arange(preds[0].shape[0], device=preds[0].device)[:, None]
        for level, pred in enumerate(preds):
            pos = targets.pos_mask[:, level]  # (B, K)
            grid_x, grid_y = targets.grid_x[:, level], targets.grid_y[:, level]
            gt_inds = targets.gt_inds[:, level]
            cells = self._cell_index(pred.shape[:4], targets.anchor_inds, grid_x, grid_y)  # (B, K)
            obj_weight = None
            if ignore is not None:  # (B, A, H, W): ignored negatives leave the objectness loss
                obj_weight = (~self._ignored(pred, anchors[level], strides[level], ignore)
                              | self._positive_cells(pred.shape[:4], pos, cells)).float()
            # (B, A, H, W, 5+C) gathered at (image, anchor, y, x) -> (B, K, 4), (B, K), (B, K, C)
            box_logits, obj_logits, cls_logits, obj_softplus = GatherSlotsAndObjectness.apply(
                pred, batch_inds, targets.anchor_inds[None], grid_y, grid_x, obj_weight)
            num_pos = pos.sum().clamp(min=1)

            ciou = self.slot_ciou(box_logits.float(), grid_x, grid_y, gt_inds, gt_bboxes,
                                   anchors[level][targets.anchor_inds], strides[level])
            box = box + torch.where(pos, 1.0 - ciou, 0.0).sum() / num_pos

            # objectness BCE(x, t) = softplus(x) - t * x, t = IoU of the cell's last positive, else 0
            writes = last_positive_per_cell(pos, cells)
            quality = ciou.detach().clamp(min=0)
            positive_term = torch.where(writes, obj_logits.float() * quality, 0.0).sum()
            num_terms = (math.prod(pred.shape[:4]) if obj_weight is None
                         else obj_weight.sum().clamp(min=1))
            obj = obj + (obj_softplus - positive_term) / num_terms * level_weights[level]

            if self.num_classes > 1:
                cls_bce = self._class_bce(cls_logits.float(), gt_labels.gather(1, gt_inds))
                cls = cls + torch.where(pos, cls_bce, 0.0).sum() / (num_pos * self.num_classes)
        return box, obj, cls

    def _class_bce(self, logits: Tensor, labels: Tensor) -> Tensor:
        """(B, K, C) class logits, (B, K) labels -> (B, K) BCE summed over the classes.

        The targets are ``cls_neg`` everywhere and ``cls_pos`` at the label; as
        ``BCE(x, t) = softplus(x) - t * x``, only the label's logit is gathered, no target is built.
        """
        label_logit = logits.gather(-1, labels.clamp(min=0)[..., None])[..., 0]  # padding may be -1
        bce = F.softplus(logits).sum(-1) - (self.cls_pos - self.cls_neg) * label_logit
        return bce - self.cls_neg * logits.sum(-1) if self.cls_neg else bce  # label smoothing

    @staticmethod
    def slot_ciou(raw_xywh: Tensor, grid_x: Tensor, grid_y: Tensor, gt_inds: Tensor,
                  gt_bboxes: Tensor, anchor_wh: Tensor, stride: Tensor) -> Tensor:
        """CIoU (B, K) between each slot's prediction and its GT, in grid units relative to the cell.

        The box loss is ``1 - CIoU`` at the positives, and the objectness target is the CIoU clamped
        at 0 (also used by the label-assignment visualiser).

        Args:
            raw_xywh: (B, K, 4) raw box outputs at the slots.
            grid_x, grid_y: (B, K) cell of each slot.
            gt_inds: (B, K) index of each slot's GT in ``gt_bboxes``.
            gt_bboxes: (B, M, 4) xyxy GT boxes, input pixels.
            anchor_wh: (K, 2) anchor of each slot, pixels.
            stride: the level's stride.
        """
        cell = torch.stack((grid_x, grid_y), dim=-1).float()  # (B, K, 2)
        pred_xy = raw_xywh[..., :2].sigmoid() * 2.0 - 0.5
        pred_wh = (raw_xywh[..., 2:].sigmoid() * 2.0) ** 2 * (anchor_wh / stride)
        # (B, M, 4) gathered at each slot's GT -> (B, K, 4)
        gt = gt_bboxes.gather(1, gt_inds[..., None].expand(-1, -1, 4)) / stride
        gt_xy = (gt[..., :2] + gt[..., 2:]) / 2 - cell
        gt_wh = gt[..., 2:] - gt[..., :2]
        return yolo_ciou(torch.cat((pred_xy, pred_wh), -1), torch.cat((gt_xy, gt_wh), -1))

    @staticmethod
    def _cell_index(shape: Tuple[int, int, int, int], anchor_inds: Tensor, grid_x: Tensor,
                    grid_y: Tensor) -> Tensor:
        """(B, K) index of each slot's cell in the flattened (B, A, H, W) map of its level."""
        batch, num_anchors, height, width = shape
        batch_inds = torch.arange(batch, device=grid_x.device)[:, None]
        return ((batch_inds * num_anchors + anchor_inds[None]) * height + grid_y) * width + grid_x

    @staticmethod
    def _positive_cells(shape: Tuple[int, int, int, int], pos: Tensor, cells: Tensor) -> Tensor:
        """(B, A, H, W) bool: the cells holding at least one positive slot."""
        num_cells = math.prod(shape)
        hit = pos.new_zeros(num_cells + 1)  # the last entry takes every non-positive slot
        hit.index_fill_(0, torch.where(pos, cells, num_cells).flatten(), True)
        return hit[:num_cells].view(shape)

    def _ignored(self, pred: Tensor, anchor_wh: Tensor, stride: Tensor,
                 ignore: Tuple[Tensor, Tensor]) -> Tensor:
        """(B, A, H, W) mask of predictions lying inside an ignore region (IoF >= ignore_iof_thr)."""
        ignore_bboxes, ignore_valid = ignore
        batch, num_anchors, height, width = pred.shape[:4]
        grid_y, grid_x = torch.meshgrid(torch.arange(height, device=pred.device),
                                        torch.arange(width, device=pred.device), indexing='ij')
        with torch.no_grad():
            # (B, A, H, W, 4) decoded boxes, anchors broadcast as (1, A, 1, 1, 2)
            boxes = decode_boxes(pred[..., :4].float(), grid_x, grid_y, anchor_wh[None, :, None, None],
                                 stride)
            # (B, A*H*W, 4) vs (B, N, 4) -> (B, A*H*W, N): share of each prediction inside a region
            iof = _inside_fraction(boxes.flatten(1, 3), ignore_bboxes)
            inside = ((iof >= self.ignore_iof_thr) & ignore_valid[:, None, :]).any(dim=-1)
        return inside.view(batch, num_anchors, height, width)
