"""Registered on import; see the package docstring."""
from .rep_ablation import BLOCK_KINDS, CONV_KINDS, RepAblationNet  # noqa: F401
from .yolov7_backbone import (YOLOV7_ARCHS, BackboneArch, ConvSpec, ELANSpec, StageSpec,  # noqa: F401
                              YOLOv7Backbone)

__all__ = ['YOLOv7Backbone', 'RepAblationNet', 'YOLOV7_ARCHS', 'BackboneArch', 'ConvSpec', 'ELANSpec', 'StageSpec']
