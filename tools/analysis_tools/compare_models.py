"""Compare our YOLOv7 models with any MMDetection config: cost on a device, or learning on your data.

    # cost (no data): parameters, FLOPs, batch-1 latency, batch-N throughput, peak memory
    python tools/analysis_tools/compare_models.py --mode cost --models yolov7_tiny yolov7_l \\
        mmdet::yolox/yolox_tiny_8xb8-300e_coco.py mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py \\
        --size 320 --batch 8 --out work_dirs/compare_cost
    # train: every model from scratch on the same data, input size, batch, epochs and seeds
    python tools/analysis_tools/compare_models.py --mode train --models yolov7_tiny \\
        mmdet::yolox/yolox_tiny_8xb8-300e_coco.py --data train.json val.json --image-root IMAGES \\
        --epochs 10 --size 256 --batch 8 --seeds 0 1 --out work_dirs/compare_raccoon

``--models`` takes our short names (``yolov7_tiny``, ``yolov7_l``, ``yolov7_x``, ``yolov7_w6``,
``yolov7_e6``, ``yolov7_d6``, ``yolov7_e6e``), mmdet's packaged configs (``mmdet::...``) or any config
file. Everything goes into ``--out``: ``<mode>.md`` (the table), ``<mode>.csv``, ``<mode>.json`` and
PNG plots (cost: AP vs latency; train: mAP vs epoch, mAP vs training wall time).

**cost** builds every model in one process and measures, at its own input size (its test pipeline's
resize scale, padded to the model's stride) and at the common ``--size``: parameters and FLOPs
(mmengine's counter for every model, FLOPs = 2 x the multiply-accumulates it counts, as the YOLOv7
paper), median latency at batch 1 and throughput at ``--batch`` of the network forward (``tensor``
mode: backbone, neck, head; no decoding / NMS), and peak memory (CUDA only: torch has no CPU allocator
statistics). Every model is measured in its deployed form: ``switch_to_deploy()`` on every module that
has one (ours: implicit folded, aux head dropped, RepConv merged) and conv + BN fused. The models are
interleaved (one call of each per round, ``--warmup`` untimed rounds, then the median of
``--repeats``); a call over ``--max-call-gflops`` (batch N, or even batch 1 at a P6 model's 1280 on a
small CPU) is not made and its cells stay empty (``-``); ``--replot`` rewrites the table, CSV and
plot from a saved ``cost.json`` without measuring. The
``published AP`` column is each model's COCO val box AP from its own model zoo (mmdet's metafiles;
ours: the official YOLOv7 figures, ``configs/yolov7/README.md``), not measured here.

**train** trains every model from scratch (every ``Pretrained`` init removed) with the same data,
input size, batch, epochs and seeds, evaluates every epoch with the same ``CocoMetric`` (EMA weights,
as all these recipes do) and records mAP and the training wall time (validation excluded) per epoch.
Each recipe is scaled to the budget of ``--epochs`` (what it keeps and what it changes):

* its optimizer, lr and weight decay as configured for one GPU (mmdet's ``auto_scale_lr`` is off by
  default and stays off; ours steps the optimizer every batch instead of accumulating to 64 images,
  which would leave a handful of steps in a short budget);
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

A run (model, seed) that finished is not trained again on a re-run with the same ``--out``: its
``result.json`` is read back. Results and their reading: ``docs/benchmarks.md``.
"""
import argparse
import csv
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope

from yolov7_mmdet.datasets import MIX_WRAPPER_TYPES
from yolov7_mmdet.models.deploy import switch_to_deploy
from yolov7_mmdet.utils.complexity import network_complexity, unscaled_data_samples
from yolov7_mmdet.utils.config import config_path
from yolov7_mmdet.utils.timing import interleaved_medians

OURS = ('yolov7_tiny', 'yolov7_l', 'yolov7_x', 'yolov7_w6', 'yolov7_e6', 'yolov7_d6', 'yolov7_e6e')
# Official COCO val2017 box AP (configs/yolov7/README.md; tiny: the official SiLU variant's figure)
OFFICIAL_AP = dict(yolov7_tiny=38.7, yolov7_l=51.2, yolov7_x=52.9, yolov7_w6=54.6, yolov7_e6=55.9,
                   yolov7_d6=56.3, yolov7_e6e=56.8)
