"""Writing a converter's output files: all of them or none, never over one of its inputs.

Each file is first written in full beside its target under a hidden name, through the project's
atomic writer (``atomic_write_bytes``: temporary file, ``fsync``, rename); only when every one is
on disk are they renamed over their targets. A full disk or any other error while writing leaves
every earlier output as it was and no temporary file. What remains possible: a kill between the
renames (microseconds) leaves some targets new and some old.
"""
import os
import uuid
from pathlib import Path
from typing import Dict, Iterable

from ...utils.atomic import atomic_write_bytes, refuse_overwriting_inputs  # noqa: F401


def write_all_or_nothing(contents: Dict[Path, bytes], *, stale: Iterable[Path] = ()) -> None:
    """Write every file of ``contents`` (folders created), or none of them.

    Args:
        contents (dict[Path, bytes]): Target file -> its bytes.
        stale (Iterable[Path]): Files of an earlier run that this one does not write and that
            would mislead beside the new ones (an issue report); deleted once all are written.

    Raises:
        OSError: When a target is a folder, or writing fails; no target has changed then.
    """
    for path in contents:
        if Path(path).is_dir():
            raise IsADirectoryError(f'{path} is a folder, not a file to write')
    staged = {}
    try:
        for path, data in contents.items():
            path = Path(path)
            staged[path] = path.with_name(f'.{path.name}.{uuid.uuid4().hex}.staged')
            atomic_write_bytes(str(staged[path]), data)
    except BaseException:
        for staged_path in staged.values():
            staged_path.unlink(missing_ok=True)
        raise
    for path, staged_path in staged.items():
        os.replace(staged_path, path)
    for path in stale:
        if Path(path) not in staged:
            Path(path).unlink(missing_ok=True)
