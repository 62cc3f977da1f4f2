"""YOLOv7's learning-rate, momentum and accumulation schedule (official ``train.py``).

For every iteration ``i`` (0-based, since the start of training) of epoch ``e``, with
``nb`` iterations per epoch and ``nw = max(round(warmup_epochs * nb), min_warmup_iters)``:

* warmup, ``i <= nw``: linear interpolation over ``[0, nw]`` (``np.interp``) of the bias lr from
  ``warmup_bias_lr`` and of the other lrs from 0 to ``lr0 * lf(e)``; of the momentum from
  ``warmup_momentum`` to its final value; and of the gradient accumulation from 1 to
  ``nominal_batch / total_batch``, rounded half to even. ``lf`` is the "one cycle" cosine
  ``lf(e) = 1 + (lrf - 1) * (1 - cos(pi * e / max_epochs)) / 2`` (or the linear
  ``lf(e) = lrf + (1 - lrf) * (1 - e / (max_epochs - 1))``).
* after warmup, in the epoch that holds ``nw`` (``e * nb <= nw``): every group keeps the value the
  warmup set at ``nw``, ``lr0 * lf(e)``, because ``train.py`` changes the lr only in its warmup
  statements and in ``scheduler.step()`` at the end of each epoch.
* after warmup, in the later epochs: ``lr = lr0 * lf(e - 1)``, one epoch behind. ``train.py`` sets
  ``scheduler.last_epoch = start_epoch - 1`` after building its ``LambdaLR``, so the step at the end
  of epoch ``e - 1`` sets ``lf(e - 1)`` for epoch ``e`` (recorded official runs confirm it, see the
  engine tests).
* after warmup, the momentum and the accumulation keep their warmup end values (the final momentum;
  ``max(round(nominal_batch / total_batch), 1)``): ``train.py`` sets them only during warmup.

mmengine's ``LinearLR`` + ``CosineAnnealingLR`` schedulers cannot express this: the warmup target
moves with the epoch's cosine value, the bias group warms *down* from its own start, and the
accumulation is not an optimizer setting. The hook is stateless (everything follows from the runner's
iteration and epoch), so resuming needs no scheduler state: mmengine's resume warning
"`resume_param_scheduler` is True but `self.param_schedulers` is None" is dropped from the runner's
log (:class:`NoSchedulerStateFilter`). It takes the ``param_scheduler`` slot of
``default_hooks``; configs set ``param_scheduler = None``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from mmdet.registry import HOOKS
from ..optimizers.yolov7_optim_wrapper import NominalBatchAccumulation, nominal_accumulation


@dataclass(frozen=True)
class YOLOv7Schedule:
    """The official schedule as pure functions of (iteration, epoch); see the module docstring.

    Args:
        max_epochs (int): Training epochs.
        iters_per_epoch (int): Iterations (batches per GPU) of one epoch.
        final_lr_factor (float): ``lrf``: last epochs' lr / lr0 (0.1 P5, 0.2 P6, 0.01 tiny).
        total_batch_size (int): Images per iteration over all GPUs.
        nominal_batch_size (int): Images per optimizer step after warmup. Defaults to 64.
        linear (bool): Linear instead of cosine decay (official ``--linear-lr``). Defaults to False.
        warmup_epochs (float): Defaults to 3.
        min_warmup_iters (int): Defaults to 1000.
        warmup_bias_lr (float): The bias group's lr at iteration 0. Defaults to 0.1.
        warmup_momentum (float): Momentum at iteration 0. Defaults to 0.8.
    """
    max_epochs: int
    iters_per_epoch: int
    final_lr_factor: float
    total_batch_size: int
    nominal_batch_size: int = 64
    linear: bool = False
    warmup_epochs: float = 3.
    min_warmup_iters: int = 1000
    warmup_bias_lr: float = .1
    warmup_momentum: float = .8

    def __post_init__(self) -> None:
        if self.max_epochs < (2 if self.linear else 1) or self.iters_per_epoch < 1:
            raise ValueError(f'need max_epochs >= {2 if self.linear else 1} and iters_per_epoch >= 1, '
                             f'got {self.max_epochs} and {self.iters_per_epoch}')

    @property
    def warmup_iters(self) -> int:
        """``nw``: warmup covers iterations ``0..nw`` inclusive."""
        return max(round(self.warmup_epochs * self.iters_per_epoch), self.min_warmup_iters)

    def lr_factor(self, epoch: int) -> float:
        """``lf(epoch)``: the epoch's lr as a fraction of lr0."""
        lrf = self.final_lr_factor
        if self.linear:
            return lrf + (1. - lrf) * (1. - epoch / (self.max_epochs - 1))
        return 1. + (lrf - 1.) * (1. - math.cos(math.pi * epoch / self.max_epochs)) / 2.

    def in_warmup(self, iteration: int) -> bool:
        return iteration <= self.warmup_iters

    def _warmup_interp(self, iteration: int, start: float, end: float) -> float:
        return float(np.interp(iteration, [0, self.warmup_iters], [start, end]))

    def lr(self, iteration: int, epoch: int, *, initial_lr: float, is_bias: bool) -> float:
        """Learning rate of a group whose lr0 is ``initial_lr``."""
        target = initial_lr * self.lr_factor(epoch)
        if self.in_warmup(iteration):
            return self._warmup_interp(iteration, self.warmup_bias_lr if is_bias else 0., target)
        if self.in_warmup(epoch * self.iters_per_epoch):  # warmup's value at nw, until the epoch ends
            return target
        return initial_lr * self.lr_factor(epoch - 1)  # one epoch behind, as the official LambdaLR

    def momentum(self, iteration: int, *, final_momentum: float) -> float:
        """SGD momentum (Adam's beta1 is not warmed up, as in the official code)."""
        if not self.in_warmup(iteration):
            return final_momentum
        return self._warmup_interp(iteration, self.warmup_momentum, final_momentum)

    def accumulate(self, iteration: int) -> int:
        """Iterations accumulated per optimizer step (ramps from 1 during warmup)."""
        if not self.in_warmup(iteration):
            return nominal_accumulation(self.total_batch_size, self.nominal_batch_size)
        ramp = self._warmup_interp(iteration, 1., self.nominal_batch_size / self.total_batch_size)
        return max(1, round(ramp))  # Python's round: half to even, as numpy's ``.round()``


