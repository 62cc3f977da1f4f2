"""What a YOLOv7 schedule will do with a dataset, and a warning when it will barely train.

The official recipe accumulates gradients to 64 images per optimizer step and warms up over
``max(3 epochs, 1000 iterations)``: on COCO that is a rounding error of a 300-epoch run, on a
dataset of 200 images it can be the whole run (202 images x 8 epochs at batch 8 are 208
iterations, every one of them inside the warmup, and 140 optimizer steps at a tiny lr: mAP 0).
:class:`ScheduleSummary` counts, from :class:`~.yolov7_param_scheduler_hook.YOLOv7Schedule`
itself, the iterations, the optimizer steps, the warmup's share of the run and the lr it reaches,
and names the two problems that keep a small run from learning. ``tools/misc/create_config.py``
prints it for the config it writes; :class:`ScheduleSummaryHook` (in every YOLOv7 schedule config)
logs it when training starts.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional

from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from .yolov7_param_scheduler_hook import YOLOv7ParamSchedulerHook, YOLOv7Schedule

# A run stays "mostly in warmup" when the warmup covers at least this share of its iterations.
MAX_WARMUP_SHARE = 0.5
# Fewer optimizer steps than this are "very few": in the learning comparison of docs/benchmarks.md
# yolov7-tiny with 78-104 steps ended 0.08 mAP below the same runs with 600-780, and the cards run
# of docs/custom_dataset.md (46 steps) was at mAP 0.03.
MIN_OPTIMIZER_STEPS = 300


@dataclass(frozen=True)
class ScheduleSummary:
    """The numbers of one run of a :class:`YOLOv7Schedule` (see the module docstring).

    Build it with :meth:`of`. Learning rates are fractions of ``lr0`` (the non-bias groups).
    """
    schedule: YOLOv7Schedule
    optimizer_steps: int
    peak_lr_factor: float  # when the warmup ends (or at the last iteration, if it never ends)
    last_lr_factor: float  # at the last iteration

    @classmethod
    def of(cls, schedule: YOLOv7Schedule) -> 'ScheduleSummary':
        total = schedule.max_epochs * schedule.iters_per_epoch
        peak_iter = min(schedule.warmup_iters, total - 1)
        return cls(
            schedule=schedule, optimizer_steps=_optimizer_steps(schedule, total),
            peak_lr_factor=_lr_factor(schedule, peak_iter),
            last_lr_factor=_lr_factor(schedule, total - 1))

    @property
    def total_iters(self) -> int:
        return self.schedule.max_epochs * self.schedule.iters_per_epoch

    @property
    def warmup_share(self) -> float:
        """Share of the run's iterations inside the warmup (``0..warmup_iters``)."""
        return min(self.schedule.warmup_iters + 1, self.total_iters) / self.total_iters

    @property
    def accumulate(self) -> int:
        """Iterations per optimizer step after the warmup."""
        return self.schedule.accumulate(self.schedule.warmup_iters + 1)

    def describe(self) -> str:
        """One line: iterations, optimizer steps, warmup and lr."""
        s = self.schedule
        return (
            f'{s.iters_per_epoch} iterations of {s.total_batch_size} images x {s.max_epochs} '
            f'epochs = {self.total_iters} iterations and {self.optimizer_steps} optimizer steps '
            f'({self.optimizer_steps / s.max_epochs:.1f} per epoch; after warmup one step per '
            f'{self.accumulate} iteration(s), {self.accumulate * s.total_batch_size} images); '
            f'warmup over iterations 0..{s.warmup_iters} = '
            f'{s.warmup_iters / s.iters_per_epoch:.1f} epochs ({self.warmup_share:.0%} of the '
            f'run); lr rises to {self.peak_lr_factor:.3g} x lr0 and ends at '
            f'{self.last_lr_factor:.3g} x lr0')

    @property
    def warmup_problem(self) -> Optional[str]:
        """What is wrong when the run stays mostly in warmup, else None."""
        if self.warmup_share < MAX_WARMUP_SHARE:
            return None
        return (f'the warmup covers {self.warmup_share:.0%} of the run, which trains mostly at a '
                'reduced lr and accumulation')

    @property
    def steps_problem(self) -> Optional[str]:
        """What is wrong when the run makes very few optimizer steps, else None."""
        if self.optimizer_steps >= MIN_OPTIMIZER_STEPS:
            return None
        return (f'only {self.optimizer_steps} optimizer steps in all (fewer than '
                f'{MIN_OPTIMIZER_STEPS}), too few to learn')

    def problems(self) -> List[str]:
        """Why this run will barely train (empty when it looks fine)."""
        return [problem for problem in (self.warmup_problem, self.steps_problem) if problem]

    def fixes(self, *, nominal_batch: str, warmup_iters: str) -> List[str]:
        """What removes :meth:`problems`, in the caller's syntax.

        Args:
            nominal_batch: How to set the images per optimizer step, a format string of the
                value (e.g. ``'--nominal-batch {}'``).
            warmup_iters: How to set the warmup iterations, likewise.
        """
        fixes = []
        batch = self.schedule.total_batch_size
        if self.steps_problem and self.accumulate > 1:
            fixes.append(f'{nominal_batch.format(batch)} (one optimizer step per iteration, '
                         f'{self.total_iters} in all)')
        if self.steps_problem and self.total_iters < MIN_OPTIMIZER_STEPS:
            fixes.append('more epochs')
        if self.warmup_problem:
            fixes.append(f'{warmup_iters.format(max(1, self.total_iters // 10))} (a tenth of the '
                         'run)')
        return fixes

    def warning(self, *, nominal_batch: str, warmup_iters: str) -> Optional[str]:
        """One line with the problems and their fixes (see :meth:`fixes`), or None."""
        problems = self.problems()
        if not problems:
            return None
        fixes = self.fixes(nominal_batch=nominal_batch, warmup_iters=warmup_iters)
        return f'this run will barely train: {"; ".join(problems)}. Fix: {", ".join(fixes)}'


