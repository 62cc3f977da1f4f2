"""Compute and parameters of a detector's network, counted by mmengine in ``tensor`` mode."""
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.structures import DetDataSample
from mmengine.analysis import get_model_complexity_info
from torch import nn


def unscaled_data_samples(shape: Sequence[int], batch_size: int = 1) -> List[DetDataSample]:
    """Data samples holding only the metadata of images fed as they are.

    Args:
        shape: ``(H, W)`` of the images: their original, resized, padded and batch shape.
        batch_size: how many samples.

    Returns:
        list[DetDataSample]: ``batch_size`` samples with scale factor 1 and no annotations.
    """
    shape = tuple(shape)
    meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                scale_factor=(1.0, 1.0))
    return [DetDataSample(metainfo=meta) for _ in range(batch_size)]


class TensorMode(nn.Module):
    """``detector(images, data_samples, mode='tensor')`` with the data samples bound.

    mmengine's counter traces tensor inputs only; two-stage detectors need the metadata in
    ``tensor`` mode to predict their proposals.

    Args:
        detector: an mmdet detector.
        data_samples: the samples passed with every batch of images.
    """

    def __init__(self, detector: nn.Module, data_samples: List[DetDataSample]) -> None:
        super().__init__()
        self.detector = detector
        self.data_samples = data_samples

    def forward(self, images: torch.Tensor):
        return self.detector(images, self.data_samples, mode='tensor')


def network_complexity(model: nn.Module,
                       images: torch.Tensor,
                       data_samples: Optional[List[DetDataSample]] = None,
                       *,
                       show_table: bool = False) -> Dict[str, object]:
    """Count one forward of ``model`` on ``images`` with mmengine's ``get_model_complexity_info``.

    mmengine counts one multiply-accumulate as one "flop"; the YOLOv7 paper's FLOPs are twice that.

    Args:
        model: a detector; called as ``model(images)`` (its default ``tensor`` mode), or through
            :class:`TensorMode` when ``data_samples`` are given.
        images: the input batch ``(N, 3, H, W)``, on the model's device.
        data_samples: metadata to bind to the call (see :func:`unscaled_data_samples`), if any.
        show_table: also return mmengine's per-module table.

    Returns:
        dict: ``macs`` and ``flops`` (= 2 x macs) as ints, ``params`` (int, of the counted graph)
        and ``table`` (str, or None without ``show_table``).
    """
    if data_samples is not None:
        model = TensorMode(model, data_samples)
    with torch.no_grad():
        info = get_model_complexity_info(model, inputs=(images, ), show_table=show_table,
                                         show_arch=False)
    macs = int(info['flops'])
    return dict(macs=macs, flops=2 * macs, params=int(info['params']),
                table=info.get('out_table') if show_table else None)
