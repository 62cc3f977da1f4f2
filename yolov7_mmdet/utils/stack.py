"""Check the installed OpenMMLab stack before anything of mmdet is imported.

mmdet 3.3.0 only works with ``2.0.0rc4 <= mmcv < 2.2.0`` *with* its compiled ops (``mmcv._ext``,
needed for NMS), mmengine 0.10.x and torch >= 2.6. A wrong combination otherwise fails deep inside
mmdet with an ``AssertionError`` or a missing-symbol error that does not say what to do. This module
reads the versions from the installed distributions' metadata (importing nothing heavy) and raises
one :class:`StackError` that says what is installed, what is needed and how to fix it.

torch >= 2.6 because checkpoint loading is safe only with it: every load of ours forces
``weights_only=True`` (``utils/checkpoint.py``), and torch <= 2.5.1's ``weights_only`` unpickler could
still be made to run code (CVE-2025-32434); 2.6 also brings the allowlist API used there
(``add_safe_globals`` with ``(function, name)`` pairs).
"""
from __future__ import annotations

import importlib.util
from importlib import metadata
from typing import Callable, Optional

from packaging.version import Version

#: The tested stack; ``requirements/stack.txt`` pins the exact versions that CI runs.
REQUIREMENTS = {
    'torch': ('2.6.0', None),  # safe checkpoint loading, see the module docstring
    'mmengine': ('0.10.0', '1.0.0'),
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmdet': ('3.3.0', '3.4.0'),
}

FIX_HINT = (
    'Run `bash tools/setup_env.sh` for the tested CPU stack, or see "Install on a GPU machine" in '
    'README.md: pip install "mmcv==2.1.0" --no-build-isolation (FORCE_CUDA=1 for CUDA ops), '
    'pip install "mmdet==3.3.0" "mmengine==0.10.7".')


class StackError(ImportError):
    """The installed torch / mmcv / mmengine / mmdet cannot run yolov7_mmdet."""


def _installed_version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _describe(lower: str, upper: Optional[str]) -> str:
    return f'>={lower}' + (f',<{upper}' if upper else '')


def find_stack_problems(
        version_of: Callable[[str], Optional[str]] = _installed_version,
        has_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
) -> list[str]:
    """Return one human-readable line per problem of the installed stack (empty when fine).

    Args:
        version_of: Maps a distribution name to its installed version, or None when absent.
            Injectable so that tests can simulate broken stacks.
        has_module: Tells whether a module can be found (used for ``mmcv._ext``).
    """
    problems = []
    if version_of('mmcv-lite') and not version_of('mmcv'):
        problems.append(
            f"mmcv-lite {version_of('mmcv-lite')} is installed, but mmdet needs the full mmcv "
            'with compiled ops: pip uninstall mmcv-lite, then install mmcv 2.1.0.')
    for dist, (lower, upper) in REQUIREMENTS.items():
        installed = version_of(dist)
        needed = _describe(lower, upper)
        if installed is None:
            if not (dist == 'mmcv' and problems):
                problems.append(f'{dist} is not installed (needed: {dist}{needed}).')
            continue
        version = Version(installed)
        if version < Version(lower) or (upper and version >= Version(upper)):
            note = ' (mmdet 3.3.0 refuses mmcv 2.2.0 and newer)' if dist == 'mmcv' else ''
            problems.append(f'{dist} {installed} is installed, but {dist}{needed} is needed{note}.')
    if version_of('mmcv') and not has_module('mmcv._ext'):
        problems.append(
            'mmcv is installed without its compiled ops (mmcv._ext is missing; it was probably '
            'built with build isolation): reinstall with '
            'pip install --no-build-isolation --force-reinstall --no-deps "mmcv==2.1.0".')
    return problems


def check_stack(**kwargs) -> None:
    """Raise :class:`StackError` listing every problem of the installed stack, if any."""
    problems = find_stack_problems(**kwargs)
    if problems:
        lines = '\n'.join(f'  - {p}' for p in problems)
        raise StackError(f'yolov7_mmdet cannot run on this stack:\n{lines}\nHow to fix: {FIX_HINT}')
