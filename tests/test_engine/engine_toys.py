"""A toy detector-like model, dataset and Runner factory for the engine tests (CPU, < 1 s per epoch).

The model has every kind of parameter YOLOv7's optimizer groups tell apart: a bias-free conv
(decay), a BatchNorm (weight: no decay; bias: bias group), an ImplicitA/ImplicitM pair (no decay),
a biased 1x1 conv (weight: decay, bias: bias group), and its losses are named like the YOLOv7 loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import Tensor, nn
from torch.utils.data import Dataset

from yolov7_mmdet.models.layers.implicit import ImplicitA, ImplicitM


class ToyDetector(BaseModel):
    """``(B, 3, 8, 8)`` images -> ``(B, 2, 8, 8)`` maps; loss against per-image 2-vectors."""

    def __init__(self, *, nan_at_forward: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4, eps=1e-3, momentum=0.03)
        self.implicit_a = ImplicitA(4)
        self.pred = nn.Conv2d(4, 2, 1)
        self.implicit_m = ImplicitM(2)
        self.nan_at_forward = nan_at_forward  # make loss_obj NaN at this (0-based) training forward
        self.forwards = 0

    def forward(self, inputs: Tensor, data_samples: Tensor | None = None, mode: str = 'tensor'):
        maps = self.implicit_m(self.pred(self.implicit_a(F.silu(self.bn(self.conv(inputs))))))
        if mode != 'loss':
            return maps
        pooled = maps.mean((2, 3))  # (B, 2, 8, 8) -> (B, 2)
        loss_obj = pooled[:, 1].abs().mean() * inputs.shape[0]
        if self.forwards == self.nan_at_forward:
            loss_obj = loss_obj * float('nan')
        self.forwards += 1
        return dict(loss_box=((pooled - data_samples) ** 2).mean() * inputs.shape[0],
                    loss_obj=loss_obj)


class ToyDataset(Dataset):
    """``length`` fixed random images and targets, with a random "augmentation" (noise drawn from
    torch's global generator, as a data pipeline in the main process would)."""

    def __init__(self, length: int = 8) -> None:
        generator = torch.Generator().manual_seed(1)
        self.images = torch.randn(length, 3, 8, 8, generator=generator)
        self.targets = torch.randn(length, 2, generator=generator)
        self.metainfo = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        noise = 0.1 * torch.randn(self.images[index].shape)
        return dict(inputs=self.images[index] + noise, data_samples=self.targets[index])


def make_runner(work_dir, *, name: str, max_epochs: int, batch_size: int = 2, dataset_length: int = 8,
                nominal_batch_size: int = 8, min_warmup_iters: int = 6, final_lr_factor: float = 0.1,
                resume: bool = False,
                model: nn.Module | None = None, checkpoint: dict | None = None,
                extra_hooks: list | None = None, optim_type: str = 'YOLOv7OptimWrapper',
                rng_hook: bool = True, auto_scale_lr: dict | None = None, seed: int | None = 0,
                num_workers: int = 0, persistent_workers: bool = False) -> Runner:
    """A real mmengine Runner with the YOLOv7 engine: constructor, schedule, EMA, checks, checkpoints,
    random state.

    With the defaults: 4 iterations per epoch, accumulation ramping 1 -> 4 over iterations 0..6.
    """
    torch.manual_seed(0)
    return Runner(
        model=model if model is not None else ToyDetector(),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=ToyDataset(dataset_length), batch_size=batch_size, num_workers=num_workers,
            persistent_workers=persistent_workers and num_workers > 0,
            sampler=dict(type='DefaultSampler', shuffle=True),  # seeded with the runner's seed
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            type=optim_type, constructor='YOLOv7OptimWrapperConstructor',
            batch_size_per_gpu=batch_size, nominal_batch_size=nominal_batch_size,
            optimizer=dict(type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4, nesterov=True)),
        default_hooks=dict(
            param_scheduler=dict(type='YOLOv7ParamSchedulerHook', final_lr_factor=final_lr_factor,
                                 warmup_epochs=1, min_warmup_iters=min_warmup_iters),
            checkpoint=checkpoint or dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2,
                                            save_param_scheduler=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='StopOnNonFiniteLossHook'),
                      dict(type='YOLOv7EMAHook', priority=49),
                      *([dict(type='RNGStateHook')] if rng_hook else []), *(extra_hooks or [])],
        default_scope='mmdet',
        randomness=dict(seed=seed),
        auto_scale_lr=auto_scale_lr,
        resume=resume,
        log_level='WARNING',
    )


class StepRecorder(Hook):
    """After every iteration: the iteration, its accumulation, whether the optimizer stepped, and
    each group's lr / momentum / weight decay."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        wrapper = runner.optim_wrapper
        groups = wrapper.optimizer.param_groups
        self.rows.append(dict(
            iteration=runner.iter, accumulate=wrapper.accumulate, stepped=wrapper.should_update(),
            lr=[g['lr'] for g in groups], momentum=[g['momentum'] for g in groups],
            weight_decay=[g['weight_decay'] for g in groups]))

    @property
    def steps(self) -> list[dict]:
        return [row for row in self.rows if row['stepped']]
