"""yolov7_mmdet: YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696) as an MMDetection 3.x plugin.

``import yolov7_mmdet`` checks the installed stack, then registers every component into mmdet's own
registries (``mmdet.registry.MODELS``, ``TASK_UTILS``, ``TRANSFORMS``, ``HOOKS``, ...), so configs use::

    custom_imports = dict(imports=['yolov7_mmdet'], allow_failed_imports=False)
    default_scope = 'mmdet'
"""
import warnings

# mmengine's Config imports pkg_resources (mmengine.utils.package_utils, and reloads it on every
# `mmdet::` base config), and setuptools >= 67.5 warns on each import that the API is deprecated:
# a warning about mmengine's dependency, printed on every command, that a user can do nothing about.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API', category=UserWarning)

from .utils.stack import check_stack  # noqa: E402
from .version import __version__

check_stack()

from .utils.config import config_path  # noqa: E402
from .utils.checkpoint import allow_mmengine_checkpoints, register_safe_checkpoint_loaders  # noqa: E402

allow_mmengine_checkpoints()
register_safe_checkpoint_loaders()  # no checkpoint runs code, whatever torch's default

from . import datasets, deployment, engine, models  # noqa: E402,F401  (registration)

__all__ = ['__version__', 'config_path', 'check_stack']
