"""Train mode, the recipes: each model's own recipe fitted to one shared budget and one shared data.

Each recipe is scaled to the budget of ``--epochs`` (what it keeps and what it changes):

* its optimizer, lr and weight decay as configured for one GPU (mmdet's ``auto_scale_lr`` is off by
  default and stays off); ours accumulates gradients to its 64 images per optimizer step, as the
  official ``train.py`` does, or to each ``--nominal-batch`` (``8`` at batch 8: a step every
  batch, the fix that ``tools/misc/create_config.py`` proposes for a small dataset);
* its schedule's phases scaled by ``epochs / recipe epochs``, at least one epoch each: a boundary in
  the first half keeps its distance from the start, one in the second half its distance from the
  end (YOLOX at 10 of 300 epochs: 1 warmup, 8 cosine, 1 constant); an iteration-based warmup (RTMDet
  1000, Faster R-CNN 500 iterations: under 1 % of their COCO schedules) becomes one epoch; ours:
  its 3 warmup epochs scaled the same way, without the 1000-iteration minimum;
* the same training pipeline for all (letterbox to ``--size``, random flip; no mosaic, mixup,
  multi-scale batches or their switch-off hooks): in a budget of a few hundred iterations these
  strong augmentations slow learning down, and it keeps the data identical for every model;
* each model's own test pipeline with its sizes set to ``--size``;
* ``--load-from LABEL=CKPT`` starts a model from a checkpoint (a fine-tuning comparison).
"""
import argparse
import time
from pathlib import Path
from typing import Callable, Optional

from mmengine.config import Config

from ..datasets import unwrapped_dataset_cfg
from .models import ModelSpec

SIMPLE_PIPELINE_DROPS_HOOKS = ('YOLOXModeSwitchHook', 'PipelineSwitchHook')


def walk_dicts(node, visit: Callable[[dict], None]) -> None:
    """Call ``visit`` on every dict of a config tree (lists and tuples entered)."""
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            walk_dicts(value, visit)
    elif isinstance(node, (list, tuple)):
        for value in node:
            walk_dicts(value, visit)


def from_scratch(model_cfg: dict, num_classes: int) -> None:
    """Drop every ``Pretrained`` init and set every ``num_classes`` of a model config."""

    def visit(node: dict) -> None:
        if 'num_classes' in node:
            node['num_classes'] = num_classes
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None

    walk_dicts(model_cfg, visit)


def simple_train_pipeline(size: int) -> list:
    """Letterbox to ``size`` x ``size`` and a random flip: the same training data for every model."""
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(size, size), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Pad', size=(size, size), pad_val=dict(img=(114, 114, 114))),
        dict(type='PackDetInputs'),
    ]


def sized_test_pipeline(pipeline: list, size: int) -> list:
    """The model's own test pipeline with every resize / letterbox / pad size set to ``size``."""
    resized = []
    for transform in pipeline:
        transform = dict(transform)
        for key in ('scale', 'size', 'img_scale'):
            if key in transform:
                transform[key] = (size, size)
        resized.append(transform)
    return resized


def point_at_data(cfg: Config, data: dict, *, size: int, batch_size: int, workers: int) -> None:
    """Train on ``data['train']`` with the simple pipeline, validate on ``data['val']``."""
    train = unwrapped_dataset_cfg(cfg.train_dataloader.dataset)
    train.update(pipeline=simple_train_pipeline(size), filter_cfg=dict(filter_empty_gt=False))
    cfg.train_dataloader.dataset = train  # no mosaic wrapper around it
    val_pipeline = sized_test_pipeline(cfg.val_dataloader.dataset.pipeline, size)
    for loader, (ann_file, prefix) in ((cfg.train_dataloader, data['train']),
                                       (cfg.val_dataloader, data['val'])):
        loader.dataset.update(type='CocoJSONDataset', data_root='', ann_file=ann_file,
                              data_prefix=dict(img=prefix))
        loader.dataset.pop('metainfo', None)
        loader.update(batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0)
    cfg.val_dataloader.dataset.pipeline = val_pipeline
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=data['val'][0], metric='bbox')
    cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
    cfg.model.data_preprocessor.pop('batch_augments', None)  # YOLOX's multi-scale batches
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook['type'] not in SIMPLE_PIPELINE_DROPS_HOOKS]


