"""Registered on import; see the package docstring."""
from .yolov7_backbone import (YOLOV7_ARCHS, BackboneArch, ConvSpec, ELANSpec, StageSpec,  # noqa: F401
                              YOLOv7Backbone)

__all__ = ['YOLOv7Backbone', 'YOLOV7_ARCHS', 'BackboneArch', 'ConvSpec', 'ELANSpec', 'StageSpec']
