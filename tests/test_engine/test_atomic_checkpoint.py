"""A failure or a kill while saving never corrupts the latest checkpoint or ``last_checkpoint``."""
import multiprocessing
import os

import pytest
import torch
from engine_toys import make_runner

from yolov7_mmdet.engine.hooks import atomic_write_bytes


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'epoch_1.pth'
    atomic_write_bytes(str(path), b'old checkpoint')

    def broken_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_bytes(str(path), b'new checkpoint, half written')
    assert path.read_bytes() == b'old checkpoint'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # the temporary file is gone


def _write_and_die(path):
    """Child process: killed (os._exit) after writing the data, before the rename."""
    os.fsync = lambda fd: os._exit(9)
    atomic_write_bytes(path, b'new checkpoint')


def test_killed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    atomic_write_bytes(str(path), b'old checkpoint')
    child = multiprocessing.get_context('fork').Process(target=_write_and_die, args=(str(path),))
    child.start()
    child.join(30)
    assert child.exitcode == 9
    assert path.read_bytes() == b'old checkpoint'


def test_hook_keeps_last_checkpoint_valid_when_a_save_fails(tmp_path, monkeypatch):
    """Even with max_keep_ckpts=1 (mmengine deletes the old file before writing the new one)."""
    real_replace = os.replace

    def replace_failing_for_epoch_2(src, dst):
        if str(dst).endswith('epoch_2.pth'):
            raise OSError('killed while saving epoch 2')
        real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', replace_failing_for_epoch_2)
    runner = make_runner(tmp_path, name='atomic', max_epochs=2,
                         checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1,
                                         save_param_scheduler=False))
    with pytest.raises(OSError, match='epoch 2'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'  # relative to the work dir
    assert not list(tmp_path.glob('.*.tmp'))
    checkpoint = torch.load(tmp_path / 'epoch_1.pth')  # weights_only (torch default) load works
    assert checkpoint['meta']['epoch'] == 1 and 'ema_state_dict' in checkpoint


def test_hook_prunes_after_saving(tmp_path):
    runner = make_runner(tmp_path, name='prune', max_epochs=3,
                         checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2,
                                         save_param_scheduler=False))
    runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_2.pth', 'epoch_3.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_3.pth'


def test_temp_file_of_a_killed_write_is_removed_at_start_up_and_logged(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    child = multiprocessing.get_context('fork').Process(target=_write_and_die, args=(str(path),))
    child.start()
    child.join(30)
    [left_over] = tmp_path.glob('.epoch_1.pth.*.tmp')  # the kill left it
    not_ours = ['.notes.tmp', 'epoch_1.pth.tmp', '.epoch_1.pth.not-hex.tmp']
    for name in not_ours:
        (tmp_path / name).write_text('a user file')
    runner = make_runner(tmp_path, name='cleanup', max_epochs=1)
    runner.train()
    assert not left_over.exists()
    assert all((tmp_path / name).exists() for name in not_ours)
    [log_file] = tmp_path.glob('*/*.log')
    log = log_file.read_text()
    assert 'Removed 1 temporary file(s) left by an interrupted checkpoint write' in log
    assert str(left_over) in log
