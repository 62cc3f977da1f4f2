"""Benchmark: batched YOLOv7 assigner + loss against a straightforward per-image reference.

Both run in this process on the same random inputs: batch 16, YOLOv7-L level shapes at 640x640
(80x80, 40x40, 20x20, 3 anchors each), 80 classes, 10 / 50 / 200 GTs per image. The reference below
implements the same algorithm the obvious way, as the official code does: a Python loop over images,
the candidates of one image gathered with boolean masks, and a loop over that image's GTs for the
dynamic-k top-k (one ``.item()`` per GT). It is also the independent oracle of
``tests/test_models/test_assigner_reference.py``.

Usage::

    python benchmarks/bench_assigner_loss.py [--repeats 3] [--gts 10 50 200] [--threads N]

Prints, per GT count, the median time of each implementation and their ratio; results are recorded in
``docs/benchmarks.md``.
"""
import argparse
import statistics
import time
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

import yolov7_mmdet  # noqa: F401  (registers the loss and assigners)
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from yolov7_mmdet.models.losses import yolo_ciou
from yolov7_mmdet.models.task_modules.assigners import decode_boxes, sanitize_gt

L_ANCHORS = torch.tensor([[12, 16, 19, 36, 40, 28], [36, 75, 76, 55, 72, 146],
                          [142, 110, 192, 243, 459, 401]], dtype=torch.float32).view(3, 3, 2)
L_STRIDES = torch.tensor([8.0, 16.0, 32.0])
_STEPS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


# ----------------------------------------------------------------------------------------------
# Per-image reference
# ----------------------------------------------------------------------------------------------
def reference_candidates(boxes: Tensor, level_shape: Tuple[int, int], anchors: Tensor, stride: float,
                         neighbour_offset: float, anchor_t: float) -> Tensor:
    """Candidates of one image and level as rows [anchor, gy, gx, gt], official order (n, 4)."""
    height, width = level_shape
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
    size = boxes[:, 2:] - boxes[:, :2]
    rows = []
    for step_index, step in enumerate(_STEPS):
        for a in range(len(anchors)):
            ratio = size / anchors[a]
            fits = torch.maximum(ratio, 1 / ratio).max(dim=1).values < anchor_t
            if step_index == 0:
                near = torch.ones_like(fits)
            else:
                axis = 0 if step_index in (1, 3) else 1
                dist = centre[:, axis] if step_index in (1, 2) else (width, height)[axis] - centre[:, axis]
                near = (dist % 1 < neighbour_offset) & (dist > 1)
            keep = (fits & near).nonzero()[:, 0]
            cell = (centre[keep] - step * neighbour_offset).floor().long()
            gx = cell[:, 0].clamp(0, width - 1)
            gy = cell[:, 1].clamp(0, height - 1)
            rows.append(torch.stack((torch.full_like(keep, a), gy, gx, keep), dim=1))
    return torch.cat(rows)


