"""Registered on import; see the package docstring."""
from .conv import YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, YOLOV7_TINY_ACT_CFG, yolov7_conv  # noqa: F401  (M1)
from .elan import ELAN, elan_concat_channels, split_cardinality_state, stack_cardinality_state  # noqa: F401,E501  (M1)
from .transitions import TRANSITION_KINDS, DownC, MPConv, ReOrg, build_transition  # noqa: F401  (M1)
from .implicit import ImplicitA, ImplicitM, fold_implicit_into_conv  # noqa: F401  (M2)
from .rep_conv import RepConvN, fuse_kernel_and_bn  # noqa: F401  (M2)
from .spp import SPPCSPC  # noqa: F401  (M2)
