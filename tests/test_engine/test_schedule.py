"""lr / momentum / accumulation against the official formulas, alone and inside a real Runner."""
import math

import pytest
from engine_toys import make_runner
from mmengine.hooks import Hook

from yolov7_mmdet.engine.hooks import YOLOv7Schedule

LR0, MOMENTUM = 0.01, 0.937


def cosine_lf(epoch, epochs, lrf):  # hyp 'one_cycle': 1 -> lrf
    return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1


def linear_lf(epoch, epochs, lrf):
    return (1 - epoch / (epochs - 1)) * (1.0 - lrf) + lrf


def warm(iteration, warmup_iters, start, end):
    return start + (end - start) * iteration / warmup_iters


def expected(iteration, epoch, *, epochs, lrf, warmup_iters, lf=cosine_lf, total_batch=16,
             nominal_batch=64):
    """(no-decay lr, decay lr, bias lr, momentum, accumulate) of the official train.py.

    After warmup the lr is the LambdaLR's, one epoch behind (``scheduler.last_epoch = -1`` after its
    construction); the warmup aims at the current epoch's value.
    """
    if iteration > warmup_iters:
        lr = LR0 * lf(max(epoch - 1, 0), epochs, lrf)
        return lr, lr, lr, MOMENTUM, max(round(nominal_batch / total_batch), 1)
    target = LR0 * lf(epoch, epochs, lrf)
    lr = warm(iteration, warmup_iters, 0., target)
    return (lr, lr, warm(iteration, warmup_iters, 0.1, target),
            warm(iteration, warmup_iters, 0.8, MOMENTUM),
            max(1, round(warm(iteration, warmup_iters, 1, nominal_batch / total_batch))))


def actual(schedule, iteration, epoch):
    lr = schedule.lr(iteration, epoch, initial_lr=LR0, is_bias=False)
    return (lr, lr, schedule.lr(iteration, epoch, initial_lr=LR0, is_bias=True),
            schedule.momentum(iteration, final_momentum=MOMENTUM), schedule.accumulate(iteration))


@pytest.mark.parametrize('iters_per_epoch, warmup_iters', [(400, 1200), (100, 1000)])
@pytest.mark.parametrize('lrf', [0.1, 0.2, 0.01])
def test_values_at_chosen_iterations(iters_per_epoch, warmup_iters, lrf):
    schedule = YOLOv7Schedule(max_epochs=300, iters_per_epoch=iters_per_epoch, final_lr_factor=lrf,
                              total_batch_size=16)
    assert schedule.warmup_iters == warmup_iters  # max(3 epochs, 1000 iterations)
    for iteration in (0, 1, warmup_iters // 3, warmup_iters // 2, warmup_iters - 1, warmup_iters,
                      warmup_iters + 1, 5 * iters_per_epoch, 150 * iters_per_epoch + 7,
                      300 * iters_per_epoch - 1):
        epoch = iteration // iters_per_epoch
        want = expected(iteration, epoch, epochs=300, lrf=lrf, warmup_iters=warmup_iters)
        assert actual(schedule, iteration, epoch) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_landmarks():
    schedule = YOLOv7Schedule(max_epochs=300, iters_per_epoch=400, final_lr_factor=0.1,
                              total_batch_size=16)
    assert actual(schedule, 0, 0) == (0., 0., 0.1, 0.8, 1)
    assert actual(schedule, 1200, 3) == pytest.approx(
        (LR0 * cosine_lf(3, 300, 0.1),) * 3 + (MOMENTUM, 4))
    assert schedule.lr_factor(0) == 1. and schedule.lr_factor(300) == pytest.approx(0.1)


def test_accumulation_ramp_rounds_half_to_even():
    """1 + 3 * i / 1200 is 1.5 at 200 (-> 2), 2.5 at 600 (-> 2, not 3), 3.5 at 1000 (-> 4)."""
    schedule = YOLOv7Schedule(max_epochs=300, iters_per_epoch=400, final_lr_factor=0.1,
                              total_batch_size=16)
    assert [schedule.accumulate(i) for i in (0, 199, 200, 600, 601, 1000, 1200, 5000)] == [
        1, 1, 2, 2, 3, 4, 4, 4]


