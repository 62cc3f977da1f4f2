"""The installed-stack check: a broken torch / mmcv / mmengine / mmdet combination gets one clear error."""
import subprocess
import sys

import pytest

from yolov7_mmdet.utils.stack import StackError, check_stack, find_stack_problems

GOOD = {'torch': '2.13.0', 'mmengine': '0.10.7', 'mmcv': '2.1.0', 'mmdet': '3.3.0'}


def fake_stack(**overrides):
    versions = {**GOOD, **overrides}
    return dict(version_of=versions.get, has_module=lambda name: True)


def test_tested_stack_has_no_problems():
    assert find_stack_problems(**fake_stack()) == []


def test_the_real_environment_passes():
    assert find_stack_problems() == []


def test_mmcv_lite_is_named_with_the_fix():
    problems = find_stack_problems(**fake_stack(mmcv=None, **{'mmcv-lite': '2.1.0'}))
    assert len(problems) == 1
    assert 'mmcv-lite 2.1.0 is installed' in problems[0] and 'pip uninstall mmcv-lite' in problems[0]


def test_mmcv_2_2_with_mmdet_3_3_is_refused():
    (problem,) = find_stack_problems(**fake_stack(mmcv='2.2.0'))
    assert 'mmcv 2.2.0 is installed' in problem and 'mmcv>=2.0.0rc4,<2.2.0' in problem


def test_mmcv_without_compiled_ops_is_named():
    versions = fake_stack()
    versions['has_module'] = lambda name: name != 'mmcv._ext'
    (problem,) = find_stack_problems(**versions)
    assert 'mmcv._ext is missing' in problem and '--no-build-isolation' in problem


@pytest.mark.parametrize('dist, version', [('mmdet', '3.2.0'), ('mmdet', None), ('mmengine', '1.0.0'),
                                           ('torch', '1.13.1'), ('torch', '2.5.1')])
def test_wrong_or_missing_package(dist, version):
    (problem,) = find_stack_problems(**fake_stack(**{dist: version}))
    assert problem.startswith(dist)
    assert (version or 'not installed') in problem


def test_check_stack_lists_every_problem_and_the_fix():
    with pytest.raises(StackError) as error:
        check_stack(**fake_stack(mmcv='2.2.0', mmdet='3.1.0'))
    message = str(error.value)
    assert 'mmcv 2.2.0' in message and 'mmdet 3.1.0' in message and 'How to fix' in message


def test_import_fails_clearly_before_mmdet_asserts():
    """``import yolov7_mmdet`` must raise StackError, not mmdet's bare AssertionError."""
    code = ('import importlib.metadata as m; real = m.version; '
            "m.version = lambda d: '2.2.0' if d == 'mmcv' else real(d); "
            'import yolov7_mmdet')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode != 0
    assert 'StackError' in result.stderr and 'mmcv 2.2.0 is installed' in result.stderr
