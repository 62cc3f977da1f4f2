"""Ground truths as padded tensors: the form the batched assigner and loss work on.

mmdet hands a list of per-image ``InstanceData``; YOLOv7's assignment works on the whole batch at
once, so the boxes are padded to the largest count in the batch with a validity mask.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def _box_tensor(bboxes) -> Tensor:
    """mmdet box structures (``HorizontalBoxes``) or plain tensors -> (N, 4) tensor."""
    return bboxes.tensor if hasattr(bboxes, 'tensor') else bboxes


def stack_gt_instances(batch_gt_instances: Sequence[InstanceData],
                       device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Pad per-image GT instances into batch tensors.

    Args:
        batch_gt_instances: one ``InstanceData`` per image with ``bboxes`` (N_i, 4) xyxy pixels
            (tensor or ``HorizontalBoxes``) and, optionally, ``labels`` (N_i,) (zeros when absent,
            e.g. for ignore regions).
        device: where the result goes; by default the device of the first image's boxes.

    Returns:
        gt_bboxes: (B, M, 4) float xyxy pixels, M = max N_i (zeros in the padding).
        gt_labels: (B, M) long (0 in the padding).
        gt_valid: (B, M) bool, True for real instances.
    """
    if len(batch_gt_instances) == 0:
        raise ValueError('stack_gt_instances needs at least one image')
    boxes = [_box_tensor(inst.bboxes).reshape(-1, 4).float() for inst in batch_gt_instances]
    device = device if device is not None else boxes[0].device
    boxes = [b.to(device) for b in boxes]
    labels = [inst.labels.to(device=device, dtype=torch.long) if 'labels' in inst else
              torch.zeros(len(b), dtype=torch.long, device=device)
              for inst, b in zip(batch_gt_instances, boxes)]
    valid = [torch.ones(len(b), dtype=torch.bool, device=device) for b in boxes]
    # N_i rows per image -> (B, M, ...) with zeros after each image's own rows
    return (pad_sequence(boxes, batch_first=True), pad_sequence(labels, batch_first=True),
            pad_sequence(valid, batch_first=True))


def sanitize_gt(gt_bboxes: Tensor, gt_valid: Tensor,
                image_shape: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Clip GT boxes to the input and drop degenerate ones.

    Rule: boxes are clipped to ``[0, W] x [0, H]``; a GT whose clipped width or height is not
    strictly positive (zero-size, inverted, or entirely outside the input) becomes invalid: it is
    neither a row of the assignment nor a box target. (The official code keeps such a GT; it then
    matches the cheapest cell anywhere in the image and trains a box towards a zero-size target.)

    Args:
        gt_bboxes: (B, M, 4) xyxy pixels.
        gt_valid: (B, M) bool.
        image_shape: (H, W) of the network input.

    Returns:
        The clipped boxes (B, M, 4) float and the updated validity (B, M).
    """
    height, width = image_shape
    x1, y1, x2, y2 = gt_bboxes.float().unbind(-1)
    clipped = torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width),
                           y2.clamp(0, height)), dim=-1)  # scalar bounds: nothing copied to the device
    size = clipped[..., 2:] - clipped[..., :2]
    return clipped, gt_valid & (size > 0).all(dim=-1)
