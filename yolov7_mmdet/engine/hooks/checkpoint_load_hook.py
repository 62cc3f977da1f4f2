"""Check the checkpoint a run is about to load, before mmengine loads it.

mmengine resumes from whatever path ``last_checkpoint`` holds (an absolute path, so a copied work
dir resumes from the original folder and a moved one fails), loads a truncated ``--resume`` file
into a raw ``torch.load`` traceback, and loads ``load_from`` non-strictly: a checkpoint of another
variant (L into tiny) leaves almost every weight random, with hundreds of warnings, and trains on.
:class:`CheckpointLoadCheckHook` runs in ``before_run`` (mmengine loads right after it) and

* resolves ``last_checkpoint`` for ``--resume`` without a path (:func:`latest_checkpoint`): relative
  to the work dir (how :class:`AtomicCheckpointHook` writes it), or an old absolute path; a file of
  the same name beside ``last_checkpoint`` wins over one in another folder (a copied work dir);
* refuses a truncated or corrupt resume file in one line, naming the newest readable checkpoint of
  the same folder (:func:`unreadable_reason`, :func:`newest_readable_checkpoint`);
* refuses, when training, a ``load_from`` checkpoint that holds less than ``min_fit`` (90%) of the
  model's tensors with their shapes, naming the YOLOv7 variant it fits, unless the config sets
  ``allow_partial_load = True``. A checkpoint trained for another number of classes fits by far
  more than 90% (only the class rows of the prediction convs differ; ``class_rows.py`` loads their
  box and objectness rows).
"""
from __future__ import annotations

import os
import os.path as osp
import zipfile
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mmdet.registry import HOOKS
from ...utils.checkpoint import CheckpointError
from ...utils.launch import checkpoint_state_dict, fitting_fraction, variant_note

_ZIP_MAGIC = b'PK\x03\x04'


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, or None when there is no such file.

    A relative path is relative to ``work_dir``. An absolute one (written by mmengine, or by older
    versions of this project) is used as it is, unless ``work_dir`` holds a file of the same name
    and the path lies elsewhere (a copied or moved work dir): then that file.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record, encoding='utf-8') as file:
        named = file.read().strip()
    if not osp.isabs(named):
        return osp.join(work_dir, named)
    beside = osp.join(work_dir, osp.basename(named))
    if osp.dirname(osp.abspath(named)) != osp.abspath(work_dir) and osp.isfile(beside):
        return beside
    return named


def resolve_auto_resume(runner) -> None:
    """For ``--resume`` without a path, point the runner at :func:`latest_checkpoint` (mmengine
    would read ``last_checkpoint`` itself, relative paths against the current directory)."""
    if runner._resume and runner._load_from is None and not runner._has_loaded:
        runner._load_from = latest_checkpoint(runner.work_dir)  # None: nothing to resume, as mmengine


def last_checkpoint_record(work_dir: str, checkpoint: str) -> str:
    """What ``last_checkpoint`` should hold for ``checkpoint``: relative to ``work_dir`` when the
    checkpoint lies inside it (so the folder can be moved or copied), else the absolute path."""
    relative = osp.relpath(osp.abspath(checkpoint), osp.abspath(work_dir))
    return osp.abspath(checkpoint) if relative.startswith(os.pardir) else relative


def unreadable_reason(path: str) -> Optional[str]:
    """Why ``path`` is not a complete torch (zip) checkpoint, or None when it looks complete.

    Reads the zip directory and the CRC of every member; files in torch's legacy (non-zip) format
    are left to the loader.
    """
    try:
        with open(path, 'rb') as file:
            if file.read(4) != _ZIP_MAGIC:
                return None
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        return f'truncated or corrupt: {error}'
    return f'corrupt member {broken}' if broken else None


def newest_readable_checkpoint(folder: str, *, excluding: str) -> Optional[str]:
    """The most recently written readable ``*.pth`` of ``folder`` other than ``excluding``."""
    candidates = [osp.join(folder, name) for name in os.listdir(folder)
                  if name.endswith('.pth') and osp.join(folder, name) != excluding]
    for path in sorted(candidates, key=osp.getmtime, reverse=True):
        if osp.isfile(path) and unreadable_reason(path) is None:
            return path
    return None


def check_resume_file(path: str) -> None:
    """Refuse an unreadable local resume checkpoint in one line that names an older readable one.

    Raises:
        CheckpointError: The file is missing, truncated or corrupt.
    """
    if '://' in path:  # remote: read by mmengine's loaders
        return
    reason = 'no such file' if not osp.isfile(path) else unreadable_reason(path)
    if reason is None:
        return
    folder = osp.dirname(osp.abspath(path))
    older = newest_readable_checkpoint(folder, excluding=osp.abspath(path)) if osp.isdir(folder) else None
    hint = (f'the newest readable checkpoint there is {older}: resume with --resume {older}' if older
            else 'no other readable checkpoint is there: train again without --resume')
    raise CheckpointError(f'cannot resume from {path}: {reason}; {hint}')


@HOOKS.register_module()
class CheckpointLoadCheckHook(Hook):
    """Resolve and check the ``--resume`` / ``load_from`` checkpoint (see the module docstring).

    Args:
        min_fit: The share of the model's tensors a ``load_from`` checkpoint must hold with their
            shapes; the config key ``allow_partial_load = True`` lifts it.
    """
    priority = 'VERY_HIGH'

    def __init__(self, *, min_fit: float = 0.9) -> None:
        self.min_fit = min_fit

    def before_run(self, runner) -> None:
        if runner._has_loaded:
            return
        if runner._resume:
            resolve_auto_resume(runner)
            if runner._load_from is not None:
                check_resume_file(runner._load_from)
        elif runner._load_from is not None and self._training(runner) \
                and not runner.cfg.get('allow_partial_load', False):
            self._check_fit(runner, runner._load_from)

    @staticmethod
    def _training(runner) -> bool:
        """Whether ``runner.train()`` is running (it builds the train loop before ``before_run``);
        ``tools/test.py`` checks its checkpoint strictly itself."""
        return isinstance(runner._train_loop, BaseLoop)

    def _check_fit(self, runner, checkpoint: str) -> None:
        state_dict = checkpoint_state_dict(checkpoint)
        model = getattr(runner.model, 'module', runner.model)
        fraction = fitting_fraction(model, state_dict)
        if fraction < self.min_fit:
            raise CheckpointError(
                f'load_from {checkpoint}: holds only {fraction:.0%} of this model\'s tensors with their '
                f'shapes ({variant_note(state_dict)}); training would start from mostly random weights. '
                f'Use a checkpoint of this variant, or set allow_partial_load = True in the config to load '
                f'what fits.')
