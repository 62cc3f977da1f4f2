"""Save the random number generators' state in checkpoints and restore it on resume.

mmengine seeds the generators once, when the runner starts, and does not save their state, so a
resumed run draws other random numbers (augmentations in the main process, worker base seeds of
non-persistent dataloader workers) than the uninterrupted run would have. This hook stores the
state of Python's ``random``, NumPy's global generator, torch's CPU generator and, when present,
the CUDA generators of this process under ``checkpoint['rng_state']`` and restores it when the
runner resumes (not for ``load_from`` fine-tuning).

Without a ``randomness.seed`` in the config, mmengine draws a seed per run and, on resume, adopts
the checkpoint's, but only after it has built the train dataloader with the new run's seed: the
sampler's shuffle and the workers' seeds (mmengine's ``worker_init_fn``) would differ from the
interrupted run's. On resume the hook points both at the adopted seed (unless the config set its
own sampler seed or ``worker_init_fn``).

When resuming reproduces the uninterrupted run bit for bit (CPU; on GPUs cuDNN's own
nondeterminism comes on top): with ``num_workers=0``, or with workers and
``persistent_workers=False`` (mmengine seeds every epoch's new workers the same way). Persistent
workers (the shipped configs) are seeded once when they start, so a resumed run's workers start
from the seeds the first epoch had: two resumes from one checkpoint are identical, but their
augmentations differ from the uninterrupted run's. Only the saving process's state is stored
(rank 0 in distributed training; other ranks restore rank 0's state).
"""
from __future__ import annotations

import random
from functools import partial

import numpy as np
import torch
from mmengine.dataset import worker_init_fn as mmengine_worker_init_fn
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
        self._seed_at_build: int | None = None

    def before_run(self, runner) -> None:
        self._seed_at_build = runner.seed  # the train dataloader is built with it, before resuming

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume and 'rng_state' in checkpoint:
            self._resumed_state = checkpoint['rng_state']

    def before_train(self, runner) -> None:
        # Restored here, not at loading: ``Runner.resume`` re-seeds after loading when the config
        # has no fixed seed (it adopts the checkpoint's seed).
        if self._resumed_state is not None:
            follow_resumed_seed(runner.train_dataloader, built_with=self._seed_at_build,
                                resumed=runner.seed)
            restore_rng_state(self._resumed_state)
            self._resumed_state = None


def follow_resumed_seed(loader, *, built_with: int | None, resumed: int) -> None:
    """Re-seed a dataloader built with seed ``built_with`` as if built with ``resumed``.

    Only the sampler seed and mmengine's ``worker_init_fn`` that came from ``built_with`` change.
    """
    if built_with == resumed:
        return
    if getattr(loader.sampler, 'seed', None) == built_with:
        loader.sampler.seed = resumed
    init_fn = loader.worker_init_fn
    if (isinstance(init_fn, partial) and init_fn.func is mmengine_worker_init_fn
            and init_fn.keywords.get('seed') == built_with):
        loader.worker_init_fn = partial(init_fn.func, *init_fn.args,
                                        **dict(init_fn.keywords, seed=resumed))
