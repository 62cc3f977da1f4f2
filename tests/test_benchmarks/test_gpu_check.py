"""``benchmarks/gpu_check.py`` keeps working without a GPU: its CPU dry run runs every step and writes the
JSON and the table; a failing or overlong step is recorded and the next one runs; a stale device kit
is one line."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
GPU_CHECK = REPO_ROOT / 'benchmarks' / 'gpu_check.py'
_spec = importlib.util.spec_from_file_location('gpu_check', GPU_CHECK)
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules['gpu_check'] = gpu_check  # its dataclasses look their module up there
_spec.loader.exec_module(gpu_check)


def read_report(out: Path) -> dict:
    return json.loads((out / 'gpu_check.json').read_text())


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_report(shared_datasets, tmp_path):
    """The whole dry run, as CI runs it (about a minute on 2 idle cores; --cap-scale for a busy machine)."""
    result = subprocess.run([sys.executable, str(GPU_CHECK), '--dry-run', '--out', str(tmp_path), '--cap-scale', '4'],
                            capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = read_report(tmp_path)
    assert {name: step['status'] for name, step in report['steps'].items()} == dict.fromkeys(gpu_check.STEPS, 'ok'), \
        {name: step['error'] for name, step in report['steps'].items()}
    assert {row['item'] for step in report['steps'].values() for row in step['rows']} == set(range(1, 8))
    assert report['environment']['torch'] == torch.__version__
    table = (tmp_path / 'gpu_check.md').read_text()
    assert f'torch {torch.__version__}' in table and '**Dry run**' in table
    assert '| 3 | L step fp16, 10 GTs |' in table
    assert '| 7 | tools/dist_train.sh, 1 process (gloo) | trains and saves' in table


def test_a_failing_or_overlong_step_is_recorded_and_the_next_runs(monkeypatch, tmp_path):
    def broken(ctx):
        raise RuntimeError('no kernel image is available')

    def endless(ctx):
        time.sleep(30)

    def quick(ctx):
        assert read_report(tmp_path)['steps']['no_sync']['status'] == 'failed'  # written after each step
        return [gpu_check.Row(4, 'W6 + aux head, one fp16 step', 1.0, 'img/s')]

    monkeypatch.setitem(gpu_check.STEPS, 'no_sync', (broken, 'no sync'))
    monkeypatch.setitem(gpu_check.STEPS, 'l_step', (endless, 'L step'))
    monkeypatch.setitem(gpu_check.STEPS, 'w6_aux', (quick, 'W6'))
    monkeypatch.setitem(gpu_check.DRY.caps_s, 'l_step', 1)
    report = gpu_check.main(['--dry-run', '--out', str(tmp_path), '--steps', 'no_sync', 'l_step', 'w6_aux'])
    steps = report['steps']
    assert (steps['no_sync']['status'], steps['no_sync']['error']) == (
        'failed', 'RuntimeError: no kernel image is available')
    assert (steps['l_step']['status'], steps['l_step']['error']) == ('failed', 'StepTimeout: ran past its cap of 1 s')
    assert steps['l_step']['seconds'] < 10 and steps['w6_aux']['status'] == 'ok'
    assert 'no kernel image' in (tmp_path / 'no_sync.traceback.txt').read_text()
    assert read_report(tmp_path) == json.loads(json.dumps(report, default=str))
    assert '| 2 | no sync | **failed** |' in (tmp_path / 'gpu_check.md').read_text()


def test_a_stale_device_kit_is_one_line():
    line = gpu_check.kit_problem(torch.device('cuda'))  # only the version is read: no GPU needed
    if torch.__version__.startswith(gpu_check.KIT_TORCH):
        assert line is None
    else:
        assert line == (f'gpu_check: the device kit is stale: the image has torch {torch.__version__}, the kit\'s '
                        f'mmcv wheel was built for torch {gpu_check.KIT_TORCH}; {gpu_check.KIT_HINT}.')
    assert gpu_check.kit_problem(torch.device('cpu')) is None