def _optimizer_steps(schedule: YOLOv7Schedule, total: int) -> int:
    """Optimizer steps in iterations ``0..total-1``: the optimizer wrapper steps after iteration
    ``i`` when ``i % accumulate(i) == 0`` (``NominalBatchAccumulation.should_update``)."""
    warmup_end = min(schedule.warmup_iters + 1, total)  # iterations 0..warmup_iters ramp
    steps = sum(i % schedule.accumulate(i) == 0 for i in range(warmup_end))
    if warmup_end < total:  # constant accumulation: its multiples in warmup_end..total-1 step
        accumulate = schedule.accumulate(warmup_end)
        steps += (total - 1) // accumulate - (warmup_end - 1) // accumulate
    return steps


def _lr_factor(schedule: YOLOv7Schedule, iteration: int) -> float:
    """The non-bias lr at ``iteration`` as a fraction of lr0."""
    epoch = iteration // schedule.iters_per_epoch
    return schedule.lr(iteration, epoch, initial_lr=1., is_bias=False)


def schedule_of_config(cfg, *, dataset_size: int, world_size: int = 1) -> YOLOv7Schedule:
    """The schedule that ``cfg`` (with a ``YOLOv7ParamSchedulerHook``) runs on ``dataset_size``
    training images over ``world_size`` GPUs (an epoch is ``ceil(size / total batch)`` iterations).

    Raises:
        ValueError: If the config does not schedule with ``YOLOv7ParamSchedulerHook``.
    """
    hook_cfg = cfg.default_hooks.get('param_scheduler') or {}
    if hook_cfg.get('type') != YOLOv7ParamSchedulerHook.__name__:
        raise ValueError('the config does not schedule with YOLOv7ParamSchedulerHook')
    total_batch = cfg.train_dataloader.batch_size * world_size
    fields = {field.name for field in dataclasses.fields(YOLOv7Schedule)}
    return YOLOv7Schedule(
        max_epochs=cfg.train_cfg.max_epochs, iters_per_epoch=math.ceil(dataset_size / total_batch),
        total_batch_size=total_batch, nominal_batch_size=cfg.optim_wrapper.nominal_batch_size,
        **{key: value for key, value in hook_cfg.items() if key in fields})  # its arguments


@HOOKS.register_module()
class ScheduleSummaryHook(Hook):
    """Log :meth:`ScheduleSummary.describe` when training starts, and a warning with the fix when
    the run will barely train (:meth:`ScheduleSummary.problems`).

    Reads the schedule that ``YOLOv7ParamSchedulerHook`` (priority HIGHEST) built in its own
    ``before_train``; does nothing without that hook.
    """

    priority = 'LOW'

    def before_train(self, runner) -> None:
        schedule = next((hook.schedule for hook in runner.hooks
                         if isinstance(hook, YOLOv7ParamSchedulerHook)), None)
        if schedule is None:
            return
        summary = ScheduleSummary.of(schedule)
        runner.logger.info(f'Schedule: {summary.describe()}')
        warning = summary.warning(
            nominal_batch='--cfg-options optim_wrapper.nominal_batch_size={}',
            warmup_iters='--cfg-options default_hooks.param_scheduler.warmup_epochs=0 '
                         'default_hooks.param_scheduler.min_warmup_iters={}')
        if warning:
            runner.logger.warning(
                f'{warning[0].upper()}{warning[1:]} (in a config of tools/misc/create_config.py: '
                '`nominal_batch_size` and `warmup_iters` at its top; docs/custom_dataset.md).')
