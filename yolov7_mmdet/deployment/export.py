"""Export a YOLOv7 detector to ONNX: the deployed graph, decode and (optionally) NMS in one file.

The exported graph is always the inference graph (:func:`yolov7_mmdet.models.deploy.switch_to_deploy`:
RepConvN merged, BN fused, implicit folded, aux head dropped). Its input ``images`` is the batch the
config's ``data_preprocessor`` makes: ``(N, 3, H, W)`` float32, RGB, ``(pixel - mean) / std``, letterboxed.
Its outputs depend on ``nms`` (see ``OUTPUT_LAYOUTS``). Everything a runtime needs for pre- and
postprocessing is written into the model's ``metadata_props`` (JSON values, see :func:`export_metadata`).

The exporter is TorchScript-based ``torch.onnx.export(dynamo=False)``: the dynamo exporter of torch 2.x
needs ``onnxscript`` (not in the stack) and cannot trace the ``autograd.Function`` symbolics that write
the NMS nodes; the TorchScript path needs neither and covers opsets 11-20.
"""
from __future__ import annotations

import io
import json
import math
import numbers
import os.path as osp
import warnings
from typing import Optional, Sequence

import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import Tensor, nn

from ..datasets.rect_eval import square_eval_dataloader
from ..utils.atomic import atomic_write_bytes, refuse_overwriting_inputs
from ..utils.launch import check_checkpoint_fits
from ..version import __version__
from .nms_ops import onnx_nms, trt_nms

NMS_MODES = ('none', 'onnx', 'trt')
MIN_OPSET = 11  # NonMaxSuppression (10) with the TopK / ScatterND / dynamic shapes of opset 11
OUTPUT_NAMES = {
    'none': ('predictions',),
    'onnx': ('num_dets', 'boxes', 'scores', 'labels'),
    'trt': ('num_dets', 'boxes', 'scores', 'labels'),
}
_DETECTIONS = ('num_dets (N, 1) int32; boxes (N, K, 4) float32 x1 y1 x2 y2 in network-input pixels; '
               'scores (N, K) float32; labels (N, K) int32; sorted by score, entries past num_dets '
               'are padding')
OUTPUT_LAYOUTS = {
    'none': ('predictions (N, B, 4 + 1 + C) float32: x1 y1 x2 y2 in network-input pixels, objectness, '
             'C class probabilities; score = objectness * class probability (one class: objectness)'),
    'onnx': _DETECTIONS + ' (boxes and scores 0, labels -1)',
    'trt': _DETECTIONS + ' (as TensorRT writes it)',
}


class YOLOv7ExportModel(nn.Module):
    """The deployed detector with decode and NMS, as one traceable module.

    Args:
        detector (nn.Module): A ``YOLOv7`` detector; switched to its inference graph here (in place).
        nms (str): ``none`` (decoded predictions), ``onnx`` (standard NonMaxSuppression) or ``trt``
            (TensorRT EfficientNMS_TRT).
        score_thr (float): Score threshold of the NMS forms.
        iou_thr (float): IoU threshold of the NMS forms.
        max_dets (int): Detections per image K of the NMS forms.
    """

    def __init__(self, detector: nn.Module, *, nms: str = 'onnx', score_thr: float = 0.001,
                 iou_thr: float = 0.65, max_dets: int = 300) -> None:
        super().__init__()
        if nms not in NMS_MODES:
            raise ValueError(f'nms must be one of {NMS_MODES}, got {nms!r}')
        check_nms_args(score_thr=score_thr, iou_thr=iou_thr, max_dets=max_dets)
        self.detector = detector.eval().switch_to_deploy()
        self.nms = nms
        self.nms_args = dict(score_thr=score_thr, iou_thr=iou_thr, max_dets=max_dets)

    def forward(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor, Tensor]:
        """``images`` (N, 3, H, W) -> the outputs of ``OUTPUT_LAYOUTS[self.nms]``."""
        lead_maps, _ = self.detector._forward(images)
        head = self.detector.bbox_head
        if self.nms == 'none':
            boxes, objectness, class_probs = head.decode_with_objectness(lead_maps)
            return torch.cat([boxes, objectness, class_probs], dim=-1)  # (N, B, 4 + 1 + C)
        boxes, scores = head.decode(lead_maps)  # (N, B, 4), (N, B, C)
        nms = onnx_nms if self.nms == 'onnx' else trt_nms
        return nms(boxes, scores, **self.nms_args)


