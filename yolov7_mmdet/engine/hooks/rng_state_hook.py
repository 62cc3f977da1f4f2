"""Save the random number generators' state in checkpoints and restore it on resume.

mmengine seeds the generators once, when the runner starts, and does not save their state, so a
resumed run draws other random numbers (augmentations in the main process, worker base seeds of
non-persistent dataloader workers) than the uninterrupted run would have. This hook stores the
state of Python's ``random``, NumPy's global generator, torch's CPU generator and, when present,
the CUDA generators of this process under ``checkpoint['rng_state']`` and restores it when the
runner resumes (not for ``load_from`` fine-tuning). Limits: only the saving process's state is
stored (rank 0 in distributed training; other ranks restore rank 0's state), and persistent
dataloader workers keep their own generators, seeded by mmengine from the config seed.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


def capture_rng_state() -> dict:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only if saved and CUDA is present)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Keep the random state across ``--resume`` (see the module docstring)."""
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._resumed_state: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume and 'rng_state' in checkpoint:
            self._resumed_state = checkpoint['rng_state']

    def before_train(self, runner) -> None:
        # Restored here, not at loading: ``Runner.resume`` re-seeds after loading when the config
        # has no fixed seed (it adopts the checkpoint's seed).
        if self._resumed_state is not None:
            restore_rng_state(self._resumed_state)
            self._resumed_state = None
