"""YOLOv7's parameter groups and nominal-batch gradient accumulation; registered on import."""
from .yolov7_optim_wrapper import (NominalBatchAccumulation, YOLOv7AmpOptimWrapper,
                                   YOLOv7OptimWrapper, nominal_accumulation)
from .yolov7_optim_wrapper_constructor import (YOLOv7OptimWrapperConstructor, YOLOv7ParamGroups,
                                               yolov7_param_groups)

__all__ = [
    'NominalBatchAccumulation', 'YOLOv7OptimWrapper', 'YOLOv7AmpOptimWrapper', 'nominal_accumulation',
    'YOLOv7OptimWrapperConstructor', 'YOLOv7ParamGroups', 'yolov7_param_groups',
]
