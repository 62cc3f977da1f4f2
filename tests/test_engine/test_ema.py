"""The EMA against the official ModelEMA: golden trajectory, decay ramp, update timing, start weights."""
import math
from pathlib import Path

import pytest
import torch
from engine_toys import make_runner
from mmengine.hooks import Hook
from torch import nn

from yolov7_mmdet.engine.hooks import YOLOv7EMAHook, YOLOv7ModelEMA

GOLDEN = Path(__file__).resolve().parents[1] / 'fixtures' / 'official_model_ema.pt'


def official_decay(updates):
    return 0.9999 * (1 - math.exp(-updates / 2000))


def test_matches_the_official_model_ema_trajectory():
    """Fixture made by the official ModelEMA; see tests/fixtures/make_engine_golden.md."""
    golden = torch.load(GOLDEN)
    model = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3))
    model.load_state_dict(golden['init'])
    ema = YOLOv7ModelEMA(model)
    for model_state, ema_state in zip(golden['model_states'], golden['ema_states']):
        model.load_state_dict(model_state)
        ema.update_parameters(model)
        ours = ema.module.state_dict()
        assert ours.keys() == ema_state.keys()
        for name, value in ema_state.items():  # BN running stats averaged; num_batches_tracked kept
            torch.testing.assert_close(ours[name], value, rtol=1e-6, atol=1e-7, msg=name)
    assert int(ema.steps) == golden['updates'] == 5


@pytest.mark.parametrize('updates', [1, 2, 100, 2000, 10000])
def test_decay_ramp(updates):
    """From ema 0 and model 1, one update at count ``updates`` leaves ``1 - d(updates)``."""
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = YOLOv7ModelEMA(model)
    ema.steps.fill_(updates - 1)  # ``steps`` counts previous updates
    nn.init.ones_(model.weight)
    ema.update_parameters(model)
    assert ema.module.weight.item() == pytest.approx(1 - official_decay(updates), rel=1e-6)


class EMAProbe(Hook):
    """Captures the model before the first iteration, and model + EMA after it."""
    priority = 'LOWEST'

    def __init__(self):
        self.start = self.after_first = self.ema_after_first = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == 0:
            self.start = {k: v.clone() for k, v in runner.model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 0:
            ema_hook = next(h for h in runner.hooks if isinstance(h, YOLOv7EMAHook))
            self.after_first = {k: v.clone() for k, v in runner.model.state_dict().items()}
            self.ema_after_first = {k: v.clone()
                                    for k, v in ema_hook.ema_model.module.state_dict().items()}


def test_hook_starts_from_the_initialised_weights_and_updates_after_optimizer_steps(tmp_path):
    probe = EMAProbe()
    runner = make_runner(tmp_path, name='ema', max_epochs=2, extra_hooks=[probe])
    runner.model.init_cfg = dict(type='Constant', layer='Conv2d', val=0.05, bias=0.01)
    runner.train()
    d1 = official_decay(1)
    assert probe.start['conv.weight'].eq(0.05).all()  # init_weights ran after EMAHook.before_run
    for name, value in probe.ema_after_first.items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(
                value, d1 * probe.start[name] + (1 - d1) * probe.after_first[name], msg=name)
    ema_hook = next(h for h in runner.hooks if isinstance(h, YOLOv7EMAHook))
    # 8 iterations; accumulate round(1 + 3 * i / 6) = 1,2,2,2,3,4,4,4: optimizer steps at i = 0, 2
    accumulates = [max(1, round(1 + 3 * i / 6)) for i in range(8)]
    assert accumulates == [1, 2, 2, 2, 3, 4, 4, 4]
    assert int(ema_hook.ema_model.steps) == sum(i % a == 0 for i, a in enumerate(accumulates)) == 2
