"""Let torch >= 2.6 load the checkpoints that mmengine's runner writes, without unsafe unpickling.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls ``torch.load``
without the argument, and its checkpoints hold, besides tensors, the message hub's logs:
``HistoryBuffer`` objects with numpy arrays and scalars, and references to the buffer's statistics
methods (pickled as ``getattr(HistoryBuffer, 'mean')``). So ``--resume``, ``load_from`` and
``tools/test.py`` fail on our own files.

Instead of ``weights_only=False`` (which would execute arbitrary pickled code from any file a user
loads), we add exactly these types to torch's allowlist. ``builtins.getattr`` is *not* allowed: the
name is bound to :func:`_statistics_method`, which resolves only the statistics methods of
``HistoryBuffer`` and rejects everything else.
"""
from __future__ import annotations

import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


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
