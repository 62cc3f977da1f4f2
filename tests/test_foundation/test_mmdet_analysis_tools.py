"""mmdet's analysis tools (from its installed ``.mim/tools``) find what they import.

``analyze_logs.py`` imports seaborn; ``benchmark.py`` measures memory with psutil (and without it
fails at its first memory reading). Both are pinned in requirements/stack.txt and installed by
tools/setup_env.sh; the commands are in README "Distributed training and fail-safe training".
"""
import importlib.util
from pathlib import Path

import mmdet
import pytest

MMDET_TOOLS = Path(mmdet.__file__).parent / '.mim' / 'tools' / 'analysis_tools'


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'mmdet_tool_{name}', MMDET_TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', ['analyze_logs', 'confusion_matrix', 'browse_dataset', 'benchmark'])
def test_tool_imports(name):
    assert callable(load_tool(name).main)


def test_benchmark_has_psutil():
    from mmdet.utils import benchmark
    assert benchmark.psutil is not None