def _loader_batch_size(loader) -> int:
    """Per-GPU batch size of a DataLoader, also when it was built with a batch sampler."""
    if loader.batch_size is not None:
        return loader.batch_size
    return loader.batch_sampler.batch_size


class NoSchedulerStateFilter(logging.Filter):
    """Drops mmengine's warning that a resumed run has no param schedulers to restore."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith('`resume_param_scheduler` is True but')


@HOOKS.register_module()
class YOLOv7ParamSchedulerHook(Hook):
    """Set lr, momentum and gradient accumulation before every iteration, as the official recipe.

    Needs an epoch-based train loop and an optimizer wrapper built by
    :class:`YOLOv7OptimWrapperConstructor` (groups named 'no_decay' / 'decay' / 'bias', a
    :class:`NominalBatchAccumulation` wrapper). Each group's lr0 and final momentum are the values
    it has when training starts (after ``auto_scale_lr``), stored as ``initial_lr`` /
    ``initial_momentum`` in the group so that they survive a resume. Also zeroes gradients at each
    epoch start, as the official loop does (a partial accumulation at an epoch end is dropped).

    Args:
        final_lr_factor (float): ``lrf`` (0.1 P5, 0.2 P6, 0.01 tiny).
        linear (bool): Linear instead of cosine decay. Defaults to False.
        warmup_epochs (float): Defaults to 3.
        min_warmup_iters (int): Defaults to 1000.
        warmup_bias_lr (float): Defaults to 0.1.
        warmup_momentum (float): Defaults to 0.8.
    """
    # Before RuntimeInfoHook (VERY_HIGH), which logs the lr in before_train_iter: mmengine's
    # schedulers step after an iteration, this hook sets the values of the coming one.
    priority = 'HIGHEST'

    def __init__(self, *, final_lr_factor: float, linear: bool = False, warmup_epochs: float = 3.,
                 min_warmup_iters: int = 1000, warmup_bias_lr: float = .1,
                 warmup_momentum: float = .8) -> None:
        self.schedule_args = dict(
            final_lr_factor=final_lr_factor, linear=linear, warmup_epochs=warmup_epochs,
            min_warmup_iters=min_warmup_iters, warmup_bias_lr=warmup_bias_lr,
            warmup_momentum=warmup_momentum)
        self.schedule: YOLOv7Schedule | None = None

    def before_run(self, runner) -> None:
        if not any(isinstance(f, NoSchedulerStateFilter) for f in runner.logger.filters):
            runner.logger.addFilter(NoSchedulerStateFilter())

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        self._check_runner(runner, wrapper)
        self.schedule = YOLOv7Schedule(
            max_epochs=runner.max_epochs, iters_per_epoch=len(runner.train_dataloader),
            total_batch_size=wrapper.total_batch_size, nominal_batch_size=wrapper.nominal_batch_size,
            **self.schedule_args)
        for group in wrapper.optimizer.param_groups:  # (wrapper.param_groups adds a logging stub)
            group.setdefault('initial_lr', group['lr'])
            if 'momentum' in group:
                group.setdefault('initial_momentum', group['momentum'])
        self._log_scaled_base_lr(wrapper)
        runner.logger.info(
            f'YOLOv7 schedule: warmup over iterations 0..{self.schedule.warmup_iters}, then '
            f'{"linear" if self.schedule.linear else "cosine"} decay to lrf='
            f'{self.schedule.final_lr_factor} over {self.schedule.max_epochs} epochs')

    def before_train_epoch(self, runner) -> None:
        runner.optim_wrapper.zero_grad()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        schedule, iteration, epoch = self.schedule, runner.iter, runner.epoch
        wrapper = runner.optim_wrapper
        for group in wrapper.optimizer.param_groups:
            group['lr'] = schedule.lr(iteration, epoch, initial_lr=group['initial_lr'],
                                      is_bias=group['group_name'] == 'bias')
            if 'momentum' in group:
                group['momentum'] = schedule.momentum(iteration,
                                                      final_momentum=group['initial_momentum'])
        wrapper.accumulate = schedule.accumulate(iteration)

    @staticmethod
    def _log_scaled_base_lr(wrapper) -> None:
        """Make the logged ``base_lr`` the lr0 training uses, after ``auto_scale_lr``.

        mmengine logs ``base_lr`` from ``optimizer.defaults`` (the config's lr), which
        ``--auto-scale-lr`` does not scale; every group starts from the same lr0 (the constructor).
        """
        if getattr(wrapper, 'base_param_settings', None) is not None:
            wrapper.base_param_settings['lr'] = wrapper.optimizer.param_groups[0]['initial_lr']

    @staticmethod
    def _check_runner(runner, wrapper) -> None:
        """Clear errors for configurations this hook cannot schedule correctly."""
        if runner.param_schedulers:
            raise ValueError('YOLOv7ParamSchedulerHook sets lr and momentum itself; set '
                             '`param_scheduler = None` in the config')
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError('YOLOv7ParamSchedulerHook follows the epoch-based official schedule; '
                            f'got train loop {type(runner.train_loop).__name__}')
        if not isinstance(wrapper, NominalBatchAccumulation) or any(
                'group_name' not in group for group in wrapper.optimizer.param_groups):
            raise TypeError('YOLOv7ParamSchedulerHook needs the optimizer wrapper of '
                            "`constructor='YOLOv7OptimWrapperConstructor'`, got "
                            f'{type(wrapper).__name__}')
        loader_total = _loader_batch_size(runner.train_dataloader) * get_world_size()
        if loader_total != wrapper.total_batch_size:
            raise ValueError(
                f'optim_wrapper assumes {wrapper.total_batch_size} images per iteration, the train '
                f'dataloader gives {loader_total} ({get_world_size()} GPU(s)); set '
                '`optim_wrapper.batch_size_per_gpu` to `train_dataloader.batch_size`')
