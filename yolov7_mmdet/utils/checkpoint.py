"""Load checkpoints without running code from them, whatever torch's default; refuse broken ones.

Every checkpoint a user loads may come from a stranger, so nothing of it may run as code. torch 2.6
made ``torch.load(weights_only=True)`` the default, but the old default (or
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) unpickles anything, mmengine 0.10.7 calls ``torch.load``
without the argument, and ``torch.hub`` (mmengine's ``http://`` loader) passes
``weights_only=False``. ``import yolov7_mmdet`` therefore registers :func:`load_checkpoint_safely`
as mmengine's loader for local files (every ``_load_checkpoint`` / ``load_checkpoint`` call:
``load_from``, ``--resume``, ``tools/test.py``, export, ``init_detector``, ``DetInferencer``) and
wraps mmengine's other loaders (URLs, ``open-mmlab://``, ...) so that torch forces
``weights_only=True`` for their calls (:func:`forcing_weights_only`).

``weights_only`` loads need an allowlist of the non-tensor types that mmengine runner checkpoints
hold: the message hub's logs, ``HistoryBuffer`` objects with numpy arrays and scalars, and
references to the buffer's statistics methods (pickled as ``getattr(HistoryBuffer, 'mean')``).
:func:`allow_mmengine_checkpoints` adds exactly these. ``builtins.getattr`` is *not* allowed: the
name is bound to :func:`_statistics_method`, which resolves only the statistics methods of
``HistoryBuffer`` and rejects everything else.

A loaded checkpoint whose model weights (``state_dict``) hold NaN or inf is refused too
(:func:`check_finite_weights`): evaluating, exporting or fine-tuning them gives nothing valid.
"""
from __future__ import annotations

import contextlib
import functools
import os
import os.path as osp
import pickle
import re
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, truncated, or with non-finite weights."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file names a global outside the allowlist; nothing of it was run."""


_BUILTIN_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _statistics_method(owner, name: str):
    """A ``getattr`` that only hands out ``HistoryBuffer``'s statistics methods (min, max, ...)."""
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({owner!r}, {name!r}) while loading a checkpoint: only the statistics '
        f'methods of mmengine HistoryBuffer ({", ".join(sorted(allowed))}) are allowed.')


def numpy_globals() -> list:
    """numpy's array and scalar reconstruction functions and its dtype classes (the numpy part of
    the ``weights_only`` allowlists of our and the official checkpoints)."""
    core = np._core if hasattr(np, '_core') else np.core  # numpy >= 2 renamed ``core``
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


def allow_mmengine_checkpoints() -> None:
    """Allowlist the non-tensor types of mmengine runner checkpoints for ``weights_only`` loads."""
    torch.serialization.add_safe_globals(
        [HistoryBuffer, *numpy_globals(), (_statistics_method, 'builtins.getattr')])


def refusal_reason(error: pickle.UnpicklingError) -> str:
    """What torch's multi-line ``weights_only`` refusal refused, in a few words (without its advice
    to allowlist the global "if you trust" the file)."""
    text = str(error)
    unsafe_global = re.search(r'GLOBAL (\S+) was not an allowed global', text)
    if unsafe_global:
        return f'it names GLOBAL {unsafe_global.group(1)}, which is not allowed'
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if 'WeightsUnpickler error' in line), lines[0] if lines else '')
    return reason.replace('WeightsUnpickler error: ', '')


def first_non_finite(state_dict: Mapping) -> Optional[tuple[str, int, int]]:
    """``(key, non-finite values, values)`` of the first floating tensor with NaN or inf, or None."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                return str(key), int((~finite).sum()), value.numel()
    return None


def check_finite_weights(checkpoint: Any, filename: str) -> None:
    """Refuse a checkpoint whose model weights (``state_dict``, or a plain state dict) hold NaN or inf.

    Raises:
        CheckpointError: Names ``filename``, the first such tensor and how many of its values.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
    broken = first_non_finite(state) if isinstance(state, Mapping) else None
    if broken is not None:
        key, bad, total = broken
        raise CheckpointError(
            f'{filename}: weight {key} has {bad} of {total} values NaN or inf (diverged training?); such '
            f'weights predict nothing valid. Use an earlier checkpoint.')


def load_checkpoint_safely(filename: str, map_location=None) -> Any:
    """``torch.load(weights_only=True)`` of a local file, with one clear error for a bad file.

    Registered as mmengine's loader for local paths when ``yolov7_mmdet`` is imported.

    Args:
        filename: Path of the checkpoint (``~`` is expanded).
        map_location: As for ``torch.load``.

    Raises:
        CheckpointNotFoundError: No such file.
        UnsafeCheckpointError: The pickle names a global outside the allowlist (code, unknown
            classes); nothing of it ran.
        CheckpointError: The file is not a complete torch checkpoint, or its weights are not finite.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(f'{filename}: no such checkpoint file')
    try:
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if 'WeightsUnpickler error' not in str(error):  # a broken pickle stream, not a refusal
            raise CheckpointError(f'{filename}: not a readable torch checkpoint (truncated or corrupt? '
                                  f'{str(error).strip().splitlines()[0]})') from None
        reason = refusal_reason(error)
        hint = ('an official YOLOv7 file? Convert it with tools/model_converters/yolov7_to_mmdet.py'
                if 'GLOBAL models.' in reason else 'load only checkpoints of tensors, plain containers '
                'and the mmengine types that yolov7_mmdet allows')
        raise UnsafeCheckpointError(f'{filename}: refused, it is not a plain checkpoint of weights and '
                                    f'nothing of it was run ({reason}); {hint}.') from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f'{filename}: not a readable torch checkpoint (truncated or corrupt? '
                              f'{str(error).strip().splitlines()[0]})') from None
    check_finite_weights(checkpoint, filename)
    return checkpoint


@contextlib.contextmanager
def forcing_weights_only() -> Iterator[None]:
    """Make every ``torch.load`` in the block use ``weights_only=True``, even an explicit False.

    torch reads ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` at each call; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
    is lifted for the block (torch refuses both set).
    """
    saved = {name: os.environ.get(name)
             for name in ('TORCH_FORCE_WEIGHTS_ONLY_LOAD', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')}
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _weights_only(loader: Callable) -> Callable:
    """``loader`` (one of mmengine's scheme loaders) run under :func:`forcing_weights_only`."""
    if getattr(loader, 'forces_weights_only', False):
        return loader

    @functools.wraps(loader)
    def wrapped(filename, map_location=None):
        with forcing_weights_only():
            checkpoint = loader(filename, map_location)
        check_finite_weights(checkpoint, filename)
        return checkpoint

    wrapped.forces_weights_only = True
    return wrapped


def load_from_local(filename: str, map_location=None) -> Any:
    """mmengine's local-file loader, replaced (mmengine logs the part after ``load_from_``)."""
    return load_checkpoint_safely(filename, map_location)


load_from_local.forces_weights_only = True


def register_safe_checkpoint_loaders() -> None:
    """Route all of mmengine's checkpoint loading through weights-only loads (module docstring)."""
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        CheckpointLoader.register_scheme(prefix, load_from_local if prefix == '' else _weights_only(loader),
                                         force=True)
