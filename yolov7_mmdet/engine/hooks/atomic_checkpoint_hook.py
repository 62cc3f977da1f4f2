"""Checkpoints that a kill at any moment leaves valid: atomic writes and delete-after-save.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)`` (``LocalBackend.put``), so
a job killed mid-write leaves a truncated ``epoch_N.pth`` that ``last_checkpoint`` already names or
soon will; it rewrites ``last_checkpoint`` in place the same way; and with ``max_keep_ckpts`` it
deletes the oldest kept checkpoint *before* writing the new one (with ``max_keep_ckpts=1`` that is
the only valid one).

Where to hook in: the periodic and the best checkpoints are written by ``Runner.save_checkpoint``
-> ``mmengine.runner.checkpoint.save_checkpoint``, which serialises to memory and hands the bytes to
the file backend chosen by the hook's ``backend_args``. Registering :class:`AtomicLocalBackend`
(temp file in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the folder) and selecting it
through ``CheckpointHook(backend_args=...)`` makes both atomic without patching the runner or
mmengine's save function (a subclassed hook alone could not reach the bytes being written).
``published_keys`` copies are written without ``backend_args`` by mmengine and stay non-atomic.
:class:`AtomicCheckpointHook` selects it by default for local folders and reorders its own
bookkeeping: write the checkpoint, then ``last_checkpoint`` (atomically), then delete the stale one.
Remaining window, documented: a new *best* checkpoint is written after the old best is deleted
(mmengine's ``_save_best_checkpoint``); resuming never needs the best checkpoint.

``last_checkpoint`` holds the checkpoint's path relative to the work dir (when it lies inside it), so
a moved or copied work dir resumes from its own files (``CheckpointLoadCheckHook`` reads it, and
mmengine's absolute paths too).

No checkpoint is written whose model or EMA weights hold NaN or inf: the loss can stay finite while
the weights blow up (a huge learning rate); :meth:`AtomicCheckpointHook.before_save_checkpoint`
raises :class:`NonFiniteWeightsError`, which stops training with the last good checkpoint intact.

SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler sends before killing a job) do not lose the
epoch: after the iteration in progress the hook saves ``iter_<N>.pth`` like any checkpoint, logs
one line and raises :class:`TrainingInterrupted` (``tools/train.py`` exits with 130 / 143, no
traceback). The checkpoint also records how many batches of the epoch were done, the gradients
accumulated since the last optimizer step, and torch's generator state at the start of the epoch.
``--resume`` skips exactly the done indices of the epoch's sampler order (the sampler is seeded per
epoch), restores the accumulated gradients and the random state, and continues with the next batch
as if never stopped (bit for bit on a CPU with ``num_workers=0`` or non-persistent workers, like an
end-of-epoch resume, see ``RNGStateHook``). A second signal stops at once, without saving. Only
single-process runs install the handlers: in a distributed run the ranks could see a signal at
different iterations.

A kill during a write leaves the hidden temporary file (``.epoch_3.pth.<32 hex digits>.tmp``).
When training starts, the hook removes the files of exactly that name pattern from the checkpoint
folder and the work dir (rank 0, local folders only) and logs a warning that lists them.
"""
from __future__ import annotations

import os
import os.path as osp
import signal
from typing import Callable, Iterator

import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from mmdet.registry import HOOKS

from ...utils.atomic import atomic_write_bytes, stale_temp_files
from ...utils.checkpoint import CheckpointError, first_non_finite
from .checkpoint_load_hook import last_checkpoint_record, latest_checkpoint, resolve_auto_resume
from .rng_state_hook import restore_rng_state