def test_linear_schedule_and_big_batches():
    schedule = YOLOv7Schedule(max_epochs=100, iters_per_epoch=500, final_lr_factor=0.01,
                              total_batch_size=128, linear=True)
    for iteration in (0, 750, 1500, 1501, 49999):
        epoch = iteration // 500
        want = expected(iteration, epoch, epochs=100, lrf=0.01, warmup_iters=1500, lf=linear_lf,
                        total_batch=128)
        assert actual(schedule, iteration, epoch) == pytest.approx(want, rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match='max_epochs'):
        YOLOv7Schedule(max_epochs=1, iters_per_epoch=5, final_lr_factor=0.1, total_batch_size=16,
                       linear=True)


class RecordHook(Hook):
    """Records what the optimizer sees at every iteration (runs after the scheduler hook)."""
    priority = 'LOWEST'

    def __init__(self):
        self.rows, self.stepped, self.grads_at_epoch_start, self.logged_lr = [], [], [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        wrapper = runner.optim_wrapper
        groups = wrapper.optimizer.param_groups
        self.rows.append((runner.iter, runner.epoch, tuple(g['lr'] for g in groups),
                          tuple(g['momentum'] for g in groups), wrapper.accumulate))
        self.logged_lr.append(runner.message_hub.get_scalar('train/lr').current())
        if batch_idx == 0:
            self.grads_at_epoch_start.append(
                all(p.grad is None or not p.grad.any() for g in groups for p in g['params']))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.stepped.append(runner.optim_wrapper.should_update())


def test_runner_applies_the_official_values_every_iteration(tmp_path):
    """4 iterations per epoch, total batch 2, nominal batch 8, warmup over iterations 0..6."""
    record = RecordHook()
    runner = make_runner(tmp_path, name='schedule', max_epochs=3, extra_hooks=[record])
    runner.train()
    assert len(record.rows) == 12
    for iteration, epoch, lrs, momenta, accumulate in record.rows:
        assert epoch == iteration // 4
        want = expected(iteration, epoch, epochs=3, lrf=0.1, warmup_iters=6, total_batch=2,
                        nominal_batch=8)
        want = dict(zip(('no_decay', 'decay', 'bias', 'momentum', 'accumulate'), want))
        assert lrs == pytest.approx((want['no_decay'], want['decay'], want['bias']), rel=1e-12)
        assert momenta == pytest.approx((want['momentum'],) * 3, rel=1e-12)
        assert accumulate == want['accumulate']
    assert record.stepped == [row[0] % row[4] == 0 for row in record.rows]
    assert record.grads_at_epoch_start == [True, True, True]  # official zero_grad per epoch
    assert record.logged_lr == [row[2][0] for row in record.rows]  # the log shows this iteration's


def test_runner_rejects_a_batch_size_the_optimizer_did_not_assume(tmp_path):
    runner = make_runner(tmp_path, name='mismatch', max_epochs=1)
    runner.optim_wrapper['batch_size_per_gpu'] = 4  # the dataloader gives 2
    with pytest.raises(ValueError, match='batch_size_per_gpu'):
        runner.train()


def test_runner_rejects_param_schedulers(tmp_path):
    runner = make_runner(tmp_path, name='schedulers', max_epochs=1)
    runner.param_schedulers = [dict(type='ConstantLR', factor=0.5)]
    with pytest.raises(ValueError, match='param_scheduler = None'):
        runner.train()


def test_auto_scale_lr_scales_the_scheduled_lr0(tmp_path):
    """``--auto-scale-lr``: lr0 x total_batch / base_batch_size, then the same schedule."""
    record = RecordHook()
    runner = make_runner(tmp_path, name='autoscale', max_epochs=2, extra_hooks=[record])
    runner.auto_scale_lr = dict(enable=True, base_batch_size=64)
    runner.train()
    assert [g['initial_lr'] for g in runner.optim_wrapper.optimizer.param_groups] == [
        pytest.approx(LR0 * 2 / 64)] * 3
    iteration, epoch, lrs, _, _ = record.rows[6]  # end of warmup: every group at lr0 * lf(1)
    assert (iteration, epoch) == (6, 1)
    assert lrs == pytest.approx((LR0 * 2 / 64 * cosine_lf(1, 2, 0.1),) * 3, rel=1e-12)


def test_runner_rejects_an_optimizer_without_yolov7_groups(tmp_path):
    runner = make_runner(tmp_path, name='plain', max_epochs=1)
    runner.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
    with pytest.raises(TypeError, match='YOLOv7OptimWrapperConstructor'):
        runner.train()
