"""Runtime shared by every YOLOv7 config: registration, logging, hooks, environment.

Inherited by ``schedules/yolov7_300e.py`` (so a model config lists the schedule, not this file).
On top of mmdet's default runtime it:
  * registers the plugin (``custom_imports``) in mmdet's scope;
  * writes checkpoints atomically (``AtomicCheckpointHook``: a kill never leaves a corrupt latest
    checkpoint; ``last_checkpoint`` always names a complete file) every epoch, keeping the last 3 and
    the best one (``save_best='auto'``: the first metric of the evaluator, e.g. coco/bbox_mAP);
  * saves a checkpoint on SIGINT / SIGTERM that ``--resume`` continues from exactly, and refuses to
    save NaN/inf weights (``AtomicCheckpointHook``);
  * stops at the first NaN/inf loss component, before the EMA or a checkpoint sees it;
  * resolves ``last_checkpoint`` relative to the work dir, refuses a truncated ``--resume`` file and a
    ``load_from`` checkpoint of another variant (``CheckpointLoadCheckHook``; ``allow_partial_load =
    True`` loads what fits);
  * saves the random generators' state in checkpoints and restores it on ``--resume``;
  * refuses a config whose input sizes disagree (``InputSizeCheckHook``; TTA included).
Child configs may override ``default_hooks.checkpoint`` (interval, max_keep_ckpts) and ``sync_bn``.
"""
_base_ = 'mmdet::_base_/default_runtime.py'

default_scope = 'mmdet'
custom_imports = dict(imports=['yolov7_mmdet'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto',
                    save_param_scheduler=False))  # no mmengine schedulers: YOLOv7ParamSchedulerHook
# DatasetClassesCheckHook: a num_classes that does not fit the dataset is a clear error before training.
# InputSizeCheckHook: pipeline sizes (TTA included) that differ from the loss img_size are an error.
custom_hooks = [dict(type='CheckpointLoadCheckHook'), dict(type='StopOnNonFiniteLossHook'),
                dict(type='RNGStateHook'), dict(type='DatasetClassesCheckHook'),
                dict(type='InputSizeCheckHook')]

env_cfg = dict(cudnn_benchmark=True)  # fixed 640x640 training inputs

# 'torch' (or 'mmcv') converts BatchNorm to SyncBatchNorm in distributed training (official --sync-bn);
# off in this base; the variant configs turn it on, as the official multi-GPU commands pass
# --sync-bn. Ignored, and SyncBN reverted, on one GPU.
sync_bn = None

# mmdet's DetLocalVisualizer, minus the warning "Failed to add LocalVisBackend" when DetInferencer
# builds it without a log folder (yolov7_mmdet/engine/visualizer.py); a runner's keeps its backends
visualizer = dict(type='YOLOv7DetVisualizer')
