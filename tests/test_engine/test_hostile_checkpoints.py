"""Hostile and broken checkpoints: every tool that loads one refuses it in one line.

* No checkpoint runs code, whatever torch's default: with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
  (torch's behaviour before 2.6) a plain ``torch.load`` runs the ``__reduce__`` of any pickled
  object. The payload here would create a file, which must not exist afterwards.
* Weights with NaN or inf are refused at load, naming the file and the tensor.
* ``load_from`` a checkpoint of another variant is refused, naming the variant it fits.
"""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmdet.registry import MODELS

from tiny_run import REPO_ROOT, run_tool, write_tiny_config
from yolov7_mmdet.utils.checkpoint import (CheckpointError, UnsafeCheckpointError, forcing_weights_only,
                                           load_checkpoint_safely)
from yolov7_mmdet.utils.launch import check_checkpoint_fits

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


def test_an_official_file_is_refused_naming_the_converter(tmp_path, monkeypatch):
    """The official .pt files pickle ``models.yolo.Model``: refused, with the converter to use."""
    models, yolo = types.ModuleType('models'), types.ModuleType('models.yolo')
    yolo.Model = type('Model', (), dict(__module__='models.yolo'))
    models.yolo = yolo
    monkeypatch.setitem(sys.modules, 'models', models)
    monkeypatch.setitem(sys.modules, 'models.yolo', yolo)
    torch.save(dict(model=yolo.Model()), tmp_path / 'yolov7.pt')
    monkeypatch.delitem(sys.modules, 'models.yolo')
    with pytest.raises(UnsafeCheckpointError, match=r'GLOBAL models.yolo.Model, .*an official YOLOv7 file\? '
                                                    r'Convert it with tools/model_converters/yolov7_to_mmdet.py'):
        _load_checkpoint(str(tmp_path / 'yolov7.pt'))


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


@pytest.fixture(scope='module')
def tiny_state() -> dict:
    """The state dict of yolov7-tiny as the 80-class COCO configs build it."""
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(str(REPO_ROOT / 'configs/_base_/models/yolov7_tiny.py')).model)
    return model.state_dict()


@pytest.fixture
def nan_checkpoint(tmp_path, tiny_state) -> Path:
    state = dict(tiny_state)
    state['neck.spp.final_conv.conv.weight'] = state['neck.spp.final_conv.conv.weight'].clone()
    state['neck.spp.final_conv.conv.weight'][0, 0] = float('nan')
    path = tmp_path / 'nan.pth'
    torch.save(dict(state_dict=state, meta={}), path)
    return path


NAN_ERROR = 'nan.pth: weight neck.spp.final_conv.conv.weight has 1 of'


def assert_refused(result, marker: Path, tool: str, error: str = 'evil.pth: refused') -> None:
    assert not marker.exists(), f'{tool} ran code from the checkpoint'
    assert result.returncode != 0, result.stdout[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if error in line]
    assert len(errors) == 1, result.stderr[-3000:]


def tool_args(tool: str, checkpoint: Path, tmp_path: Path) -> list:
    return [tool, TINY_CONFIG, checkpoint] + (['--out', tmp_path / 'x.onnx'] if 'export' in tool else [])


@pytest.mark.parametrize('tool', ['tools/test.py', 'tools/deployment/export_onnx.py'])
def test_test_and_export_refuse(tool, evil, tmp_path):
    checkpoint, marker = evil
    assert_refused(run_tool(tool_args(tool, checkpoint, tmp_path), cwd=tmp_path, **UNSAFE_ENV), marker, tool)


@pytest.mark.parametrize('tool', ['tools/test.py', 'tools/deployment/export_onnx.py'])
def test_test_and_export_refuse_nan_weights(tool, nan_checkpoint, tmp_path):
    result = run_tool(tool_args(tool, nan_checkpoint, tmp_path), cwd=tmp_path)
    assert_refused(result, tmp_path / 'no-marker', tool, error=NAN_ERROR)
    assert not (tmp_path / 'x.onnx').exists()


