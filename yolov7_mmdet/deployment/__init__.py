"""Deployment: ONNX export with end-to-end NMS, an onnxruntime runner, evaluation of exported models.

Importing this package registers ``ONNXRuntimeYOLOv7`` (``MODELS``) and ``SwitchToDeployHook``
(``HOOKS``); onnx and onnxruntime are imported only when a model is exported or run.
"""
from .hooks import SwitchToDeployHook
from .onnx_model import ONNXRuntimeYOLOv7

__all__ = ['SwitchToDeployHook', 'ONNXRuntimeYOLOv7']
