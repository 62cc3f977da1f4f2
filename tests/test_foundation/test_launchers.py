"""The shell launchers run the repository's ``.venv`` python from a plain shell (issue #23 item 1).

Right after the README's set-up commands a user's shell has no environment on its ``PATH``;
``tools/dist_train.sh``, ``dist_test.sh`` and ``slurm_train.sh`` then use ``.venv/bin/python`` (made
by ``tools/setup_env.sh``) unless ``PYTHON`` names another interpreter.
"""
from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO_ROOT / '.venv' / 'bin' / 'python'
DEMO_CONFIG = 'configs/demo/yolov7_tiny_demo.py'
pytestmark = pytest.mark.skipif(not VENV_PYTHON.exists(),
                                reason=f'no {VENV_PYTHON} (tools/setup_env.sh makes it)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def plain_shell_env(path: str = '/usr/bin:/bin', **extra: str) -> dict:
    """A login-less shell's environment: no virtual environment, no PYTHONPATH."""
    return dict(PATH=path, HOME=os.environ.get('HOME', '/tmp'), OMP_NUM_THREADS='1', **extra)


@pytest.mark.parametrize('launcher, args', [
    ('dist_train.sh', [DEMO_CONFIG, '1']),
    ('dist_test.sh', [DEMO_CONFIG, 'absent.pth', '1']),
])
def test_torchrun_launchers_start_the_tool_with_the_venv_python(launcher, args):
    """``--help`` stops the tool after its imports (torch, mmdet, yolov7_mmdet): the interpreter
    that torchrun and the worker ran has the whole stack."""
    result = subprocess.run(['bash', f'tools/{launcher}', *args, '--help'], cwd=REPO_ROOT,
                            env=plain_shell_env(PORT=str(free_port())), capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'usage:' in result.stdout and '--launcher' in result.stdout


def fake_srun(folder: Path) -> Path:
    """An ``srun`` that records its arguments, one per line, in ``folder / 'srun_args'``."""
    srun = folder / 'srun'
    srun.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{folder}/srun_args"\n')
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    return folder / 'srun_args'


@pytest.mark.parametrize('python', [None, '/opt/other/python'])
def test_slurm_launcher_runs_the_venv_python_unless_python_is_set(tmp_path, python):
    recorded = fake_srun(tmp_path)
    env = plain_shell_env(path=f'{tmp_path}:/usr/bin:/bin',
                          **({'PYTHON': python} if python else {}))
    subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'job', DEMO_CONFIG, 'work'],
                   cwd=REPO_ROOT, env=env, check=True, timeout=60)
    srun_args = recorded.read_text().splitlines()
    interpreter = srun_args[srun_args.index('-u') - 1]
    if python is None:
        assert interpreter == str(VENV_PYTHON)
    else:
        assert interpreter == python