def phase_boundary(recipe_epoch: float, *, recipe_epochs: int, epochs: int) -> int:
    """Epoch ``recipe_epoch`` of a ``recipe_epochs`` schedule mapped onto ``epochs``: a boundary in
    the first half keeps its (scaled) distance from the start, one in the second half from the end;
    every phase is at least one epoch long where ``epochs`` allows."""
    if recipe_epoch <= 0:
        return 0
    if recipe_epoch >= recipe_epochs:
        return epochs
    if recipe_epoch <= recipe_epochs / 2:
        return min(epochs, max(1, round(recipe_epoch * epochs / recipe_epochs)))
    return max(0, epochs - max(1, round((recipe_epochs - recipe_epoch) * epochs / recipe_epochs)))


def scaled_schedulers(schedulers: list, *, recipe_epochs: int, epochs: int) -> list:
    """mmengine parameter schedulers of a ``recipe_epochs`` recipe scaled to ``epochs``."""
    scaled = []
    for scheduler in schedulers:
        scheduler = dict(scheduler)
        if not scheduler.get('by_epoch', True):  # an iteration-based warmup: one epoch
            scheduler.update(by_epoch=True, begin=0, end=1, convert_to_iter_based=True)
        else:
            def boundary(epoch):
                return phase_boundary(epoch, recipe_epochs=recipe_epochs, epochs=epochs)

            begin, end = scheduler.get('begin', 0), scheduler.get('end', recipe_epochs)
            if 'T_max' in scheduler:
                same_as_phase = scheduler['T_max'] == min(end, recipe_epochs) - begin
                scheduler['T_max'] = (boundary(end) - boundary(begin) if same_as_phase else
                                      max(1, round(scheduler['T_max'] * epochs / recipe_epochs)))
            if 'milestones' in scheduler:
                scheduler['milestones'] = [boundary(m) for m in scheduler['milestones']]
            scheduler.update(begin=boundary(begin), end=boundary(end))
        if scheduler['begin'] < scheduler['end']:  # a phase the budget has no room for goes
            if 'T_max' in scheduler:
                scheduler['T_max'] = max(1, scheduler['T_max'])
            scaled.append(scheduler)
    return scaled


def scale_recipe(cfg: Config, *, epochs: int, batch_size: int, size: int,
                 nominal_batch: Optional[int] = None) -> None:
    """Fit the config's schedule to ``epochs`` (see the module docstring); ours accumulates to
    ``nominal_batch`` images per optimizer step (None: the recipe's own)."""
    recipe_epochs = cfg.train_cfg.max_epochs
    scheduler_hook = cfg.default_hooks.get('param_scheduler', {})
    if scheduler_hook.get('type') == 'YOLOv7ParamSchedulerHook':  # ours
        scheduler_hook.update(min_warmup_iters=0, warmup_epochs=phase_boundary(
            scheduler_hook.warmup_epochs, recipe_epochs=recipe_epochs, epochs=epochs))
        cfg.optim_wrapper.update(batch_size_per_gpu=batch_size, nominal_batch_size=(
            nominal_batch or cfg.optim_wrapper.nominal_batch_size))
        if 'img_size' in cfg.model.bbox_head.get('loss', {}):
            cfg.model.bbox_head.loss.img_size = size  # as the official train.py: the input size
    if cfg.get('param_scheduler'):
        cfg.param_scheduler = scaled_schedulers(
            cfg.param_scheduler, recipe_epochs=recipe_epochs, epochs=epochs)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)


def train_config(spec: ModelSpec, args: argparse.Namespace, *, seed: int, data: dict,
                 num_classes: int, work_dir: Path) -> Config:
    """``spec``'s recipe for one training run of the comparison."""
    cfg = spec.cfg.copy()
    from_scratch(cfg.model, num_classes)
    point_at_data(cfg, data, size=args.size, batch_size=args.batch, workers=args.workers)
    scale_recipe(cfg, epochs=args.epochs, batch_size=args.batch, size=args.size,
                 nominal_batch=spec.nominal_batch)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=args.epochs,
                                        max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.custom_imports = dict(imports=['yolov7_mmdet'], allow_failed_imports=False)
    cfg.randomness = dict(seed=seed)
    cfg.load_from = args.load_from.get(spec.label)
    cfg.resume = False
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{spec.label}_seed{seed}_{time.strftime("%Y%m%d_%H%M%S")}'
    if cfg.get('visualizer'):  # a global instance by name: else each run logs into the first's
        cfg.visualizer.name = cfg.experiment_name
    cfg.log_level = args.log_level
    return cfg
