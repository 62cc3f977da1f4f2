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

A kill during a write leaves the hidden temporary file (``.epoch_3.pth.<32 hex digits>.tmp``).
When training starts, the hook removes the files of exactly that name pattern from the checkpoint
folder and the work dir (rank 0, local folders only) and logs a warning that lists them.
"""
from __future__ import annotations

import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from mmdet.registry import HOOKS

from ...utils.atomic import atomic_write_bytes, stale_temp_files

ATOMIC_BACKEND = 'yolov7_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine ``LocalBackend`` whose writes (``put`` / ``put_text``) are atomic."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(str(filepath), obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine ``CheckpointHook`` that a kill can never leave without a valid latest checkpoint.

    Same arguments as ``CheckpointHook``. Unless ``backend_args`` / ``file_client_args`` are given or
    ``out_dir`` is remote (``s3://...``), checkpoints are written through :class:`AtomicLocalBackend`.
    """

    def __init__(self, *args, out_dir: str | None = None, backend_args: dict | None = None,
                 file_client_args: dict | None = None, **kwargs) -> None:
        is_local = out_dir is None or '://' not in str(out_dir)
        if backend_args is None and file_client_args is None and is_local:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and self.backend_args == dict(backend=ATOMIC_BACKEND):
            self._remove_stale_temp_files(runner)

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
        atomic_write_bytes(osp.join(runner.work_dir, 'last_checkpoint'), str(self.last_ckpt).encode())
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
