"""Training hooks where YOLOv7 differs from mmengine; registered on import."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, atomic_write_bytes
from .ema_hook import YOLOv7EMAHook, YOLOv7ModelEMA
from .finite_loss_hook import NonFiniteLossError, StopOnNonFiniteLossHook
from .rng_state_hook import RNGStateHook, capture_rng_state, restore_rng_state
from .yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook, YOLOv7Schedule

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write_bytes', 'YOLOv7EMAHook',
    'YOLOv7ModelEMA', 'NonFiniteLossError', 'StopOnNonFiniteLossHook', 'YOLOv7ParamSchedulerHook',
    'YOLOv7Schedule', 'RNGStateHook', 'capture_rng_state', 'restore_rng_state',
]
