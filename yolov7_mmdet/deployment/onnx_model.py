"""An exported end-to-end ONNX model as an mmengine model, so the runner evaluates it like any detector.

``tools/deployment/test_onnx.py`` puts it in place of the config's model: the config's test dataloader
and ``data_preprocessor`` prepare the batch, onnxruntime runs the model, and the boxes are mapped back to
the original images as ``YOLOv7Head`` does, for mmdet's ``CocoMetric``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from ..models.dense_heads.yolov7_head import YOLOv7Head
from .runtime import ONNXRuntimeDetector


@MODELS.register_module()
class ONNXRuntimeYOLOv7(BaseModel):
    """Predict with an ONNX model exported with ``--nms onnx`` (see ``yolov7_mmdet/deployment``).

    Args:
        onnx_file (str): The exported model.
        data_preprocessor (dict, optional): The config's ``data_preprocessor``; its mean, std and
            channel order must be those recorded in the model.
        providers (list[str], optional): onnxruntime execution providers; the CPU by default.
        num_classes (int, optional): The config's number of classes; the model must have as many.
    """

    def __init__(self, *, onnx_file: str, data_preprocessor: Optional[dict] = None,
                 providers: Optional[list[str]] = None, num_classes: Optional[int] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.runtime = ONNXRuntimeDetector(onnx_file, providers=providers)
        if self.runtime.nms != 'onnx':
            raise ValueError(f'{onnx_file!r} was exported with --nms {self.runtime.nms}; evaluating it '
                             'with onnxruntime needs --nms onnx.')
        if num_classes is not None and num_classes != len(self.runtime.classes):
            raise ValueError(f'{onnx_file!r} predicts {len(self.runtime.classes)} classes, the config has '
                             f'num_classes={num_classes}.')
        self._check_normalisation(onnx_file, data_preprocessor or {})

    def _check_normalisation(self, onnx_file: str, preprocessor: dict) -> None:
        meta = self.runtime.meta
        config_side = dict(mean=[float(v) for v in preprocessor.get('mean', (0., 0., 0.))],
                           std=[float(v) for v in preprocessor.get('std', (1., 1., 1.))],
                           bgr_to_rgb=bool(preprocessor.get('bgr_to_rgb', False)))
        model_side = {key: meta[key] for key in config_side}
        if config_side != model_side:
            raise ValueError(f'{onnx_file!r} was exported with the normalisation {model_side}, the '
                             f'config\'s data_preprocessor has {config_side}.')

    def forward(self, inputs: Tensor, data_samples: SampleList = None, mode: str = 'predict'):
        if mode != 'predict':
            raise ValueError(f'An ONNX model only predicts (mode "predict"), got mode {mode!r}.')
        outputs = self.runtime.run(inputs.cpu().numpy())
        for index, data_sample in enumerate(data_samples):
            data_sample.pred_instances = self._image_predictions(outputs, index, data_sample.metainfo)
        return data_samples

    @staticmethod
    def _image_predictions(outputs: dict[str, np.ndarray], index: int, img_meta: dict) -> InstanceData:
        count = int(outputs['num_dets'][index, 0])
        bboxes = torch.from_numpy(outputs['boxes'][index, :count])
        return InstanceData(bboxes=YOLOv7Head._to_original_image(bboxes, img_meta),
                            scores=torch.from_numpy(outputs['scores'][index, :count]),
                            labels=torch.from_numpy(outputs['labels'][index, :count]).long())
