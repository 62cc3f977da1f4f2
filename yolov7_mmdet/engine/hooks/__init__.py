"""Training hooks where YOLOv7 differs from mmengine; registered on import."""
from .atomic_checkpoint_hook import (AtomicCheckpointHook, AtomicLocalBackend, NonFiniteWeightsError,
                                     TrainingInterrupted, atomic_write_bytes)
from .checkpoint_load_hook import CheckpointLoadCheckHook, latest_checkpoint
from .auto_anchor_hook import AutoAnchorHook
from .classes_check_hook import DatasetClassesCheckHook, check_num_classes
from .ema_hook import YOLOv7EMAHook, YOLOv7ModelEMA
from .finite_loss_hook import NonFiniteLossError, StopOnNonFiniteLossHook
from .input_size_check_hook import InputSizeCheckHook, input_size_problems
from .rng_state_hook import RNGStateHook, capture_rng_state, restore_rng_state
from .schedule_summary_hook import ScheduleSummary, ScheduleSummaryHook, schedule_of_config
from .yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook, YOLOv7Schedule

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write_bytes', 'AutoAnchorHook',
    'CheckpointLoadCheckHook', 'latest_checkpoint', 'NonFiniteWeightsError', 'TrainingInterrupted',
    'DatasetClassesCheckHook', 'check_num_classes',
    'InputSizeCheckHook', 'input_size_problems', 'YOLOv7EMAHook', 'YOLOv7ModelEMA', 'NonFiniteLossError', 'StopOnNonFiniteLossHook', 'YOLOv7ParamSchedulerHook',
    'YOLOv7Schedule', 'RNGStateHook', 'capture_rng_state', 'restore_rng_state', 'ScheduleSummary',
    'ScheduleSummaryHook', 'schedule_of_config',
]
