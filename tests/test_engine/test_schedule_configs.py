"""The schedule configs hold the official hyper-parameters (hyp.scratch.{p5,p6,tiny}.yaml, train.py)."""
from pathlib import Path

import pytest
from mmengine.config import Config

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
LRF = {'yolov7_300e': 0.1, 'yolov7_p6_300e': 0.2, 'yolov7_tiny_300e': 0.01}


@pytest.mark.parametrize('schedule', sorted(LRF))
def test_schedule_holds_the_official_recipe(schedule):
    cfg = Config.fromfile(str(CONFIGS / '_base_' / 'schedules' / f'{schedule}.py'))
    assert cfg.default_scope == 'mmdet' and 'yolov7_mmdet' in cfg.custom_imports.imports
    assert cfg.optim_wrapper.constructor == 'YOLOv7OptimWrapperConstructor'
    assert cfg.optim_wrapper.nominal_batch_size == 64
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.937,
                                               weight_decay=5e-4, nesterov=True)
    assert cfg.param_scheduler is None
    hook = cfg.default_hooks.param_scheduler
    assert hook.type == 'YOLOv7ParamSchedulerHook' and hook.final_lr_factor == LRF[schedule]
    assert (hook.warmup_epochs, hook.min_warmup_iters, hook.warmup_bias_lr, hook.warmup_momentum,
            hook.linear) == (3, 1000, 0.1, 0.8, False)
    custom = {h.type: h for h in cfg.custom_hooks}
    assert (custom['YOLOv7EMAHook'].momentum, custom['YOLOv7EMAHook'].gamma) == (1e-4, 2000)
    assert custom['YOLOv7EMAHook'].update_buffers
    assert {'StopOnNonFiniteLossHook', 'RNGStateHook'} <= custom.keys()
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.train_cfg.max_epochs == 300 and cfg.auto_scale_lr.base_batch_size == 64


@pytest.mark.parametrize('config', sorted((CONFIGS / 'yolov7').glob('*.py')), ids=lambda p: p.stem)
def test_model_configs_use_their_family_schedule(config):
    """P6 models (W6, E6, D6, E6E) train with lrf 0.2, tiny with 0.01, L and X with 0.1."""
    cfg = Config.fromfile(str(config))
    arch = config.stem.split('_')[1]
    want = {'tiny': 0.01, 'l': 0.1, 'x': 0.1}.get(arch, 0.2)
    assert cfg.default_hooks.param_scheduler.final_lr_factor == want
    assert cfg.optim_wrapper.batch_size_per_gpu == cfg.train_dataloader.batch_size
