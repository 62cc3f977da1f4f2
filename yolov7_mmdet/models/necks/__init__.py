"""Registered on import; see the package docstring."""
from .yolov7_pafpn import PAFPN_ARCHS, PAFPNArch, YOLOv7PAFPN  # noqa: F401