def reference_assign(preds: Sequence[Tensor], anchors: Tensor, strides: Tensor, gt_bboxes: Tensor,
                     gt_labels: Tensor, gt_valid: Tensor, *, neighbour_offset: float, topk: int,
                     anchor_t: float = 4.0, unique_cells: bool = False) -> List[Tensor]:
    """SimOTA, one image and one GT at a time. Returns per level (n, 5) rows [b, a, gy, gx, gt]."""
    positives: List[List[Tensor]] = [[] for _ in preds]
    for b in range(gt_bboxes.shape[0]):
        gt_index = gt_valid[b].nonzero()[:, 0]
        if len(gt_index) == 0:
            continue
        boxes = gt_bboxes[b, gt_index]
        columns, decoded, logits = [], [], []
        for level, pred in enumerate(preds):
            cand = reference_candidates(boxes, tuple(pred.shape[2:4]), anchors[level],
                                        float(strides[level]), neighbour_offset, anchor_t)
            if unique_cells:
                cand = _first_occurrences(cand)
            at = pred[b, cand[:, 0], cand[:, 1], cand[:, 2]].detach().float()
            decoded.append(decode_boxes(at[:, :4], cand[:, 2], cand[:, 1], anchors[level][cand[:, 0]],
                                        float(strides[level])))
            logits.append(at[:, 4:])
            columns.append(torch.cat((torch.full_like(cand[:, :1], level), cand[:, :3]), dim=1))
        columns, decoded, logits = torch.cat(columns), torch.cat(decoded), torch.cat(logits)
        if len(columns) == 0:
            continue
        iou = bbox_overlaps(boxes, decoded)
        dynamic_k = iou.topk(min(topk, iou.shape[1]), dim=1).values.sum(1).int().clamp(min=1)
        score = (logits[:, 1:].sigmoid() * logits[:, :1].sigmoid()).sqrt()
        one_hot = F.one_hot(gt_labels[b, gt_index], score.shape[1]).float()
        cls_cost = F.binary_cross_entropy(score[None].expand(len(boxes), -1, -1),
                                          one_hot[:, None].expand(-1, len(columns), -1),
                                          reduction='none').sum(-1)
        cost = cls_cost - 3.0 * torch.log(iou + 1e-8)
        matching = torch.zeros_like(cost)
        for g in range(len(boxes)):
            matching[g, cost[g].topk(int(dynamic_k[g].item()), largest=False).indices] = 1.0
        contested = matching.sum(0) > 1
        matching[:, contested] = 0.0
        matching[cost[:, contested].argmin(0), contested.nonzero()[:, 0]] = 1.0
        taken = matching.sum(0) > 0
        owner = gt_index[matching[:, taken].argmax(0)]
        for level in range(len(preds)):
            at_level = columns[taken, 0] == level
            rows = torch.cat((torch.full_like(owner[at_level, None], b), columns[taken][at_level, 1:],
                              owner[at_level, None]), dim=1)
            positives[level].append(rows)
    return [torch.cat(p) if p else torch.zeros(0, 5, dtype=torch.long) for p in positives]


def _first_occurrences(cand: Tensor) -> Tensor:
    """Drop repeated (anchor, gy, gx) rows, keeping the first."""
    seen, keep = set(), []
    for i, key in enumerate(map(tuple, cand[:, :3].tolist())):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return cand[keep]


def reference_head_loss(preds: Sequence[Tensor], positives: Sequence[Tensor], anchors: Tensor,
                        strides: Tensor, gt_bboxes: Tensor, gt_labels: Tensor, num_classes: int,
                        level_weights: Sequence[float]) -> Tuple[Tensor, Tensor, Tensor]:
    """Unscaled (box, obj, cls) of one head from per-level positive lists."""
    box = obj = cls = torch.zeros(())
    for level, (pred, pos) in enumerate(zip(preds, positives)):
        b, a, gy, gx, g = pos.unbind(1)
        tobj = torch.zeros(pred.shape[:4])
        if len(pos):
            at = pred[b, a, gy, gx].float()
            stride = strides[level]
            pred_xywh = torch.cat((at[:, :2].sigmoid() * 2 - 0.5,
                                   (at[:, 2:4].sigmoid() * 2) ** 2 * anchors[level][a] / stride), 1)
            gt = gt_bboxes[b, g] / stride
            gt_xywh = torch.cat(((gt[:, :2] + gt[:, 2:]) / 2 - torch.stack((gx, gy), 1),
                                 gt[:, 2:] - gt[:, :2]), 1)
            ciou = yolo_ciou(pred_xywh, gt_xywh)
            box = box + (1 - ciou).mean()
            tobj[b, a, gy, gx] = ciou.detach().clamp(min=0)
            if num_classes > 1:
                target = F.one_hot(gt_labels[b, g], num_classes).float()
                cls = cls + F.binary_cross_entropy_with_logits(at[:, 5:], target)
        obj = obj + F.binary_cross_entropy_with_logits(pred[..., 4].float(), tobj) * level_weights[level]
    return box, obj, cls


