"""Stop training at the first non-finite loss, before it reaches the EMA or a checkpoint.

mmdet's ``CheckInvalidLossHook`` checks only the total loss, every 50 iterations, with an ``assert``
(gone under ``python -O``) whose message does not say which loss broke. This hook checks every loss
component after every iteration and raises :class:`NonFiniteLossError` naming the iteration and the
components. Its priority (HIGH) puts it before ``EMAHook`` (NORMAL) and ``CheckpointHook``
(VERY_LOW), so neither the EMA nor any checkpoint ever sees the broken weights. The check adds no
host synchronisation: mmengine's ``RuntimeInfoHook`` (VERY_HIGH) has already read every value.
"""
from __future__ import annotations

import math

import torch
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite during training."""


@HOOKS.register_module()
class StopOnNonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when any ``loss*`` output of a train step is not finite."""
    priority = 'HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs:
            return
        losses = {name: float(torch.as_tensor(value).detach()) for name, value in outputs.items()
                  if 'loss' in name}
        broken = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if not broken:
            return
        finite = {name: value for name, value in losses.items() if name not in broken}
        iters_per_epoch = len(runner.train_dataloader)
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1} (Epoch(train) [{runner.epoch + 1}]'
            f'[{batch_idx + 1}/{iters_per_epoch}]): '
            + ', '.join(f'{name}={value}' for name, value in broken.items())
            + ' (finite: ' + (', '.join(f'{name}={value:.4g}' for name, value in finite.items())
                              or 'none') + '). '
            'Training stopped before this iteration reached the EMA or a checkpoint; resume from '
            'the last checkpoint, e.g. with a lower learning rate, or check this batch\'s labels.')
