"""Killed after epoch 2 and resumed == trained straight through: weights, EMA, optimizer, schedule."""
import shutil

import numpy as np
import pytest
import torch
from engine_toys import make_runner
from mmengine.hooks import Hook

from yolov7_mmdet.engine.hooks import YOLOv7EMAHook


class SimulatedKill(Exception):
    pass


class KillAfterEpoch(Hook):
    """Raises once the checkpoint of epoch ``epoch`` is written (CheckpointHook is VERY_LOW)."""
    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise SimulatedKill


def final_state(runner):
    ema = next(h for h in runner.hooks if isinstance(h, YOLOv7EMAHook)).ema_model
    wrapper = runner.optim_wrapper
    return dict(
        model=runner.model.state_dict(), ema=ema.state_dict(),
        optimizer=wrapper.optimizer.state_dict(), iter=runner.iter, epoch=runner.epoch,
        inner_count=wrapper.inner_count, accumulate=wrapper.accumulate)


def assert_same(ours, theirs, path='state'):
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), path
        for key in ours:
            assert_same(ours[key], theirs[key], f'{path}.{key}')
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), path
        for index, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f'{path}[{index}]')
    elif torch.is_tensor(ours):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=path)
    else:
        assert ours == theirs, path


def kill_and_resume(work_dir, *, name, kill_after, rng_hook=True):
    interrupted = make_runner(work_dir, name=f'{name}_killed', max_epochs=4, rng_hook=rng_hook,
                              extra_hooks=[KillAfterEpoch(kill_after)])
    with pytest.raises(SimulatedKill):
        interrupted.train()
    torch.manual_seed(1234)  # a new process starts from other random states
    resumed = make_runner(work_dir, name=f'{name}_resumed', max_epochs=4, resume=True,
                          rng_hook=rng_hook)
    resumed.train()
    return resumed


@pytest.mark.parametrize('kill_after', [1, 2])  # inside and after the 6-iteration warmup
def test_resume_reproduces_the_uninterrupted_run(tmp_path, kill_after):
    """Including the random "augmentation" of the toy dataset (RNGStateHook)."""
    straight = make_runner(tmp_path / 'straight', name=f'straight{kill_after}', max_epochs=4)
    straight.train()
    resumed = kill_and_resume(tmp_path / 'resumed', name=f'run{kill_after}', kill_after=kill_after)
    assert resumed.iter == straight.iter == 16
    assert_same(final_state(resumed), final_state(straight))


def test_without_the_rng_hook_the_augmentations_differ(tmp_path):
    """The check above can fail: mmengine alone re-seeds, so the resumed noise differs."""
    straight = make_runner(tmp_path / 'straight', name='straight_norng', max_epochs=4,
                           rng_hook=False)
    straight.train()
    resumed = kill_and_resume(tmp_path / 'resumed', name='norng', kill_after=2, rng_hook=False)
    with pytest.raises(AssertionError):
        assert_same(final_state(resumed), final_state(straight))


def interrupt_unseeded(work_dir, **workers):
    """Config without a seed (as the shipped ones): train, killed after epoch 2; returns its seed."""
    np.random.seed(100)  # mmengine draws an unset seed from numpy's global generator
    interrupted = make_runner(work_dir, name='unseeded_killed', max_epochs=4, seed=None,
                              extra_hooks=[KillAfterEpoch(2)], **workers)
    with pytest.raises(SimulatedKill):
        interrupted.train()
    return interrupted.seed


def resume_unseeded(work_dir, *, killed_seed, process_entropy=0, **workers):
    np.random.seed(process_entropy)  # as a new process would, draws another seed
    resumed = make_runner(work_dir, name='unseeded_resumed', max_epochs=4, resume=True, seed=None,
                          **workers)
    assert resumed.seed != killed_seed  # a new run draws a new seed; resuming adopts the old one
    resumed.train()
    return resumed


def test_resume_without_a_seed_and_with_workers_reproduces_the_uninterrupted_run(tmp_path):
    """Non-persistent workers: the sampler and the workers follow the checkpoint's seed."""
    workers = dict(num_workers=2, persistent_workers=False)
    seed = interrupt_unseeded(tmp_path / 'resumed', **workers)
    resumed = resume_unseeded(tmp_path / 'resumed', killed_seed=seed, **workers)
    straight = make_runner(tmp_path / 'straight', name='unseeded_straight', max_epochs=4,
                           seed=seed, **workers)
    straight.train()
    assert_same(final_state(resumed), final_state(straight))


def test_two_resumes_from_one_checkpoint_with_persistent_workers_are_identical(tmp_path):
    """Persistent workers restart from their first-epoch seeds: deterministic, documented."""
    workers = dict(num_workers=2, persistent_workers=True)
    seed = interrupt_unseeded(tmp_path / 'first', **workers)
    shutil.copytree(tmp_path / 'first', tmp_path / 'second')
    (tmp_path / 'second' / 'last_checkpoint').write_text(str(tmp_path / 'second' / 'epoch_2.pth'))
    first, second = (resume_unseeded(tmp_path / name, killed_seed=seed, process_entropy=entropy,
                                     **workers) for entropy, name in enumerate(('first', 'second')))
    assert first.seed == second.seed == seed
    assert_same(final_state(first), final_state(second))