SIMPLE_PIPELINE_DROPS_HOOKS = ('YOLOXModeSwitchHook', 'PipelineSwitchHook')


# ----------------------------------------------------------------------------------------------
# models


@dataclass
class ModelSpec:
    """One model to compare: its label in tables, its config and its published COCO AP."""
    label: str
    cfg: Config
    published_ap: Optional[float]


def model_label(name: str) -> str:
    """``yolov7_tiny`` -> itself; ``mmdet::yolox/yolox_tiny_8xb8-300e_coco.py`` -> ``yolox_tiny``;
    ``faster-rcnn_r50_fpn_1x_coco.py`` -> ``faster-rcnn_r50_fpn_1x``."""
    stem = re.sub(r'_coco$', '', Path(name).stem)
    return re.split(r'_\d+xb\d+', stem)[0]


def published_ap(name: str, cfg: Config) -> Optional[float]:
    """COCO box AP of ``cfg`` in its model zoo's ``metafile.yml`` (beside the config), if listed."""
    if name in OFFICIAL_AP:
        return OFFICIAL_AP[name]
    config_file = Path(cfg.filename)
    metafile = config_file.parent / 'metafile.yml'
    if not metafile.is_file():
        return None
    for model in yaml.safe_load(metafile.read_text()).get('Models', []):
        if Path(model.get('Config', '')).name != config_file.name:
            continue
        for result in model.get('Results') or []:
            if result.get('Task') == 'Object Detection' and 'box AP' in result.get('Metrics', {}):
                return float(result['Metrics']['box AP'])
    return None


def mmdet_config_path(name: str) -> str:
    """The file of ``mmdet::DIR/FILE.py`` among mmdet's packaged configs."""
    import mmdet
    path = Path(mmdet.__file__).parent / '.mim' / 'configs' / name[len('mmdet::'):]
    if not path.is_file():
        raise FileNotFoundError(f'--models {name}: no such config in mmdet ({path})')
    return str(path)


def resolve_model(name: str) -> ModelSpec:
    """A ``ModelSpec`` from our short name, an ``mmdet::`` config or a config file."""
    if name in OURS:
        cfg = Config.fromfile(config_path(f'yolov7/{name}_8xb16-300e_coco.py'))
    elif name.startswith('mmdet::'):
        cfg = Config.fromfile(mmdet_config_path(name))
    elif Path(name).is_file():
        cfg = Config.fromfile(name)
    else:
        raise ValueError(f'--models {name!r}: neither one of ours ({", ".join(OURS)}), nor an '
                         "'mmdet::' config, nor a config file")
    return ModelSpec(label=model_label(name), cfg=cfg, published_ap=published_ap(name, cfg))


def resolve_models(names: Sequence[str]) -> List[ModelSpec]:
    specs = [resolve_model(name) for name in names]
    labels = [spec.label for spec in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f'--models: two models share the label(s) {duplicates}')
    return specs


def build_model(cfg: Config) -> torch.nn.Module:
    from mmdet.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model)


def size_divisor(model: torch.nn.Module) -> int:
    """The stride every input side must be a multiple of (64 for the P6 models)."""
    return getattr(model.backbone, 'size_divisor', 32)


def own_input_shape(cfg: Config, divisor: int) -> Tuple[int, int]:
    """(H, W) of the config's test resize scale (``(w, h)``), rounded up to ``divisor``."""
    for transform in cfg.test_dataloader.dataset.pipeline:
        if transform.get('type') == 'Resize':
            width, height = transform['scale']
            return (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    raise ValueError(f'{cfg.filename}: no Resize in its test pipeline; cannot tell its input size')


# ----------------------------------------------------------------------------------------------
# cost mode


def dummy_batch(batch_size: int, shape: Tuple[int, int], device: str) -> tuple:
    """Random normalised images ``(N, 3, H, W)`` and their data samples (metainfo only)."""
    height, width = shape
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, height, width, generator=generator).to(device)
    return images, unscaled_data_samples(shape, batch_size)


