"""Shipped configs are found from a source checkout and from a wheel install."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import yolov7_mmdet
from yolov7_mmdet.utils.config import config_roots

REPO_ROOT = Path(__file__).resolve().parents[2]


def some_shipped_config() -> str:
    configs = sorted((REPO_ROOT / 'configs').rglob('*.py'))
    if not configs:
        pytest.skip('no configs in this checkout yet')
    return configs[0].relative_to(REPO_ROOT / 'configs').as_posix()


def test_config_path_finds_a_source_config():
    relative = some_shipped_config()
    assert Path(yolov7_mmdet.config_path(relative)).is_file()


def test_missing_config_names_the_roots_searched():
    with pytest.raises(FileNotFoundError) as error:
        yolov7_mmdet.config_path('yolov7/no_such_config.py')
    assert all(str(root) in str(error.value) for root in config_roots())


def test_wheel_ships_the_configs(tmp_path):
    relative = some_shipped_config()
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                    '-w', str(tmp_path), str(REPO_ROOT)], check=True)
    (wheel,) = tmp_path.glob('yolov7_mmdet-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert f'yolov7_mmdet/.mim/configs/{relative}' in names