def check_nms_args(*, score_thr: float, iou_thr: float, max_dets: int) -> None:
    """Refuse NMS settings that give a model which never detects, or invalid metadata (one line).

    Scores are probabilities: a threshold must be finite with ``0 <= score_thr < 1`` (NaN compares
    false with every score, 1 or more keeps nothing); ``0 < iou_thr <= 1``; ``max_dets`` a positive
    integer.
    """
    problems = []
    if not (isinstance(score_thr, numbers.Real) and math.isfinite(score_thr) and 0 <= score_thr < 1):
        problems.append(f'--score-thr must be in [0, 1), got {score_thr}')
    if not (isinstance(iou_thr, numbers.Real) and math.isfinite(iou_thr) and 0 < iou_thr <= 1):
        problems.append(f'--iou-thr must be in (0, 1], got {iou_thr}')
    if isinstance(max_dets, bool) or not isinstance(max_dets, numbers.Integral) or max_dets < 1:
        problems.append(f'--max-dets must be a positive integer, got {max_dets}')
    if problems:
        raise ValueError('; '.join(problems) + '.')


def check_output_file(out_file: str, inputs: Sequence[str] = ()) -> None:
    """Refuse an output path that cannot become the model file: a missing folder, a folder itself,
    or one of the tool's ``inputs`` (a checkpoint or config it would destroy)."""
    refuse_overwriting_inputs([out_file], inputs)
    out_dir = osp.dirname(osp.abspath(out_file))
    if not osp.isdir(out_dir):
        raise FileNotFoundError(f'The output folder {out_dir!r} does not exist (--out {out_file!r}).')
    if osp.isdir(out_file):
        raise IsADirectoryError(f'--out {out_file!r} is a folder: give the path of the file to write '
                                'in it.')


def write_output(out_file: str, data: bytes) -> None:
    """Write a deploy tool's output atomically: ``out_file`` is complete or untouched (a full disk too).

    A failed write raises ``OSError`` with one line naming ``out_file``; no partial file remains.
    """
    try:
        atomic_write_bytes(out_file, data)
    except OSError as error:
        raise OSError(error.errno, f'Could not write {out_file!r} ({error.strerror or error}); nothing '
                      'was written.') from error


