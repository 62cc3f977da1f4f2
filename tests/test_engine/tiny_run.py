"""A yolov7-tiny (or L) config on a few demo images, for the tests that run the real command-line tools.

``write_tiny_config`` fills the first block of ``configs/yolov7/yolov7_tiny_custom.py`` (the config
that ``create_config.py`` writes) with a 4-image demo dataset at 64 pixels, batch 2, no workers and
no anchor fitting, so that one epoch of ``tools/train.py`` takes a few seconds on a CPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from yolov7_mmdet.datasets.demo import CLASSES, make_demo_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_tiny_config(folder: Path, data_root: Path, *, max_epochs: int = 1, num_train: int = 4,
                      arch: str = 'tiny', extra: str = '') -> Path:
    """Write ``folder/<arch>.py`` (training on ``data_root``'s demo images) and return its path.

    Args:
        folder: Where the config goes.
        data_root: Folder of the demo dataset (made here when absent).
        max_epochs: Length of the run.
        num_train: Number of training images (two per iteration).
        arch: ``tiny`` or ``l``: the variant's ``configs/yolov7/yolov7_<arch>_custom.py``.
        extra: Config lines appended at the end.
    """
    template = REPO_ROOT / 'configs' / 'yolov7' / f'yolov7_{arch}_custom.py'
    make_demo_dataset(data_root, num_train=num_train, num_val=2, image_size=64, seed=3)
    values = dict(
        train_ann_file=data_root / 'annotations' / 'train.json', train_img_dir=f'{data_root}/images/train/',
        val_ann_file=data_root / 'annotations' / 'val.json', val_img_dir=f'{data_root}/images/val/',
        classes=CLASSES, img_scale=(64, 64), train_batch_size_per_gpu=2, max_epochs=max_epochs,
        auto_anchor=False, num_workers=0)
    lines = template.read_text().splitlines()
    for index, line in enumerate(lines):
        name = line.split('=')[0].strip()
        if name in values and not line.startswith(' '):
            value = values[name]
            lines[index] = f'{name} = {str(value)!r}' if isinstance(value, Path) else f'{name} = {value!r}'
        elif line.strip().startswith("'../_base_/"):
            lines[index] = line.replace("'../", f"'{REPO_ROOT}/configs/")
    replacements = {'logger=dict(interval=10)': 'logger=dict(interval=1)',
                    'env_cfg = dict(cudnn_benchmark=True)': 'env_cfg = dict(cudnn_benchmark=False)'}
    text = '\n'.join(lines) + '\n'
    for old, new in replacements.items():
        assert old in text, f'{template} changed: no {old!r}'
        text = text.replace(old, new)
    path = folder / f'{arch}.py'
    path.write_text(text + extra)
    return path


def tool_env(**extra: str) -> dict:
    """The environment for a tool subprocess: this checkout first on the path, one thread."""
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1', **extra)


def run_tool(args: list, *, cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` (a tool path relative to the repository, or ``-c``) and capture its output."""
    args = [str(REPO_ROOT / a) if str(a).startswith('tools/') else str(a) for a in args]
    return subprocess.run([sys.executable, *args], cwd=cwd, env=tool_env(**env), capture_output=True,
                          text=True, timeout=timeout)
