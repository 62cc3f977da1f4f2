"""Shared fixtures: the plugin is registered, and ``../shared`` is located (or its tests skip).

The suite runs torch on one thread (also in the subprocesses it starts): its tensors are small, and
on a 2-core machine with anything else running, OpenMP's second thread waits on a busy core and
makes every op 5-40x slower (measured with a yolov7-tiny training step).
"""
import os

os.environ.setdefault('OMP_NUM_THREADS', '1')

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import yolov7_mmdet  # noqa: F401  (registers every component)

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / 'shared'


@pytest.fixture(scope='session')
def shared_datasets() -> Path:
    """``../shared/datasets``; tests that need real data skip with the reason when it is absent."""
    path = SHARED_DIR / 'datasets'
    if not path.is_dir():
        pytest.skip(f'real datasets not found at {path} (../shared is absent)')
    return path