def load_detector(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` on the CPU and load ``checkpoint`` strictly (a misfit is a clear error).

    Without a checkpoint the model keeps its initial weights (``init_weights``).
    """
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    if checkpoint is None:
        model.init_weights()
    else:
        check_checkpoint_fits(model, checkpoint)
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.eval()


def _test_pipeline_step(cfg: Config, transform_type: str) -> Optional[dict]:
    """The first transform of ``type == transform_type`` in the square test pipeline, or None.

    Exported models take one fixed shape: a config evaluated with the official rectangular batches
    is described by its square form (``square_eval_dataloader``).
    """
    for step in square_eval_dataloader(cfg.test_dataloader)['dataset'].get('pipeline', []):
        if step.get('type') == transform_type:
            return step
    return None


def default_input_hw(cfg: Config) -> tuple[int, int]:
    """``(H, W)`` of the test pipeline's ``YOLOv7Letterbox`` (the size the model was evaluated at)."""
    letterbox = _test_pipeline_step(cfg, 'YOLOv7Letterbox')
    if letterbox is None:
        raise ValueError('The config\'s test pipeline has no YOLOv7Letterbox: the exported model\'s '
                         'preprocessing would be unknown; give --input-shape and use a YOLOv7 config.')
    scale = letterbox['scale']
    width, height = (scale, scale) if isinstance(scale, int) else scale
    return int(height), int(width)


def class_names(cfg: Config, num_classes: int) -> list[str]:
    """The test dataset's class names (``str(index)`` when they do not fit ``num_classes``)."""
    dataset_cfg = dict(cfg.test_dataloader.dataset, lazy_init=True)
    names = list(DATASETS.build(dataset_cfg).metainfo.get('classes', ()))
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def export_metadata(cfg: Config, *, input_hw: Sequence[int], num_classes: int, nms: str,
                    score_thr: float, iou_thr: float, max_dets: int) -> dict[str, str]:
    """The ``metadata_props`` of an exported model: every value is a JSON string.

    Keys: ``classes``; ``input_shape`` ``[H, W]``; ``mean``, ``std``, ``bgr_to_rgb`` (the
    normalisation of the config's ``data_preprocessor``); ``letterbox`` (``keep_ratio_resize``: the
    image is first resized keeping its aspect ratio to fit ``[W, H]`` with mmcv's rule, as mmdet's
    ``Resize``; then letterboxed to ``[H, W]`` with ``pad_val``, centred, enlarging only with
    ``allow_scale_up``); ``nms``, ``score_thr``, ``iou_thr``, ``max_dets``; ``output_layout``.
    """
    check_nms_args(score_thr=score_thr, iou_thr=iou_thr, max_dets=max_dets)
    preprocessor = cfg.model.data_preprocessor
    letterbox = _test_pipeline_step(cfg, 'YOLOv7Letterbox') or {}
    resize = _test_pipeline_step(cfg, 'Resize')
    meta = dict(
        classes=class_names(cfg, num_classes),
        input_shape=[int(v) for v in input_hw],
        mean=[float(v) for v in preprocessor.get('mean', (0., 0., 0.))],
        std=[float(v) for v in preprocessor.get('std', (1., 1., 1.))],
        bgr_to_rgb=bool(preprocessor.get('bgr_to_rgb', False)),
        letterbox=dict(keep_ratio_resize=bool(resize is not None and resize.get('keep_ratio', False)),
                       pad_val=float(letterbox.get('pad_val', 114)),
                       allow_scale_up=bool(letterbox.get('allow_scale_up', True))),
        nms=nms, score_thr=score_thr, iou_thr=iou_thr, max_dets=max_dets,
        output_layout=OUTPUT_LAYOUTS[nms],
        exporter=f'yolov7_mmdet {__version__}')
    return {key: json.dumps(value, allow_nan=False) for key, value in meta.items()}


def check_export_args(model: nn.Module, *, out_file: str, input_hw: Sequence[int], batch: int,
                      opset: int, nms: str) -> None:
    """Refuse, before any work, what cannot give a valid file (one-line errors)."""
    check_output_file(out_file)
    stride = int(max(model.bbox_head.strides.tolist()))
    if len(input_hw) != 2 or any(int(v) <= 0 or int(v) % stride for v in input_hw):
        raise ValueError(f'The input shape {tuple(input_hw)} must be two positive multiples of the '
                         f'model\'s largest stride {stride}.')
    if batch < 1:
        raise ValueError(f'The batch size must be at least 1, got {batch}.')
    if nms not in NMS_MODES:
        raise ValueError(f'nms must be one of {NMS_MODES}, got {nms!r}')
    if opset < MIN_OPSET:
        raise ValueError(f'Opset {opset} is too old: the export needs opset >= {MIN_OPSET} '
                         f'(NonMaxSuppression, TopK with a tensor k, ScatterND).')


def _simplify(model_proto):
    import onnxslim
    return onnxslim.slim(model_proto)


def export_onnx(detector: nn.Module, out_file: str, *, input_hw: Sequence[int], batch: int = 1,
                dynamic_batch: bool = False, opset: int = 17, nms: str = 'onnx',
                score_thr: float = 0.001, iou_thr: float = 0.65, max_dets: int = 300,
                metadata: Optional[dict[str, str]] = None, simplify: bool = False) -> str:
    """Write ``detector`` as an ONNX model; the file appears only once complete and checked.

    Args:
        detector (nn.Module): A ``YOLOv7`` detector (switched to its inference graph, in place).
        out_file (str): Where the model goes; exported in memory, checked with ``onnx.checker``, then
            written atomically (a failed write, e.g. a full disk, leaves no file).
        input_hw (Sequence[int]): ``(H, W)`` of the input; multiples of the largest stride.
        batch (int): Batch size of the traced input (the fixed batch unless ``dynamic_batch``).
        dynamic_batch (bool): Make the batch dimension of every input and output dynamic.
        opset (int): ONNX opset, at least ``MIN_OPSET``.
        nms (str): ``none``, ``onnx`` or ``trt`` (see ``OUTPUT_LAYOUTS``).
        score_thr, iou_thr, max_dets: NMS settings of the ``onnx`` and ``trt`` forms.
        metadata (dict[str, str], optional): ``metadata_props`` (see :func:`export_metadata`).
        simplify (bool): Simplify the graph with onnxslim.

    Returns:
        str: ``out_file``.
    """
    import onnx
    check_export_args(detector, out_file=out_file, input_hw=input_hw, batch=batch, opset=opset, nms=nms)
    wrapper = YOLOv7ExportModel(detector, nms=nms, score_thr=score_thr, iou_thr=iou_thr, max_dets=max_dets)
    images = torch.zeros(batch, 3, *[int(v) for v in input_hw])
    output_names = list(OUTPUT_NAMES[nms])
    dynamic_axes = {name: {0: 'batch'} for name in ['images'] + output_names} if dynamic_batch else None
    traced = io.BytesIO()  # in memory: the file is written once, complete and checked
    try:
        with warnings.catch_warnings():
            # the trace fixes shapes and Python control flow by design (static H, W; the NMS ops'
            # eager forward only gives the trace real shapes): its TracerWarnings say just that
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(wrapper, (images,), traced, dynamo=False, opset_version=opset,
                              input_names=['images'], output_names=output_names,
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
    except torch.onnx.errors.OnnxExporterError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(f'Opset {opset} cannot express this model: {first_line}') from error
    model_proto = onnx.load_from_string(traced.getvalue())
    if simplify:
        model_proto = _simplify(model_proto)
    for key, value in (metadata or {}).items():
        model_proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model_proto)
    write_output(out_file, model_proto.SerializeToString())
    return out_file