def count_gflops(model: torch.nn.Module, shape: Tuple[int, int], device: str) -> float:
    """FLOPs (2 x mmengine's multiply-accumulates) of one image of ``shape``, in G."""
    images, samples = dummy_batch(1, shape, device)
    return network_complexity(model, images, samples)['flops'] / 1e9


def forward_call(model: torch.nn.Module, batch_size: int, shape: Tuple[int, int],
                 device: str) -> Callable[[], None]:
    images, samples = dummy_batch(batch_size, shape, device)

    def call() -> None:
        with torch.no_grad():
            model(images, samples, mode='tensor')

    return call


def deployed_model(spec: ModelSpec, device: str) -> torch.nn.Module:
    """``spec``'s model in eval mode, switched to deploy and BN-fused (see the module docstring)."""
    model = build_model(spec.cfg).to(device).eval()
    return switch_to_deploy(model)


def plan_model(spec: ModelSpec, model: torch.nn.Module,
               args: argparse.Namespace) -> Tuple[List[dict], Dict[str, Callable[[], None]]]:
    """The rows (own size, common size) and timed calls of one model. A call over
    ``--max-call-gflops`` is not made (an own size is judged by the common size's FLOPs scaled by
    area, so that its count is not traced either); its cells stay empty."""
    divisor = size_divisor(model)
    if args.size % divisor:
        raise ValueError(f'--size {args.size}: {spec.label} needs a multiple of {divisor}')
    common = (args.size, args.size)
    common_gflops = count_gflops(model, common, args.device)
    params = sum(parameter.numel() for parameter in model.parameters())
    rows, calls = [], {}
    for size_name, shape in (('own', own_input_shape(spec.cfg, divisor)), ('common', common)):
        row = dict(model=spec.label, size=size_name, input=f'{shape[0]}x{shape[1]}',
                   params_M=params / 1e6, GFLOPs=None, latency_ms=None, batch=None,
                   throughput_img_s=None, peak_MB=None, published_AP=spec.published_ap)
        rows.append(row)
        estimate = common_gflops * shape[0] * shape[1] / (args.size * args.size)
        if estimate > args.max_call_gflops:
            print(f'[{spec.label}] {size_name} {row["input"]}: about {estimate:.0f} GFLOPs, over '
                  '--max-call-gflops: not measured', flush=True)
            continue
        row['GFLOPs'] = common_gflops if shape == common else count_gflops(model, shape,
                                                                            args.device)
        print(f'[{spec.label}] {size_name} {row["input"]}: {row["GFLOPs"]:.1f} GFLOPs', flush=True)
        calls[f'{spec.label}/{size_name}/1'] = forward_call(model, 1, shape, args.device)
        if row['GFLOPs'] * args.batch <= args.max_call_gflops:
            row['batch'] = args.batch
            calls[f'{spec.label}/{size_name}/N'] = forward_call(model, args.batch, shape,
                                                                 args.device)
    return rows, calls


def run_cost(specs: Sequence[ModelSpec], args: argparse.Namespace) -> List[dict]:
    """One record per (model, size): the columns of ``COST_COLUMNS``."""
    rows, calls = [], {}
    for spec in specs:
        print(f'[{spec.label}] build, deploy form', flush=True)
        model_rows, model_calls = plan_model(spec, deployed_model(spec, args.device), args)
        rows += model_rows
        calls.update(model_calls)
    print(f'timing {len(calls)} calls: {args.warmup} warm-up + {args.repeats} timed rounds',
          flush=True)
    timings = interleaved_medians(calls, warmup=args.warmup, repeats=args.repeats,
                                  device=args.device, print_rounds=True)
    for row in rows:
        key = f'{row["model"]}/{row["size"]}'
        single, batched = timings.get(f'{key}/1'), timings.get(f'{key}/N')
        if single:
            row['latency_ms'] = single.seconds * 1e3
            row['peak_MB'] = (batched or single).peak_mb
        if batched:
            row['throughput_img_s'] = args.batch / batched.seconds
    return rows


# ----------------------------------------------------------------------------------------------
# train mode: configs


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


def inner_dataset(loader: dict) -> dict:
    dataset = loader['dataset']
    return dataset['dataset'] if dataset.get('type') in MIX_WRAPPER_TYPES else dataset


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
    train = inner_dataset(cfg.train_dataloader)
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