def test_test_tool_misfit_is_one_error_without_traceback(tmp_path, tiny_state):
    """A checkpoint of another variant: the clear "does not fit" error, no traceback before it."""
    checkpoint = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=tiny_state), checkpoint)
    config = REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_l_8xb16-300e_coco.py'
    result = run_tool(['tools/test.py', config, checkpoint], cwd=tmp_path)
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith('test.py: error:')]
    assert 'does not fit the model of this config' in line and 'it fits yolov7-tiny (100%' in line


@pytest.mark.parametrize('payload', [[1, 2], torch.ones(3), {'state_dict': [1]}])
def test_fit_check_of_a_file_without_state_dict(tmp_path, payload, tiny_state):
    path = tmp_path / 'odd.pth'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r'odd.pth: holds a (list|Tensor), not a model state dict'):
        check_checkpoint_fits(torch.nn.Linear(2, 2), str(path))


@pytest.mark.parametrize('mode', ['resume', 'load_from'])
def test_train_refuses(mode, evil, tmp_path):
    checkpoint, marker = evil
    config = write_tiny_config(tmp_path, tmp_path / 'data')
    args = ['tools/train.py', config, '--work-dir', tmp_path / 'work']
    args += ['--resume', checkpoint] if mode == 'resume' else ['--cfg-options', f'load_from={checkpoint}']
    assert_refused(run_tool(args, cwd=tmp_path, **UNSAFE_ENV), marker, f'train.py ({mode})')


INIT_SCRIPT = (
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


def test_init_detector_and_inferencer_refuse(evil, tmp_path):
    checkpoint, marker = evil
    result = run_tool(['-c', INIT_SCRIPT, TINY_CONFIG, checkpoint], cwd=tmp_path, **UNSAFE_ENV)
    assert not marker.exists()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count('UnsafeCheckpointError') == 2, result.stderr[-3000:]


def test_init_detector_and_inferencer_refuse_nan_weights(nan_checkpoint, tmp_path):
    result = run_tool(['-c', INIT_SCRIPT, TINY_CONFIG, nan_checkpoint], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count(NAN_ERROR) == 2, result.stderr[-3000:]


def test_load_from_another_variant_is_refused_unless_partial_load_is_allowed(tmp_path, tiny_state):
    """tiny into L (the issue's L into tiny, the other way round: a 25 MB file instead of 150 MB)."""
    checkpoint = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=tiny_state), checkpoint)
    config = write_tiny_config(tmp_path, tmp_path / 'data', arch='l')
    args = ['tools/train.py', config, '--work-dir', tmp_path / 'work',
            '--cfg-options', f'load_from={checkpoint}']
    result = run_tool(args, cwd=tmp_path)
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith('train.py: error:')]
    assert f'load_from {checkpoint}: holds only ' in line and 'it fits yolov7-tiny (100%' in line
    assert 'allow_partial_load = True' in line and not list((tmp_path / 'work').rglob('*.pth'))


def test_test_tool_missing_checkpoint_is_one_line(tmp_path):
    result = run_tool(['tools/test.py', TINY_CONFIG, tmp_path / 'missing.pth'], cwd=tmp_path)
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == f"test.py: error: Checkpoint '{tmp_path / 'missing.pth'}' does not exist."


def test_load_from_a_url_or_a_home_path_is_not_called_missing(tmp_path, monkeypatch):
    """``load_from`` may be a URL (mmengine's loaders fetch it) or start with ``~``: the fit
    check reads both, and calls only a missing local file missing."""
    from yolov7_mmdet.utils import launch
    state = {'conv.weight': torch.ones(1)}
    monkeypatch.setenv('HOME', str(tmp_path))
    torch.save(dict(state_dict=state), tmp_path / 'home.pth')
    assert launch.checkpoint_state_dict('~/home.pth').keys() == state.keys()
    fetched = []
    monkeypatch.setattr(launch, '_load_checkpoint',
                        lambda name, **kwargs: fetched.append(name) or dict(state_dict=state))
    assert launch.checkpoint_state_dict('https://example.org/w.pth').keys() == state.keys()
    assert fetched == ['https://example.org/w.pth']
    with pytest.raises(launch.CheckpointNotFoundError, match='does not exist'):
        launch.checkpoint_state_dict(str(tmp_path / 'missing.pth'))
