"""lr / momentum / accumulation against the official formulas, alone and inside a real Runner."""
import math

import numpy as np

import pytest
import torch
from engine_toys import make_runner
from mmengine.hooks import Hook

from yolov7_mmdet.engine.hooks import YOLOv7Schedule

LR0, MOMENTUM = 0.01, 0.937


def cosine_lf(epoch, epochs, lrf):  # hyp 'one_cycle': 1 -> lrf
    return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1


def linear_lf(epoch, epochs, lrf):
    return (1 - epoch / (epochs - 1)) * (1.0 - lrf) + lrf


def official_replay(*, epochs, iters_per_epoch, warmup_iters, lrf, lf=cosine_lf, total_batch=16,
                    nominal_batch=64, stop_epoch=None):
    """Yield ``(iteration, epoch, lrs, momenta, accumulate)`` as ``train.py``'s statements set them.

    A toy SGD with the official three groups (0 no decay, 1 decay, 2 bias) and the official
    ``LambdaLR``; the loop is ``train.py``'s, statement for statement: ``scheduler.last_epoch =
    start_epoch - 1`` after building the scheduler, the ``if ni <= nw:`` warmup block with its
    ``np.interp`` calls, and ``scheduler.step()`` after each epoch's last batch.
    """
    params = [torch.zeros(1, requires_grad=True) for _ in range(3)]
    optimizer = torch.optim.SGD([params[0]], lr=LR0, momentum=MOMENTUM, nesterov=True)
    optimizer.add_param_group({'params': [params[1]], 'weight_decay': 5e-4})
    optimizer.add_param_group({'params': [params[2]]})
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda x: lf(x, epochs, lrf))
    nb, nw, nbs = iters_per_epoch, warmup_iters, nominal_batch
    accumulate = max(round(nbs / total_batch), 1)
    scheduler.last_epoch = 0 - 1  # start_epoch - 1
    for epoch in range(epochs if stop_epoch is None else stop_epoch):
        for i in range(nb):
            ni = i + nb * epoch
            if ni <= nw:
                xi = [0, nw]
                accumulate = max(1, np.interp(ni, xi, [1, nbs / total_batch]).round())
                for j, x in enumerate(optimizer.param_groups):
                    x['lr'] = np.interp(ni, xi, [0.1 if j == 2 else 0.0, x['initial_lr'] * lf(epoch, epochs, lrf)])
                    if 'momentum' in x:
                        x['momentum'] = np.interp(ni, xi, [0.8, MOMENTUM])
            groups = optimizer.param_groups
            yield (ni, epoch, tuple(g['lr'] for g in groups), tuple(g['momentum'] for g in groups),
                   int(accumulate))
        optimizer.step()  # no gradients, nothing changes; keeps LambdaLR's call-order check quiet
        scheduler.step()


def expected(iterations, *, iters_per_epoch, **replay_args):
    """{iteration: (no-decay lr, decay lr, bias lr, momentum, accumulate)} of the official
    ``train.py`` at ``iterations``, from one replay."""
    rows = {}
    for ni, _, lrs, momenta, accumulate in official_replay(
            iters_per_epoch=iters_per_epoch, stop_epoch=max(iterations) // iters_per_epoch + 1,
            **replay_args):
        if ni in iterations:
            assert len(set(momenta)) == 1  # one momentum for all groups
            rows[ni] = (*lrs, momenta[0], accumulate)
    return rows


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
    iterations = (0, 1, warmup_iters // 3, warmup_iters // 2, warmup_iters - 1, warmup_iters,
                  warmup_iters + 1, 5 * iters_per_epoch, 150 * iters_per_epoch + 7,
                  300 * iters_per_epoch - 1)
    want = expected(iterations, iters_per_epoch=iters_per_epoch, epochs=300, lrf=lrf,
                    warmup_iters=warmup_iters)
    for iteration in iterations:
        assert actual(schedule, iteration, iteration // iters_per_epoch) == want[iteration]


@pytest.mark.parametrize('iters_per_epoch, warmup_epochs, min_warmup_iters, warmup_iters', [
    (4, 0, 6, 6),  # nw in the middle of epoch 1
    (4, 0, 7, 7),  # nw at the last iteration of epoch 1: the next epoch steps from lf(1)
    (4, 0, 8, 8),  # nw at the first iteration of epoch 2: iterations 9..11 keep lf(2)
    (5, 0, 12, 12),
    (1, 0, 3, 3),  # every iteration is an epoch's first and last
    (400, 3, 1000, 1200),  # COCO-like: warmup ends with epoch 2
    (300, 3, 1000, 1000),  # the 1000-iteration floor: warmup ends at iteration 100 of epoch 3
])
@pytest.mark.parametrize('linear', [False, True])
def test_every_iteration_around_the_end_of_warmup(iters_per_epoch, warmup_epochs, min_warmup_iters,
                                                  warmup_iters, linear):
    """The epochs before, with and after ``nw``, iteration by iteration, against ``train.py``."""
    epochs, lrf = 10, 0.1
    schedule = YOLOv7Schedule(max_epochs=epochs, iters_per_epoch=iters_per_epoch,
                              final_lr_factor=lrf, total_batch_size=16, linear=linear,
                              warmup_epochs=warmup_epochs, min_warmup_iters=min_warmup_iters)
    assert schedule.warmup_iters == warmup_iters
    warmup_end_epoch = warmup_iters // iters_per_epoch
    rows = official_replay(epochs=epochs, iters_per_epoch=iters_per_epoch,
                           warmup_iters=warmup_iters, lrf=lrf, lf=linear_lf if linear else cosine_lf,
                           stop_epoch=warmup_end_epoch + 2)
    checked = 0
    for iteration, epoch, lrs, momenta, accumulate in rows:
        if epoch < warmup_end_epoch - 1:
            continue
        assert actual(schedule, iteration, epoch) == (*lrs, momenta[0], accumulate), iteration
        checked += 1
    assert checked == min(3, warmup_end_epoch + 2) * iters_per_epoch


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
    iterations = (0, 750, 1500, 1501, 2000, 49999)
    want = expected(iterations, iters_per_epoch=500, epochs=100, lrf=0.01, warmup_iters=1500,
                    lf=linear_lf, total_batch=128)
    for iteration in iterations:
        assert actual(schedule, iteration, iteration // 500) == want[iteration]
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
    replay = official_replay(epochs=3, iters_per_epoch=4, warmup_iters=6, lrf=0.1, total_batch=2,
                             nominal_batch=8)
    assert record.rows == list(replay)  # iteration 7 is after warmup, in the epoch that holds it
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