def scale_recipe(cfg: Config, *, epochs: int, batch_size: int, size: int) -> None:
    """Fit the config's schedule to ``epochs`` (see the module docstring)."""
    recipe_epochs = cfg.train_cfg.max_epochs
    scheduler_hook = cfg.default_hooks.get('param_scheduler', {})
    if scheduler_hook.get('type') == 'YOLOv7ParamSchedulerHook':  # ours
        scheduler_hook.update(min_warmup_iters=0, warmup_epochs=phase_boundary(
            scheduler_hook.warmup_epochs, recipe_epochs=recipe_epochs, epochs=epochs))
        cfg.optim_wrapper.update(batch_size_per_gpu=batch_size, nominal_batch_size=batch_size)
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
    scale_recipe(cfg, epochs=args.epochs, batch_size=args.batch, size=args.size)
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


# ----------------------------------------------------------------------------------------------
# train mode: runs


class EpochRecorder(Hook):
    """Records, after every validation, the epoch's COCO metrics and the training time so far
    (validation excluded), prints one progress line and writes ``history.json``."""
    priority = 'VERY_LOW'

    def __init__(self, *, title: str, history_file: Path):
        self.title = title
        self.history_file = history_file
        self.history: List[dict] = []
        self.train_seconds = 0.0
        self._epoch_start = 0.0

    def before_train_epoch(self, runner) -> None:
        self._epoch_start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        self.train_seconds += time.perf_counter() - self._epoch_start

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        metrics = metrics or {}  # CocoMetric gives no metrics when nothing at all was detected
        record = dict(epoch=runner.epoch, train_seconds=round(self.train_seconds, 2),
                      mAP=metrics.get('coco/bbox_mAP', 0.0),
                      mAP_50=metrics.get('coco/bbox_mAP_50', 0.0),
                      mAP_75=metrics.get('coco/bbox_mAP_75', 0.0))
        self.history.append(record)
        print(f'[{self.title}] epoch {runner.epoch}/{runner.max_epochs}: mAP {record["mAP"]:.3f}, '
              f'mAP@0.5 {record["mAP_50"]:.3f}, training {self.train_seconds / 60:.1f} min',
              flush=True)
        write_json(self.history_file, self.history)


def write_json(path: Path, value) -> None:
    """Write atomically: a killed run never leaves a half-written file that a re-run would trust."""
    partial = path.with_suffix('.partial')
    partial.write_text(json.dumps(value, indent=1))
    partial.replace(path)


