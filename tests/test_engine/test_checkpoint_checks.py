"""Checkpoints a run writes and loads: portable ``last_checkpoint``, no diverged weights, clear errors.

* ``last_checkpoint`` is relative to the work dir: a moved or copied work dir resumes from its own
  files; an old absolute entry is still read.
* A run whose loss stays finite while its weights blow up stops without saving them.
* A truncated ``--resume`` file is one clear error naming the newest readable checkpoint.
* ``load_from`` of a checkpoint that fits less than 90% of the model needs ``allow_partial_load``.
"""
import shutil
from types import SimpleNamespace

import pytest
import torch
from engine_toys import make_runner
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from torch import nn

from yolov7_mmdet.engine.hooks import CheckpointLoadCheckHook, NonFiniteWeightsError, latest_checkpoint
from yolov7_mmdet.utils.checkpoint import CheckpointError


@pytest.fixture
def one_epoch(tmp_path):
    """A work dir with ``epoch_1.pth`` and ``epoch_2.pth`` of a 2-epoch toy run."""
    work_dir = tmp_path / 'original'
    # one experiment name per test: mmengine shares the message hub of equal names within a second
    make_runner(work_dir, name=f'original_{tmp_path.name}', max_epochs=2).train()
    return work_dir


def resume(work_dir, max_epochs=3):
    runner = make_runner(work_dir, name=f'resumed_{work_dir.parent.name}', max_epochs=max_epochs, resume=True,
                         extra_hooks=[dict(type='CheckpointLoadCheckHook')])  # as in our runtime config
    runner.train()
    return runner


def test_last_checkpoint_is_relative_and_a_moved_work_dir_resumes(one_epoch, tmp_path):
    assert (one_epoch / 'last_checkpoint').read_text() == 'epoch_2.pth'
    moved = tmp_path / 'moved'
    shutil.move(one_epoch, moved)
    runner = resume(moved)
    assert runner.iter == 12 and (moved / 'epoch_3.pth').is_file()  # 8 iterations were resumed


def test_a_copied_work_dir_resumes_from_its_own_checkpoint(one_epoch, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(one_epoch, copy)
    (one_epoch / 'epoch_2.pth').write_bytes(b'not the copy\'s checkpoint')
    runner = resume(copy)
    assert runner.iter == 12


def test_old_absolute_last_checkpoint_is_read(one_epoch, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(one_epoch, copy)
    (copy / 'last_checkpoint').write_text(str(one_epoch / 'epoch_2.pth'))  # as mmengine writes it
    assert latest_checkpoint(str(copy)) == str(copy / 'epoch_2.pth')  # the copy's own file
    assert latest_checkpoint(str(one_epoch)) == str(one_epoch / 'epoch_2.pth')
    (copy / 'last_checkpoint').write_text(str(one_epoch / 'epoch_2.pth'))
    (copy / 'epoch_2.pth').unlink()  # a checkpoint outside the work dir (out_dir) is used as written
    assert latest_checkpoint(str(copy)) == str(one_epoch / 'epoch_2.pth')
    assert latest_checkpoint(str(tmp_path)) is None


def test_truncated_resume_file_names_the_newest_readable_one(one_epoch):
    data = (one_epoch / 'epoch_2.pth').read_bytes()
    (one_epoch / 'epoch_2.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError) as error:
        resume(one_epoch)
    message = str(error.value)
    assert '\n' not in message
    assert f'cannot resume from {one_epoch / "epoch_2.pth"}: truncated or corrupt' in message
    assert f'resume with --resume {one_epoch / "epoch_1.pth"}' in message


class BlowUp(Hook):
    """Makes a conv weight infinite after iteration 8 (the end of epoch 2), whose loss was finite."""
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 7:  # the last iteration of epoch 2: no forward sees it before the save
            with torch.no_grad():
                runner.model.conv.weight[0, 0, 0, 0] = float('inf')


def test_diverged_weights_are_not_saved(tmp_path):
    runner = make_runner(tmp_path, name='diverged', max_epochs=3)
    runner.register_hook(BlowUp())
    with pytest.raises(NonFiniteWeightsError) as error:
        runner.train()
    message = str(error.value)
    assert message.startswith('not saving the checkpoint of epoch 2, iteration 8: ')
    assert 'conv.weight (ema_state_dict) has 1 of 108 values NaN or inf' in message  # the raw model
    assert f'the last good checkpoint is {tmp_path / "epoch_1.pth"}' in message
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'


class TrainLoop(BaseLoop):
    def run(self):
        pass


def fake_runner(model, load_from, **cfg):
    """What ``CheckpointLoadCheckHook.before_run`` reads of a runner in ``train()``."""
    runner = SimpleNamespace(_has_loaded=False, _resume=False, _load_from=str(load_from), model=model,
                             cfg=Config(cfg), work_dir='unused')
    runner._train_loop = TrainLoop(runner, dataloader=[])
    return runner


def test_load_from_that_fits_less_than_90_percent_needs_allow_partial_load(tmp_path):
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(5)))  # 10 tensors
    state = model.state_dict()
    state['4.weight'] = torch.zeros(3, 2)  # 9 of 10 fit: loads
    torch.save(dict(state_dict=state), tmp_path / 'nine.pth')
    CheckpointLoadCheckHook().before_run(fake_runner(model, tmp_path / 'nine.pth'))
    state['4.bias'] = torch.zeros(3)  # 8 of 10
    torch.save(dict(state_dict=state), tmp_path / 'eight.pth')
    with pytest.raises(CheckpointError, match=r"load_from .*eight.pth: holds only 80% of this model's tensors "
                                              r'with their shapes \(it fits no YOLOv7 variant\)'):
        CheckpointLoadCheckHook().before_run(fake_runner(model, tmp_path / 'eight.pth'))
    CheckpointLoadCheckHook().before_run(fake_runner(model, tmp_path / 'eight.pth', allow_partial_load=True))
