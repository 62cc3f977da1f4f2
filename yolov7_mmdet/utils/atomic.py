"""Atomic file writes: a reader sees a file's old content or its new one, never a mix or a stub.

The project's one writer for everything that must survive a kill or a full disk: checkpoints
(:class:`~yolov7_mmdet.engine.hooks.AtomicLocalBackend`), converted datasets, generated configs,
exported models and tool outputs; and the check that an output is not one of a tool's inputs.
"""
from __future__ import annotations

import os
import os.path as osp
import re
import uuid
from pathlib import Path
from typing import Iterable

# '.<file name>.<uuid4 hex>.tmp', the temporary file of atomic_write_bytes
_TEMP_FILE_NAME = re.compile(r'^\..+\.[0-9a-f]{32}\.tmp$')


def stale_temp_files(folder: str) -> list[str]:
    """The temporary files that :func:`atomic_write_bytes` left in ``folder`` when killed mid-write."""
    if not osp.isdir(folder):
        return []
    return sorted(osp.join(folder, name) for name in os.listdir(folder)
                  if _TEMP_FILE_NAME.match(name))


def _fsync_dir(folder: str) -> None:
    """Persist a rename in ``folder`` (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old or its new content, never a mix.

    The bytes go to a hidden temporary file in the same folder (same file system, so the rename is
    atomic), which is flushed and fsynced, then renamed over ``path``. On an error the temporary file
    is removed and the error re-raised; ``path`` is untouched.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp_path = osp.join(folder, f'.{osp.basename(path)}.{uuid.uuid4().hex}.tmp')
    try:
        with open(tmp_path, 'xb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_dir(folder)


def refuse_overwriting_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Raise ``ValueError`` when an existing output file is one of the inputs.

    Files are compared by identity (device and inode), so a path spelled differently, a symbolic
    link (to the file or to a folder above it) and a hard link all count as the input itself.
    """
    identities = {}
    for path in inputs:
        try:
            status = os.stat(path)
        except (OSError, ValueError):  # missing input (reported by the reader), or a bad name
            continue
        identities.setdefault((status.st_dev, status.st_ino), path)
    for path in outputs:
        try:
            status = os.stat(path)
        except (OSError, ValueError):
            continue
        source = identities.get((status.st_dev, status.st_ino))
        if source is not None:
            raise ValueError(f'the output {path} is an input of this run ({source}); writing it '
                             'would destroy that input: choose another output file')
