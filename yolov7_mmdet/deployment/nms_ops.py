"""End-to-end NMS for ONNX export: the standard ``NonMaxSuppression`` op or TensorRT's ``EfficientNMS_TRT``.

Both forms give the same four outputs, TensorRT's layout (``K = max_dets``)::

    num_dets (N, 1) int32 | boxes (N, K, 4) float xyxy | scores (N, K) float | labels (N, K) int32

sorted by score; entries past ``num_dets`` are padding (boxes and scores 0, labels -1 in the ``onnx``
form; whatever TensorRT writes in the ``trt`` form). The NMS is class-aware and multi-label, as the
PyTorch postprocess (``YOLOv7Head.predict_by_feat``): every (box, class) pair above ``score_thr`` is a
candidate, suppressed only by boxes of its own class.

Each op is a ``torch.autograd.Function`` whose ``symbolic`` writes the graph node; its ``forward``
computes the same result in PyTorch (mmcv's NMS), so the traced graph has real shapes and the export
wrapper can be run eagerly. That forward loops over the images of a batch: it runs at export time only.
"""
from __future__ import annotations

import torch
from mmcv.ops import batched_nms
from torch import Tensor


def select_per_class(boxes: Tensor, scores: Tensor, *, iou_thr: float, score_thr: float) -> Tensor:
    """What ONNX ``NonMaxSuppression`` selects: ``(M, 3)`` int64 rows ``[image, class, box]``.

    Args:
        boxes (Tensor): ``(N, B, 4)`` xyxy boxes.
        scores (Tensor): ``(N, C, B)`` scores (class-major, the ONNX op's layout).
        iou_thr (float): A box is suppressed by a higher-scoring box of its class with IoU above this.
        score_thr (float): Candidates have a score above this.

    Returns:
        Tensor: the kept (image, class, box) triples. No per-class cap: the caller keeps the
        ``max_dets`` best of all classes, which a cap of ``max_dets`` per class cannot change.
    """
    selected = []
    for image, (image_boxes, image_scores) in enumerate(zip(boxes, scores)):  # export time only
        class_inds, box_inds = (image_scores > score_thr).nonzero(as_tuple=True)
        if box_inds.numel() == 0:
            continue
        candidates = image_boxes[box_inds]
        # shift to a zero minimum so that mmcv's class offsets separate the classes (see the head)
        _, keep = batched_nms(candidates - candidates.min(), image_scores[class_inds, box_inds],
                              class_inds, dict(type='nms', iou_threshold=iou_thr, split_thr=10 ** 9))
        selected.append(torch.stack([torch.full_like(keep, image), class_inds[keep], box_inds[keep]], 1))
    if not selected:
        return boxes.new_zeros((0, 3), dtype=torch.long)
    return torch.cat(selected)


