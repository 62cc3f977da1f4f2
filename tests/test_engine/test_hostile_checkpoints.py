"""No checkpoint runs code, whatever torch's default: every load path of ours is ``weights_only``.

With ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (torch's behaviour before 2.6) a plain ``torch.load``
runs the ``__reduce__`` of any pickled object. The payload here would create a file; every tool
that loads a checkpoint must refuse it with one line, and the file must not exist afterwards.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from tiny_run import REPO_ROOT, run_tool, write_tiny_config
from yolov7_mmdet.utils.checkpoint import (CheckpointError, UnsafeCheckpointError, forcing_weights_only,
                                           load_checkpoint_safely)

UNSAFE_ENV = dict(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
TINY_CONFIG = REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_tiny_8xb16-300e_coco.py'


class CreatesFile:
    """Unpickling this calls ``open(path, 'w')``: the file appears when code from the pickle runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), 'w'))


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    """``(checkpoint, marker)``: a checkpoint whose payload would create ``marker``."""
    marker = tmp_path / 'pwned'
    checkpoint = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta={}, payload=CreatesFile(marker)), checkpoint)
    return checkpoint, marker


def test_the_payload_runs_under_the_old_default(evil, monkeypatch):
    """The test's own premise: a plain load in this environment would run the payload."""
    checkpoint, marker = evil
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    torch.load(checkpoint)
    assert marker.exists()


def test_mmengine_loader_refuses_under_the_old_default(evil, monkeypatch):
    checkpoint, marker = evil
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(UnsafeCheckpointError, match=r'evil.pth: refused.*nothing of it was run'):
        _load_checkpoint(str(checkpoint), map_location='cpu')
    assert not marker.exists()


def test_every_mmengine_scheme_forces_weights_only(evil, monkeypatch):
    """The URL loaders (torch.hub passes weights_only=False) run with weights_only forced."""
    checkpoint, marker = evil
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    assert all(getattr(loader, 'forces_weights_only', False) for loader in CheckpointLoader._schemes.values())
    with pytest.raises(pickle.UnpicklingError):
        with forcing_weights_only():
            torch.load(checkpoint, weights_only=False)
    assert not marker.exists()
    assert torch.load.__module__ == 'torch.serialization'  # torch itself is not patched


def test_truncated_and_missing_files_are_one_clear_error(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(100))), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r'truncated.pth: not a readable torch checkpoint \(truncated'):
        load_checkpoint_safely(str(truncated))
    with pytest.raises(FileNotFoundError, match='missing.pth: no such checkpoint file'):
        load_checkpoint_safely(str(tmp_path / 'missing.pth'))


def assert_refused(result, marker: Path, tool: str) -> None:
    assert not marker.exists(), f'{tool} ran code from the checkpoint'
    assert result.returncode != 0, result.stdout[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if 'evil.pth: refused' in line]
    assert len(errors) == 1, result.stderr[-3000:]


@pytest.mark.parametrize('tool', ['tools/test.py', 'tools/deployment/export_onnx.py'])
def test_test_and_export_refuse(tool, evil, tmp_path):
    checkpoint, marker = evil
    args = [tool, TINY_CONFIG, checkpoint] + (['--out', tmp_path / 'x.onnx'] if 'export' in tool else [])
    assert_refused(run_tool(args, cwd=tmp_path, **UNSAFE_ENV), marker, tool)


@pytest.mark.parametrize('mode', ['resume', 'load_from'])
def test_train_refuses(mode, evil, tmp_path):
    checkpoint, marker = evil
    config = write_tiny_config(tmp_path, tmp_path / 'data')
    args = ['tools/train.py', config, '--work-dir', tmp_path / 'work']
    args += ['--resume', checkpoint] if mode == 'resume' else ['--cfg-options', f'load_from={checkpoint}']
    assert_refused(run_tool(args, cwd=tmp_path, **UNSAFE_ENV), marker, f'train.py ({mode})')


def test_init_detector_and_inferencer_refuse(evil, tmp_path):
    checkpoint, marker = evil
    script = (
        'import sys\n'
        'from mmdet.apis import DetInferencer, init_detector\n'
        'for load in (lambda: init_detector(sys.argv[1], sys.argv[2], device="cpu"),\n'
        '             lambda: DetInferencer(sys.argv[1], sys.argv[2], device="cpu", show_progress=False)):\n'
        '    try:\n'
        '        load()\n'
        '    except Exception as error:\n'
        '        print(type(error).__name__, error, file=sys.stderr)\n'
        '    else:\n'
        '        sys.exit("loaded")\n')
    result = run_tool(['-c', script, TINY_CONFIG, checkpoint], cwd=tmp_path, **UNSAFE_ENV)
    assert not marker.exists()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count('UnsafeCheckpointError') == 2, result.stderr[-3000:]