def train_run(spec: ModelSpec, args: argparse.Namespace, *, seed: int, data: dict,
              num_classes: int) -> dict:
    """Train and evaluate one (model, seed), or read its result back if it finished before."""
    from mmengine.runner import Runner
    run_dir = Path(args.out) / 'runs' / f'{spec.label}_seed{seed}'
    result_file = run_dir / 'result.json'
    if result_file.is_file():
        print(f'[{spec.label} seed {seed}] finished before: {result_file} (not trained again)')
        return json.loads(result_file.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = train_config(spec, args, seed=seed, data=data, num_classes=num_classes,
                       work_dir=run_dir)
    cfg.dump(str(run_dir / 'config.py'))
    recorder = EpochRecorder(title=f'{spec.label} seed {seed}', history_file=run_dir / 'history.json')
    runner = Runner.from_cfg(cfg)
    runner.register_hook(recorder)
    params = sum(parameter.numel() for parameter in runner.model.parameters())
    runner.train()
    result = dict(model=spec.label, seed=seed, params_M=params / 1e6, history=recorder.history)
    write_json(result_file, result)
    return result


def read_data_args(args: argparse.Namespace) -> Tuple[dict, int]:
    """``{'train'|'val': (ann_file, image_prefix)}`` and the number of classes, checked."""
    data, classes = {}, []
    roots = args.image_root or [None]
    for index, (role, ann_file) in enumerate(zip(('train', 'val'), args.data)):
        ann_path = Path(ann_file)
        if not ann_path.is_file():
            raise FileNotFoundError(f'--data: {ann_file} does not exist')
        coco = json.loads(ann_path.read_text())
        # default: the image folder to_coco.py records in the file, else the file's own folder
        recorded_root = (coco.get('info') or {}).get('image_root') or ann_path.parent
        root = Path(roots[min(index, len(roots) - 1)] or recorded_root)
        data[role] = (str(ann_path.resolve()), f'{root.resolve()}/')
        classes.append(coco['categories'])
    if [c['name'] for c in classes[0]] != [c['name'] for c in classes[1]]:
        raise ValueError(f'--data: {args.data[0]} and {args.data[1]} have different categories')
    return data, len(classes[0])


def whole_image_floor(val_ann_file: str) -> dict:
    """COCO metrics of a detector that learned only the data's prior: one whole-image box of the
    most frequent class per image (well above 'predicts nothing' where objects fill the frame)."""
    from contextlib import redirect_stdout
    from io import StringIO

    from mmdet.datasets.api_wrappers import COCO, COCOeval
    with redirect_stdout(StringIO()):
        truth = COCO(val_ann_file)
        labels, counts = np.unique([ann['category_id'] for ann in truth.dataset['annotations']],
                                   return_counts=True)
        detections = [dict(image_id=image['id'], category_id=int(labels[counts.argmax()]),
                           score=1.0, bbox=[0, 0, image['width'], image['height']])
                      for image in truth.dataset['images']]
        evaluation = COCOeval(truth, truth.loadRes(detections), 'bbox')
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return dict(mAP=float(evaluation.stats[0]), mAP_50=float(evaluation.stats[1]))


def run_train(specs: Sequence[ModelSpec], args: argparse.Namespace) -> Tuple[List[dict], dict]:
    """Every (model, seed) run's result, models interleaved by seed; and the data-prior floor."""
    data, num_classes = read_data_args(args)
    results = [train_run(spec, args, seed=seed, data=data, num_classes=num_classes)
               for seed in args.seeds for spec in specs]
    return results, whole_image_floor(data['val'][0])


# ----------------------------------------------------------------------------------------------
# outputs


COST_COLUMNS = ('model', 'size', 'input', 'params_M', 'GFLOPs', 'latency_ms', 'batch',
                'throughput_img_s', 'peak_MB', 'published_AP')
TRAIN_COLUMNS = ('model', 'seed', 'epoch', 'train_seconds', 'mAP', 'mAP_50', 'mAP_75')
SUMMARY_COLUMNS = ('model', 'seeds', 'final_mAP', 'final_mAP_50', 'best_mAP', 'train_minutes')


# decimals shown in the Markdown tables (the CSV and JSON keep full precision); others: 3
DECIMALS = dict(params_M=2, GFLOPs=1, latency_ms=1, throughput_img_s=2, peak_MB=0, published_AP=1,
                train_seconds=1)


def cell(value, decimals: int = 3) -> str:
    """How every table shows a value: floats rounded to ``decimals``, None as '-'."""
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{decimals}f}'
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row[column], DECIMALS.get(column, 3)) for column in columns)
              + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with path.open('w', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({column: row[column] for column in columns} for row in rows)


def spread(values: Sequence[float], decimals: int = 3) -> str:
    """``mean (min-max)`` of one value over seeds."""
    if len(values) == 1:
        return cell(values[0], decimals)
    return (f'{cell(float(np.mean(values)), decimals)} '
            f'({cell(min(values), decimals)}-{cell(max(values), decimals)})')


def summarise(results: Sequence[dict]) -> List[dict]:
    """One row per model over its seeds: final / best mAP and training minutes, mean (min-max)."""
    rows = []
    for model in dict.fromkeys(result['model'] for result in results):
        runs = [result for result in results if result['model'] == model]
        finals = [run['history'][-1] for run in runs]
        rows.append(dict(
            model=model, seeds=' '.join(str(run['seed']) for run in runs),
            final_mAP=spread([final['mAP'] for final in finals]),
            final_mAP_50=spread([final['mAP_50'] for final in finals]),
            best_mAP=spread([max(epoch['mAP'] for epoch in run['history']) for run in runs]),
            train_minutes=spread([final['train_seconds'] / 60 for final in finals], decimals=1)))
    return rows


def model_colours(models: Sequence[str]) -> dict:
    import matplotlib.pyplot as plt
    palette = plt.get_cmap('tab10')
    return {model: palette(index % 10) for index, model in enumerate(dict.fromkeys(models))}


def plot_cost(rows: Sequence[dict], path: Path, title: str) -> None:
    """Published COCO AP against measured batch-1 latency: at each model's own input size (filled)
    or, where that was not measured, at the common size (hollow)."""
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 5), dpi=90)
    models = [row['model'] for row in rows]
    colours = model_colours(models)
    for model in dict.fromkeys(models):
        own, common = [row for row in rows if row['model'] == model]
        row = own if own['latency_ms'] is not None else common
        if row['latency_ms'] is None or row['published_AP'] is None:
            continue
        axes.scatter(row['latency_ms'], row['published_AP'], edgecolors=colours[model],
                     facecolors=colours[model] if row is own else 'none')
        axes.annotate(f'{model} ({row["input"]})', (row['latency_ms'], row['published_AP']),
                      fontsize=6, xytext=(3, 3), textcoords='offset points')
    axes.set(xscale='log', xlabel='measured batch-1 latency (ms, log scale)',
             ylabel='published COCO val box AP',
             title=f'{title}\nfilled: own input size; hollow: common size (own not timed)')
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_train(results: Sequence[dict], floor: dict, path: Path, *, x_key: str, x_label: str,
               title: str) -> None:
    """mAP per epoch of every run against ``x_key`` (epoch, or training minutes), and the
    whole-image-box floor as a dashed line."""
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=90)
    colours = model_colours([result['model'] for result in results])
    labelled = set()
    for result in results:
        xs = [epoch[x_key] / (60 if x_key == 'train_seconds' else 1) for epoch in result['history']]
        label = None if result['model'] in labelled else result['model']
        labelled.add(result['model'])
        axes.plot(xs, [epoch['mAP'] for epoch in result['history']], marker='.',
                  color=colours[result['model']], label=label, alpha=0.8)
    axes.axhline(floor['mAP'], color='grey', linestyle='--', label='whole-image box per image')
    axes.set(xlabel=x_label, ylabel='COCO mAP (val)', title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def cost_settings(args: argparse.Namespace) -> dict:
    return dict(device=args.device, threads=torch.get_num_threads(), warmup=args.warmup,
                repeats=args.repeats, batch=args.batch, size=args.size,
                max_call_gflops=args.max_call_gflops)


def write_cost_outputs(rows: Sequence[dict], settings: dict, out: Path) -> None:
    """``cost.json`` (settings and rows), ``cost.csv``, ``cost.md`` and ``ap_vs_latency.png``."""
    write_json(out / 'cost.json', dict(settings=settings, rows=list(rows)))
    write_csv(out / 'cost.csv', rows, COST_COLUMNS)
    header = (f'cost on {settings["device"]} ({settings["threads"]} torch thread(s)): deployed '
              f'forms, tensor mode; latency = median of {settings["repeats"]} after '
              f'{settings["warmup"]} warm-up; throughput at batch {settings["batch"]}; calls over '
              f'{settings["max_call_gflops"]:g} GFLOPs not made (-); published_AP = model zoo, '
              'not measured\n\n')
    (out / 'cost.md').write_text(header + markdown_table(rows, COST_COLUMNS))
    plot_cost(rows, out / 'ap_vs_latency.png', f'published AP vs latency ({settings["device"]})')


def write_train_outputs(results: Sequence[dict], floor: dict, args: argparse.Namespace) -> None:
    out = Path(args.out)
    rows = [dict(model=result['model'], seed=result['seed'], **epoch)
            for result in results for epoch in result['history']]
    write_json(out / 'train.json', dict(runs=list(results), whole_image_floor=floor))
    write_csv(out / 'train.csv', rows, TRAIN_COLUMNS)
    budget = (f'{args.epochs} epochs at {args.size}x{args.size}, batch {args.batch}, from scratch, '
              f'seeds {" ".join(map(str, args.seeds))}; held-out COCO bbox metrics, mean (min-max) '
              'over seeds; training minutes exclude validation')
    floor_line = (f'\nFloor, one whole-image box per image (the data prior): mAP {cell(floor["mAP"])}, '
                  f'mAP@0.5 {cell(floor["mAP_50"])}.\n')
    (out / 'train.md').write_text(budget + '\n\n' + markdown_table(summarise(results),
                                                                   SUMMARY_COLUMNS) + floor_line)
    data = Path(args.data[0]).stem  # the training file names the data
    plot_train(results, floor, out / 'map_vs_epoch.png', x_key='epoch', x_label='epoch',
               title=f'{data}: mAP vs epoch ({args.size} px, batch {args.batch})')
    plot_train(results, floor, out / 'map_vs_time.png', x_key='train_seconds',
               x_label='training wall time (min)',
               title=f'{data}: mAP vs training time ({args.size} px, batch {args.batch})')


# ----------------------------------------------------------------------------------------------
# command line


def load_from_arg(values: Optional[Sequence[str]]) -> Dict[str, str]:
    """``['LABEL=CKPT', ...]`` -> ``{LABEL: CKPT}``, each checkpoint checked to exist."""
    mapping = {}
    for value in values or []:
        label, sep, checkpoint = value.partition('=')
        if not sep or not Path(checkpoint).is_file():
            raise ValueError(f'--load-from {value!r}: expected LABEL=CHECKPOINT of an existing file')
        mapping[label] = checkpoint
    return mapping


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mode', choices=('cost', 'train'), required=True)
    parser.add_argument('--models', nargs='+', default=[],
                        help='our short names, mmdet:: configs or config files')
    parser.add_argument('--out', required=True, help='output folder (tables, CSV, JSON, plots)')
    parser.add_argument('--size', type=int, default=320,
                        help='common square input size (cost) / training and test size (train)')
    parser.add_argument('--batch', type=int, default=8,
                        help='throughput batch (cost) / training batch (train)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    cost = parser.add_argument_group('cost mode')
    cost.add_argument('--warmup', type=int, default=1, help='untimed rounds')
    cost.add_argument('--repeats', type=int, default=3, help='timed rounds (median)')
    cost.add_argument('--replot', action='store_true',
                      help='measure nothing: rewrite the table, CSV and plot from --out/cost.json')
    cost.add_argument('--max-call-gflops', type=float, default=float('inf'),
                      help='do not time a call (batch 1 or N) whose FLOPs exceed this (G)')
    train = parser.add_argument_group('train mode')
    train.add_argument('--data', nargs=2, metavar=('TRAIN_JSON', 'VAL_JSON'))
    train.add_argument('--image-root', nargs='+',
                       help="folder(s) the files' file_names are relative to (one for both, or "
                       "train and val); default: the JSON file's info.image_root (written by "
                       "to_coco.py), else its folder")
    train.add_argument('--epochs', type=int, default=10)
    train.add_argument('--seeds', type=int, nargs='+', default=[0])
    train.add_argument('--workers', type=int, default=1, help='data loader workers')
    train.add_argument('--load-from', nargs='+', metavar='LABEL=CKPT',
                       help='start a model from a checkpoint instead of from scratch')
    train.add_argument('--log-level', default='WARNING', help="mmengine's log level")
    args = parser.parse_args(argv)
    if not args.models and not (args.mode == 'cost' and args.replot):
        parser.error('--models is required (except with --mode cost --replot)')
    if args.mode == 'train' and not args.data:
        parser.error('--mode train needs --data TRAIN_JSON VAL_JSON')
    try:
        args.load_from = load_from_arg(args.load_from)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import yolov7_mmdet  # noqa: F401  (registers our models, CocoJSONDataset, hooks)
    specs = resolve_models(args.models)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.mode == 'cost':
        if args.replot:
            saved = json.loads((Path(args.out) / 'cost.json').read_text())
            write_cost_outputs(saved['rows'], saved['settings'], Path(args.out))
        else:
            write_cost_outputs(run_cost(specs, args), cost_settings(args), Path(args.out))
    else:
        results, floor = run_train(specs, args)
        write_train_outputs(results, floor, args)
    print((Path(args.out) / f'{args.mode}.md').read_text())
    print(f'outputs in {args.out}')


if __name__ == '__main__':
    main()
