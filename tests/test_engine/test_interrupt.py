"""Ctrl-C / SIGTERM save a checkpoint that ``--resume`` continues from exactly, and say so in one line.

The signal arrives in the middle of an epoch and of a gradient accumulation; the run saves
``iter_<N>.pth`` after the iteration in progress and stops. Resumed, it skips the epoch's done
batches, restores the accumulated gradients, and ends with the same weights, EMA and optimizer state
as a run that was never interrupted.
"""
import os
import signal
import subprocess
import sys

import pytest
import torch
from engine_toys import make_runner
from mmengine.hooks import Hook
from test_resume import assert_same, final_state
from tiny_run import REPO_ROOT, tool_env, write_tiny_config

from yolov7_mmdet.engine.hooks import TrainingInterrupted


class SignalAt(Hook):
    """Sends ``signum`` to this process after iteration ``iteration`` (0-based), as a user or a
    cluster scheduler would."""
    priority = 'LOWEST'

    def __init__(self, iteration: int, signum: int) -> None:
        self.iteration, self.signum = iteration, signum

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.iteration:
            os.kill(os.getpid(), self.signum)


def assert_resumed_equals_the_straight_run(tmp_path, name: str) -> None:
    """``--resume`` from ``tmp_path / 'resumed'`` (in a fresh random state, as a new process) ends
    with the same weights, EMA and optimizer state as a run of 3 epochs never interrupted."""
    torch.manual_seed(1234)
    resumed = make_runner(tmp_path / 'resumed', name=f'{name}_resumed', max_epochs=3, resume=True)
    resumed.train()
    straight = make_runner(tmp_path / 'straight', name=f'{name}_straight', max_epochs=3)
    straight.train()
    assert_same(final_state(resumed), final_state(straight))


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_interrupted_mid_epoch_and_resumed_equals_the_straight_run(tmp_path, signum):
    previous = signal.getsignal(signum)
    name = f'{signal.Signals(signum).name}_{tmp_path.name}'
    # 4 iterations per epoch; signalled during iteration 7 (after the hook's check in iteration 6),
    # the run stops after it (epoch 2, batch 3), with an accumulation pending
    interrupted = make_runner(tmp_path / 'resumed', name=f'{name}_stopped', max_epochs=3,
                              extra_hooks=[SignalAt(5, signum)])
    with pytest.raises(TrainingInterrupted) as stop:
        interrupted.train()
    assert signal.getsignal(signum) == previous  # the handlers are restored
    assert stop.value.exit_status == 128 + signum
    message = str(stop.value)
    checkpoint = tmp_path / 'resumed' / 'iter_7.pth'
    assert message.startswith(f'{signal.Signals(signum).name}: saved {checkpoint} after iteration 7 '
                              f'(epoch 2, batch 3/4)')
    assert '--resume continues exactly there, with batch 4 of epoch 2' in message
    assert (tmp_path / 'resumed' / 'last_checkpoint').read_text() == 'iter_7.pth'
    assert torch.load(checkpoint, weights_only=True)['meta']['accumulated_grads']  # pending

    assert_resumed_equals_the_straight_run(tmp_path, name)


def test_second_interrupt_in_the_resumed_epoch_counts_its_skipped_batches(tmp_path):
    """Resumed after batch 2 of epoch 2 and interrupted again after its batch 4: the second
    checkpoint says 4 batches of the epoch are done (not the 2 run since the resume), and resuming
    from it still ends where the straight run does."""
    previous = signal.getsignal(signal.SIGINT)
    name = f'twice_{tmp_path.name}'
    first = make_runner(tmp_path / 'resumed', name=f'{name}_first', max_epochs=3,
                        extra_hooks=[SignalAt(4, signal.SIGINT)])  # stops after iteration 6
    with pytest.raises(TrainingInterrupted, match=r'after iteration 6 \(epoch 2, batch 2/4\)'):
        first.train()
    second = make_runner(tmp_path / 'resumed', name=f'{name}_second', max_epochs=3, resume=True,
                         extra_hooks=[SignalAt(6, signal.SIGINT)])  # stops after iteration 8
    with pytest.raises(TrainingInterrupted) as stop:
        second.train()
    assert 'after iteration 8 (epoch 2, batch 4/4)' in str(stop.value)
    assert 'with epoch 3' in str(stop.value)
    assert torch.load(tmp_path / 'resumed' / 'iter_8.pth',
                      weights_only=True)['meta']['epoch_batches_done'] == 4
    assert signal.getsignal(signal.SIGINT) == previous

    assert_resumed_equals_the_straight_run(tmp_path, name)


def test_train_tool_on_sigint_saves_says_so_and_resumes(tmp_path):
    """``tools/train.py`` with a real config: Ctrl-C mid-epoch, one line, exit 130, ``--resume``."""
    config = write_tiny_config(tmp_path, tmp_path / 'data', num_train=16, max_epochs=1)
    work_dir = tmp_path / 'work'
    command = [sys.executable, str(REPO_ROOT / 'tools' / 'train.py'), str(config),
               '--work-dir', str(work_dir)]
    process = subprocess.Popen(command, cwd=tmp_path, env=tool_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:  # Ctrl-C once the second iteration is logged
        output.append(line)
        if 'Epoch(train) [1][2/8]' in line:
            process.send_signal(signal.SIGINT)
            break
    output += process.stdout.readlines()
    assert process.wait(timeout=300) == 130, ''.join(output)[-3000:]
    text = ''.join(output)
    assert 'Traceback' not in text and 'KeyboardInterrupt' not in text, text[-3000:]
    [line] = [line for line in output if 'SIGINT: saved' in line]
    saved = (work_dir / 'last_checkpoint').read_text()
    assert saved.startswith('iter_') and f'SIGINT: saved {work_dir / saved} after iteration' in line

    resumed = subprocess.run(command + ['--resume'], cwd=tmp_path, env=tool_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'param_schedulers` is None' not in resumed.stdout + resumed.stderr  # mmengine's wrong warning
    done = int(saved[len('iter_'):-len('.pth')])
    assert f'resumed epoch: 0, iter: {done}' in resumed.stdout
    assert torch.load(work_dir / 'epoch_1.pth', weights_only=True)['meta']['iter'] == 8
