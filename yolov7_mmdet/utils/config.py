"""Find the configs that ship with yolov7_mmdet, from a source checkout or from a wheel install.

mmengine's ``pkg::`` prefix (``mmdet::yolox/...``) resolves only OpenMMLab packages, so
``config_path`` does the same for ours: a wheel carries the configs in ``yolov7_mmdet/.mim/configs``
(see ``setup.py``); an editable install reads them from the repository's ``configs/``.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def config_roots() -> list[Path]:
    """The folders searched for configs, in order: the installed copy, then the source tree."""
    return [_PACKAGE_DIR / '.mim' / 'configs', _PACKAGE_DIR.parent / 'configs']


def config_path(relative: str) -> str:
    """Return the absolute path of a shipped config.

    Args:
        relative: Path below ``configs/``, e.g. ``'yolov7/yolov7_l_8xb16-300e_coco.py'``.

    Raises:
        FileNotFoundError: If no config root holds it; the message lists the roots searched.
    """
    for root in config_roots():
        candidate = root / relative
        if candidate.is_file():
            return str(candidate)
    searched = ', '.join(str(root) for root in config_roots())
    raise FileNotFoundError(f'No shipped config {relative!r}; searched {searched}.')
