"""The official YOLOv7 P5 training recipe (data/hyp.scratch.p5.yaml, train.py), 300 epochs.

SGD (nesterov, lr0 0.01, momentum 0.937, weight decay 5e-4 scaled by total_batch * accumulate / 64)
on three parameter groups (BN weights + implicit vectors / conv weights / biases); gradients summed
over ``accumulate = round(64 / total_batch)`` iterations (nominal batch 64); warmup over
max(3 epochs, 1000 iterations) (bias lr 0.1 -> lr, other lr 0 -> lr, momentum 0.8 -> 0.937,
accumulation 1 -> nominal), then cosine from 1 to ``lrf`` per epoch; EMA with decay
0.9999 * (1 - exp(-updates / 2000)) used for evaluation and checkpoints. See docs/training_recipe.md.
``tools/train.py --amp`` keeps all of this (the constructor upgrades AmpOptimWrapper to
YOLOv7AmpOptimWrapper).

A child config overrides (base variables are *not* re-evaluated, so re-assign the fields using them):
  * ``train_batch_size_per_gpu``: also set ``optim_wrapper.batch_size_per_gpu`` (must equal
    ``train_dataloader.batch_size``; checked when training starts);
  * ``max_epochs``: also set ``train_cfg.max_epochs`` and ``train_cfg.dynamic_intervals``;
  * ``lrf``: also set ``default_hooks.param_scheduler.final_lr_factor`` -- or inherit
    ``yolov7_p6_300e.py`` (lrf 0.2) / ``yolov7_tiny_300e.py`` (lrf 0.01) instead;
  * ``base_lr``: also set ``optim_wrapper.optimizer.lr``.
The number of GPUs is read at run time (``mmengine.dist.get_world_size()``), never from the config.
"""
_base_ = '../yolov7_runtime.py'

base_lr = 0.01  # lr0
lrf = 0.1  # final lr factor: 0.1 P5, 0.2 P6, 0.01 tiny
max_epochs = 300
train_batch_size_per_gpu = 16
nominal_batch_size = 64  # images per optimizer step after warmup (nbs)
val_interval = 10  # and every epoch in the last 15 epochs

optim_wrapper = dict(
    type='YOLOv7OptimWrapper',
    constructor='YOLOv7OptimWrapperConstructor',
    batch_size_per_gpu=train_batch_size_per_gpu,
    nominal_batch_size=nominal_batch_size,
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.937, weight_decay=5e-4, nesterov=True))

# lr / momentum / accumulation are set per iteration by YOLOv7ParamSchedulerHook, not by schedulers
param_scheduler = None
default_hooks = dict(
    param_scheduler=dict(
        type='YOLOv7ParamSchedulerHook', final_lr_factor=lrf, linear=False, warmup_epochs=3,
        min_warmup_iters=1000, warmup_bias_lr=0.1, warmup_momentum=0.8))
# ScheduleSummaryHook: logs the iterations, optimizer steps and warmup share of the run, and warns
# when a small dataset would spend it in warmup or make too few steps.
custom_hooks = _base_.custom_hooks + [
    dict(type='YOLOv7EMAHook', momentum=1e-4, gamma=2000, update_buffers=True, priority=49),
    dict(type='ScheduleSummaryHook'),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=val_interval,
                 dynamic_intervals=[(max_epochs - 15, 1)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# The recipe already reaches the nominal batch by accumulation, so lr is NOT scaled by default;
# `tools/train.py --auto-scale-lr` scales lr0 by total_batch / 64 (a deviation from the official).
auto_scale_lr = dict(enable=False, base_batch_size=nominal_batch_size)