ATOMIC_BACKEND = 'yolov7_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine ``LocalBackend`` whose writes (``put`` / ``put_text``) are atomic."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(str(filepath), obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class NonFiniteWeightsError(CheckpointError):
    """The weights about to be saved hold NaN or inf; nothing was written."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training after saving a checkpoint to resume from.

    Attributes:
        exit_status: The conventional status of a process ended by that signal (128 + number).
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_status = 128 + signum


class _SkipFirstIndices:
    """A sampler that drops the first ``count`` indices of its first pass (mid-epoch resume).

    ``on_first_pass`` runs when that pass starts: at the first batch the loader fetches, after the
    loader's iterator has drawn its base seed, before any sample is loaded.
    """

    def __init__(self, sampler, count: int, on_first_pass: Callable[[], None]) -> None:
        self.sampler = sampler
        self.count = count
        self.on_first_pass = on_first_pass

    def __iter__(self) -> Iterator[int]:
        indices = iter(self.sampler)
        for _ in range(self.count):
            next(indices, None)
        if self.count:
            self.on_first_pass()
        self.count = 0
        return indices

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str):  # set_epoch, seed, ... of the wrapped sampler
        if name == 'sampler':
            raise AttributeError(name)
        return getattr(self.sampler, name)


# The ``meta`` keys with which an interrupt checkpoint resumes mid-epoch (tools that keep only the
# weights, e.g. tools/deployment/save_deployed.py, drop them: a copy of every gradient)
RESUME_META_KEYS = ('epoch_batches_done', 'epoch_start_rng', 'accumulated_grads')


def _accumulated_grads(runner) -> dict:
    """The gradients accumulated since the last optimizer step, by parameter name (empty after one)."""
    if getattr(runner.optim_wrapper, 'should_update', lambda: True)():
        return {}
    model = getattr(runner.model, 'module', runner.model)
    return {name: param.grad.detach().clone() for name, param in model.named_parameters()
            if param.grad is not None}


@torch.no_grad()
def _restore_accumulated_grads(runner, grads: dict) -> None:
    model = getattr(runner.model, 'module', runner.model)
    for name, param in model.named_parameters():
        if name in grads:
            param.grad = grads[name].to(param.device)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine ``CheckpointHook`` that a kill can never leave without a valid latest checkpoint.

    Same arguments as ``CheckpointHook``. Unless ``backend_args`` / ``file_client_args`` are given or
    ``out_dir`` is remote (``s3://...``), checkpoints are written through :class:`AtomicLocalBackend`.
    It also writes ``last_checkpoint`` relative to the work dir, refuses to save non-finite weights,
    and saves a checkpoint to resume from exactly on SIGINT / SIGTERM (see the module docstring).
    """

    def __init__(self, *args, out_dir: str | None = None, backend_args: dict | None = None,
                 file_client_args: dict | None = None, **kwargs) -> None:
        self._signal: int | None = None
        self._previous_handlers: dict = {}
        self._epoch_start_rng: torch.Tensor | None = None
        self._resumed_epoch_start_rng: torch.Tensor | None = None
        is_local = out_dir is None or '://' not in str(out_dir)
        if backend_args is None and file_client_args is None and is_local:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    def before_run(self, runner) -> None:
        super().before_run(runner)
        resolve_auto_resume(runner)  # this hook writes last_checkpoint relative to the work dir

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and self.backend_args == dict(backend=ATOMIC_BACKEND):
            self._remove_stale_temp_files(runner)
        self._signal = None
        if get_world_size() == 1:
            self._install_signal_handlers()

    def after_train(self, runner) -> None:
        self.restore_signal_handlers()
        super().after_train(runner)

    def _install_signal_handlers(self) -> None:
        """Catch SIGINT and SIGTERM, unless they are ignored (``nohup``, a background job)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:
                self._previous_handlers[signum] = previous
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        """Note the signal; the next one gets the previous handler (Ctrl-C: stop at once)."""
        self._signal = signum
        signal.signal(signum, self._previous_handlers.get(signum, signal.SIG_DFL))

    def restore_signal_handlers(self) -> None:
        """Put back the handlers that were there before training. ``after_train`` does it; mmengine
        calls no hook when training raises, so a caller that goes on after an error (``tools/train.py``
        does) calls this itself."""
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if self._signal is not None:
            self._save_interrupted(runner, batch_idx)

    def _save_interrupted(self, runner, batch_idx: int) -> None:
        """Save ``iter_<N>.pth`` (N iterations done), log one line, raise :class:`TrainingInterrupted`."""
        # batches of this epoch done, those skipped on a mid-epoch resume included (``batch_idx``
        # counts from 0 again after a resume)
        signum, done = self._signal, runner.iter + 1 - runner.epoch * len(runner.train_dataloader)
        self.restore_signal_handlers()
        filename = f'iter_{runner.iter + 1}.pth'
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=dict(zip(RESUME_META_KEYS,
                          (done, self._epoch_start_rng, _accumulated_grads(runner)))),
            by_epoch=False, backend_args=self.backend_args, **self.args)
        path = self.file_backend.join_path(self.out_dir, filename)
        if is_main_process():
            atomic_write_bytes(osp.join(runner.work_dir, 'last_checkpoint'),
                               last_checkpoint_record(runner.work_dir, path).encode())
        batches = len(runner.train_dataloader)
        following = (f'batch {done + 1} of epoch {runner.epoch + 1}' if done < batches
                     else f'epoch {runner.epoch + 2}')
        message = (f'{signal.Signals(signum).name}: saved {path} after iteration {runner.iter + 1} (epoch '
                   f'{runner.epoch + 1}, batch {done}/{batches}); --resume continues exactly there, with '
                   f'{following}')
        runner.logger.warning(message)
        raise TrainingInterrupted(signum, message)

    def before_train_epoch(self, runner) -> None:
        """Note torch's generator before the epoch's loader iterator draws its base seed from it; on
        a mid-epoch resume, set it back to that state (see :meth:`after_load_checkpoint`)."""
        if self._resumed_epoch_start_rng is not None:
            torch.set_rng_state(self._resumed_epoch_start_rng)
            self._resumed_epoch_start_rng = None
        self._epoch_start_rng = torch.get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume from a mid-epoch (interrupted) checkpoint, skip that epoch's done batches.

        With ``RNGStateHook``'s saved state, the random draws repeat the uninterrupted run's: the
        epoch's loader iterator draws its base seed from torch's generator as it was when the epoch
        started, and the first loaded batch sees the generators as they were at the save.
        """
        meta = checkpoint.get('meta', {})
        done = meta.get('epoch_batches_done')
        if not runner._resume or not done:
            return
        batch_sampler = runner.train_dataloader.batch_sampler
        if type(batch_sampler) is not torch.utils.data.BatchSampler:
            raise CheckpointError(
                f'the checkpoint was saved after batch {done} of an epoch, but this train_dataloader\'s '
                f'{type(batch_sampler).__name__} cannot skip batches: resume from an end-of-epoch '
                f'checkpoint instead')
        saved_rng = checkpoint.get('rng_state')
        if saved_rng is not None and 'epoch_start_rng' in meta:
            self._resumed_epoch_start_rng = meta['epoch_start_rng']

        def continue_where_stopped() -> None:
            """After ``before_train_epoch`` (which zeroes the gradients), before the first batch."""
            _restore_accumulated_grads(runner, meta.get('accumulated_grads') or {})
            if saved_rng is not None:
                restore_rng_state(saved_rng)

        batch_sampler.sampler = _SkipFirstIndices(batch_sampler.sampler, done * batch_sampler.batch_size,
                                                  on_first_pass=continue_where_stopped)
        runner.logger.info(f'Resuming in the middle of epoch {meta["epoch"] + 1}: its first {done} batches '
                           f'were done before the interruption and are skipped')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse weights with NaN or inf (runs after the EMA hook has added its weights)."""
        for part in ('state_dict', 'ema_state_dict'):
            broken = first_non_finite(checkpoint.get(part) or {})
            if broken is not None:
                key, bad, total = broken
                meta = checkpoint.get('meta', {})
                last = latest_checkpoint(runner.work_dir)
                raise NonFiniteWeightsError(
                    f'not saving the checkpoint of epoch {meta.get("epoch")}, iteration {meta.get("iter")}: '
                    f'{key} ({part}) has {bad} of {total} values NaN or inf although the loss stayed finite '
                    f'(diverged: learning rate too high?). Training stopped; '
                    + (f'the last good checkpoint is {last}.' if last else 'no checkpoint was saved.'))

    def _remove_stale_temp_files(self, runner) -> None:
        """Remove what an interrupted write left (see the module docstring), and say so."""
        folders = sorted({osp.abspath(self.out_dir), osp.abspath(runner.work_dir)})
        stale = [path for folder in folders for path in stale_temp_files(folder)]
        for path in stale:
            os.remove(path)
        if stale:
            runner.logger.warning(
                f'Removed {len(stale)} temporary file(s) left by an interrupted checkpoint write: '
                + ', '.join(stale))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """mmengine's bookkeeping, reordered: save, point ``last_checkpoint`` at it, then prune."""
        stale_step = self._book_kept_checkpoint(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        atomic_write_bytes(osp.join(runner.work_dir, 'last_checkpoint'),
                           last_checkpoint_record(runner.work_dir, self.last_ckpt).encode())
        if stale_step is not None:
            self._remove_checkpoint(self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(stale_step)))

    def _book_kept_checkpoint(self, runner, step) -> int | None:
        """Record ``step`` among the kept checkpoints; return the step that falls out, if any.

        Done before saving, as mmengine does, so that the saved message hub lists the kept steps.
        """
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None  # the periodic and the best checkpoint of one step share a file
        stale_step = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            stale_step = self.keep_ckpt_ids.popleft()
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return stale_step

    def _remove_checkpoint(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are directories
            self.file_backend.rmtree(path)