def reference_loss(preds: Sequence[Tensor], *, anchors: Tensor, strides: Tensor, gt_bboxes: Tensor,
                   gt_labels: Tensor, gt_valid: Tensor, batch_input_shape: Tuple[int, int],
                   num_classes: int, img_size: int, topk: int = 10,
                   unique_cells: bool = False) -> Tuple[dict, List[Tensor]]:
    """Lead-only YOLOv7 loss (P5, no aux) the per-image way; the same outputs as YOLOv7Loss."""
    gt_bboxes, gt_valid = sanitize_gt(gt_bboxes, gt_valid, batch_input_shape)
    positives = reference_assign(preds, anchors, strides, gt_bboxes, gt_labels, gt_valid,
                                 neighbour_offset=0.5, topk=topk, unique_cells=unique_cells)
    level_weights = {3: (4.0, 1.0, 0.4), 4: (4.0, 1.0, 0.25, 0.06)}[len(preds)]
    box, obj, cls = reference_head_loss(preds, positives, anchors, strides, gt_bboxes, gt_labels,
                                        num_classes, level_weights)
    batch, scale = preds[0].shape[0], 3.0 / len(preds)
    losses = dict(loss_box=box * 0.05 * scale * batch,
                  loss_obj=obj * 0.7 * (img_size / 640) ** 2 * scale * batch,
                  loss_cls=cls * 0.3 * num_classes / 80 * scale * batch)
    return losses, positives


# ----------------------------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------------------------
def random_problem(batch: int, num_gts: int, *, img_size: int = 640, num_classes: int = 80,
                   seed: int = 0, image_shape: Optional[Tuple[int, int]] = None) -> dict:
    """Random logits for the L level shapes and ``num_gts`` random boxes per image."""
    gen = torch.Generator().manual_seed(seed)
    height, width = image_shape or (img_size, img_size)
    preds = [torch.randn(batch, 3, height // int(s), width // int(s), 5 + num_classes, generator=gen)
             for s in L_STRIDES]
    size = torch.rand(batch, num_gts, 2, generator=gen) * torch.tensor([width, height]) * 0.4 + 4
    centre = torch.rand(batch, num_gts, 2, generator=gen) * torch.tensor([width, height])
    gt_bboxes = torch.cat((centre - size / 2, centre + size / 2), -1)
    gt_labels = torch.randint(0, num_classes, (batch, num_gts), generator=gen)
    gt_valid = torch.ones(batch, num_gts, dtype=torch.bool)
    return dict(preds=preds, anchors=L_ANCHORS, strides=L_STRIDES, gt_bboxes=gt_bboxes,
                gt_labels=gt_labels, gt_valid=gt_valid, batch_input_shape=(height, width))


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--gts', type=int, nargs='+', default=[10, 50, 200])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    loss = MODELS.build(dict(type='YOLOv7Loss', num_classes=80, aux_assigner=None)).to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    print(f'batch {args.batch}, 640x640, YOLOv7-L levels, 80 classes, {torch.get_num_threads()} '
          f'threads, device {device}, median of {args.repeats}')
    print(f'{"GTs/img":>8} {"batched (s)":>12} {"per-image (s)":>14} {"speed-up":>9} {"|d total|":>10}')
    for num_gts in args.gts:
        prob = random_problem(args.batch, num_gts)
        prob = {k: ([p.to(device) for p in v] if k == 'preds' else
                    v.to(device) if isinstance(v, Tensor) else v) for k, v in prob.items()}
        preds = prob.pop('preds')

        def batched():
            out = loss(preds, **prob)
            sync()
            return out

        def per_image():
            out = reference_loss(preds, num_classes=80, img_size=640, **prob)[0]
            sync()
            return out

        ours, ref = sum(batched().values()), sum(per_image().values())  # warm-up + sanity
        t_ours, t_ref = _median_time(batched, args.repeats), _median_time(per_image, args.repeats)
        print(f'{num_gts:>8} {t_ours:>12.3f} {t_ref:>14.3f} {t_ref / t_ours:>8.1f}x '
              f'{float((ours - ref).abs()):>10.2e}')


if __name__ == '__main__':
    main()
