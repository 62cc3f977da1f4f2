"""The building blocks of YOLOv7, one file per idea of the paper (conv block, ELAN / E-ELAN,
transitions, planned re-parameterized RepConvN, implicit knowledge, SPPCSPC)."""
from .conv import (TORCH_DEFAULT_CONV_INIT, YOLOV7_ACT_CFG, YOLOV7_NORM_CFG,  # noqa: F401
                   YOLOV7_TINY_ACT_CFG, yolov7_conv)
from .elan import (ELAN, elan_concat_channels, split_cardinality_state,  # noqa: F401
                   stack_cardinality_state)
from .implicit import ImplicitA, ImplicitM, fold_implicit_into_conv  # noqa: F401
from .rep_conv import RepConvN, fuse_kernel_and_bn  # noqa: F401
from .spp import SPPCSPC  # noqa: F401
from .transitions import TRANSITION_KINDS, DownC, MPConv, ReOrg, build_transition  # noqa: F401