def gather_top_detections(boxes: Tensor, scores: Tensor, selected: Tensor,
                          *, max_dets: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keep the ``max_dets`` best selected (box, class) pairs of each image, padded (see the module doc).

    Args:
        boxes (Tensor): ``(N, B, 4)`` xyxy boxes.
        scores (Tensor): ``(N, C, B)`` scores.
        selected (Tensor): ``(M, 3)`` rows ``[image, class, box]`` (the NMS output).
        max_dets (int): K, detections per image.

    Returns:
        tuple: ``num_dets`` (N, 1) int32, ``boxes`` (N, K, 4), ``scores`` (N, K), ``labels`` (N, K) int32.
    """
    num_classes, num_boxes = scores.shape[1:]  # static; the batch may be dynamic
    # one linear index per selected pair into the flat (N*C*B,) scores: a single-index gather and
    # scatter (ONNX Gather, ScatterElements) instead of three-index advanced indexing, whose ONNX
    # form the exporter warns is wrong for negative indices (NonMaxSuppression gives none anyway)
    flat_inds = (selected[:, 0] * num_classes + selected[:, 1]) * num_boxes + selected[:, 2]  # (M,)
    all_scores = scores.flatten()  # (N, C, B) -> (N*C*B,)
    kept_scores = torch.zeros_like(all_scores).scatter(0, flat_inds, all_scores[flat_inds])
    flat_scores = kept_scores.view(-1, num_classes * num_boxes)  # (N*C*B,) -> (N, C*B): selected, else 0
    top_scores, top_inds = flat_scores.topk(min(max_dets, flat_scores.shape[1]), dim=1)  # (N, K)
    valid = top_scores > 0  # candidates scored above score_thr >= 0; the rest is padding
    labels = torch.where(valid, top_inds // num_boxes, torch.full_like(top_inds, -1))
    top_box_inds = (top_inds % num_boxes).unsqueeze(-1).expand(-1, -1, 4)  # (N, K) -> (N, K, 4)
    top_boxes = boxes.gather(1, top_box_inds) * valid.unsqueeze(-1).to(boxes.dtype)
    num_dets = valid.sum(dim=1, keepdim=True).to(torch.int32)
    return num_dets, top_boxes, top_scores, labels.to(torch.int32)


class ONNXNonMaxSuppression(torch.autograd.Function):
    """The standard ONNX ``NonMaxSuppression`` (opset >= 10): boxes ``(N, B, 4)``, scores ``(N, C, B)``."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou_thr: float,
                score_thr: float) -> Tensor:
        return select_per_class(boxes, scores, iou_thr=iou_thr, score_thr=score_thr)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou_thr: float, score_thr: float):
        return g.op('NonMaxSuppression', boxes, scores,
                    g.op('Constant', value_t=torch.tensor([max_per_class], dtype=torch.long)),
                    g.op('Constant', value_t=torch.tensor([iou_thr], dtype=torch.float)),
                    g.op('Constant', value_t=torch.tensor([score_thr], dtype=torch.float)),
                    center_point_box_i=0)


class TRTEfficientNMS(torch.autograd.Function):
    """TensorRT's ``EfficientNMS_TRT`` plugin (version 1): boxes ``(N, B, 4)``, scores ``(N, B, C)``."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_dets: int, iou_thr: float,
                score_thr: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        class_major = scores.transpose(1, 2)  # (N, B, C) -> (N, C, B)
        selected = select_per_class(boxes, class_major, iou_thr=iou_thr, score_thr=score_thr)
        return gather_top_detections(boxes, class_major, selected, max_dets=max_dets)

    @staticmethod
    def symbolic(g, boxes, scores, max_dets: int, iou_thr: float, score_thr: float):
        outputs = g.op('TRT::EfficientNMS_TRT', boxes, scores, outputs=4,
                       background_class_i=-1, box_coding_i=0, iou_threshold_f=iou_thr,
                       max_output_boxes_i=max_dets, plugin_version_s='1', score_activation_i=0,
                       score_threshold_f=score_thr)
        # the exporter cannot infer a plugin's outputs: declare the shapes and types TensorRT gives
        batch = None  # named by the exporter: fixed, or the dynamic axis 'batch'
        shapes = ([batch, 1], [batch, max_dets, 4], [batch, max_dets], [batch, max_dets])
        dtypes = (torch.int32, torch.float32, torch.float32, torch.int32)
        for output, shape, dtype in zip(outputs, shapes, dtypes):
            output.setType(boxes.type().with_dtype(dtype).with_sizes(shape))
        return outputs


def onnx_nms(boxes: Tensor, scores: Tensor, *, iou_thr: float, score_thr: float,
             max_dets: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Detections through ONNX ``NonMaxSuppression``; ``boxes`` (N, B, 4), ``scores`` (N, B, C)."""
    class_major = scores.transpose(1, 2).contiguous()  # (N, B, C) -> (N, C, B), the op's layout
    selected = ONNXNonMaxSuppression.apply(boxes, class_major, max_dets, iou_thr, score_thr)
    return gather_top_detections(boxes, class_major, selected, max_dets=max_dets)


def trt_nms(boxes: Tensor, scores: Tensor, *, iou_thr: float, score_thr: float,
            max_dets: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Detections through TensorRT's ``EfficientNMS_TRT``; ``boxes`` (N, B, 4), ``scores`` (N, B, C)."""
    return TRTEfficientNMS.apply(boxes, scores, max_dets, iou_thr, score_thr)
