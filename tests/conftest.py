"""Shared fixtures: the plugin is registered, and ``../shared`` is located (or its tests skip)."""
from pathlib import Path

import pytest

import yolov7_mmdet  # noqa: F401  (registers every component)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / 'shared'


@pytest.fixture(scope='session')
def shared_datasets() -> Path:
    """``../shared/datasets``; tests that need real data skip with the reason when it is absent."""
    path = SHARED_DIR / 'datasets'
    if not path.is_dir():
        pytest.skip(f'real datasets not found at {path} (../shared is absent)')
    return path
