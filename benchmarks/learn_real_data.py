"""Does yolov7-tiny learn on real data? Train it and an mmdet baseline on the same budget, compare mAP.

    python benchmarks/learn_real_data.py --dataset raccoon --epochs 30 --img-size 256

Results and their reading: ``docs/datasets.md`` (section "Learning on real data").

For a dataset of ``../shared/datasets`` (raccoon: ``splits/train.txt`` -> ``splits/val.txt``; bccd:
``ImageSets/Main/train.txt`` -> ``val.txt``) it

1. converts both splits to COCO JSON with this package's readers (dirty data counted, one warning);
2. trains from scratch on this machine's CPU, with ``tools/train.py``:
   * ``yolov7_tiny``: ``configs/yolov7/yolov7_tiny_8xb16-300e_coco.py`` (the official tiny recipe);
   * ``yolox_tiny``: mmdet's ``yolox/yolox_tiny_8xb8-300e_coco.py`` (its own recipe),
   with the same input size, batch size, number of epochs and training images; each recipe's
   warmup / final phases are shrunk in proportion to its 300 epochs (at least one epoch);
3. evaluates the last checkpoint (EMA weights, as both recipes do) on the held-out split with
   ``tools/test.py`` (COCO bbox mAP, each model's own test pipeline at ``--img-size``), next to two
   floors that learn nothing: no boxes at all (0) and one whole-image box per image.

Deviations from the 8-GPU recipes, the same for both models where both have the setting:
* every 640 (and YOLOX's test 416) becomes ``--img-size``;
* ``--pipeline simple`` (default) trains both on the same letterboxed single images with a random
  flip, instead of mosaic / affine / mixup / HSV (and YOLOX's multi-scale batches): in a budget of a
  few hundred iterations those slow learning down; ``--pipeline recipe`` keeps each config's own
  augmentation (its sizes scaled; YOLOX's multi-scale range becomes ``(img_size / 2, img_size)``);
* yolov7 steps the optimizer every batch (``nominal_batch_size`` = batch size: accumulating to 64
  would leave a handful of steps in the whole budget) and its loss' ``img_size`` follows the input
  size, as the official ``train.py`` does; YOLOX keeps its lr and schedule shape;
* no validation during training except after the last epoch (mmengine always runs that one; it
  gives the same numbers as ``tools/test.py``), no pretrained weights;
* ``OMP_NUM_THREADS=1`` for the training processes: on a small shared CPU, torch's default threads
  spin-wait on each other (one thread was 4-5x faster than two on the 2-core machine used).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from mmengine.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / 'shared' / 'datasets'
YOLOV7_CONFIG = REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_tiny_8xb16-300e_coco.py'
YOLOX_CONFIG = 'yolox/yolox_tiny_8xb8-300e_coco.py'  # in mmdet's packaged configs
RECIPE_EPOCHS = 300

# name -> (annotation folder, image folder, split folder, train split, held-out split)
DATASETS = {
    'raccoon': ('annotations', 'images', 'splits', 'train', 'val'),
    'bccd': ('Annotations', 'JPEGImages', 'ImageSets/Main', 'train', 'val'),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', choices=sorted(DATASETS), default='raccoon')
    parser.add_argument('--epochs', type=int, default=30, help='training budget, same for both')
    parser.add_argument('--img-size', type=int, default=320, help='square input size (mult. of 32)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--workers', type=int, default=1, help='data loader workers per model')
    parser.add_argument('--pipeline', choices=('simple', 'recipe'), default='simple',
                        help="training augmentation: 'simple' (the same resize + flip for both "
                        "models; learns in a short budget) or 'recipe' (each config's own mosaic...)")
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (OMP_NUM_THREADS) of the training processes')
    parser.add_argument('--models', nargs='+', choices=('yolov7_tiny', 'yolox_tiny'),
                        default=['yolov7_tiny', 'yolox_tiny'])
    parser.add_argument('--work-dir', default='work_dirs/learn_real_data')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error('--epochs must be at least 3 (warmup, main and final phases of the schedules)')
    return args


# ----------------------------------------------------------------------------------------------
# data


def convert_splits(dataset: str, out_dir: Path) -> dict:
    """COCO JSON of the train and held-out splits: ``{'train'|'val': (ann_file, image_prefix)}``."""
    from yolov7_mmdet.datasets.sources import read_voc, save_as_coco, voc_annotation_files
    ann_dir, img_dir, split_dir, train, val = DATASETS[dataset]
    root = SHARED / dataset
    splits = {}
    for role, split in (('train', train), ('val', val)):
        xml_files = voc_annotation_files(root / ann_dir, root / split_dir / f'{split}.txt')
        data = read_voc(xml_files, image_dir=root / img_dir)
        ann_file = out_dir / f'{dataset}_{split}.json'
        print(save_as_coco(data, ann_file, name=f'{dataset}/{split}', image_root=root / img_dir))
        splits[role] = (str(ann_file), f'{root / img_dir}/')
    return splits


def point_at_data(cfg: Config, splits: dict, *, batch_size: int, workers: int) -> None:
    """Make the COCO dataloaders/evaluators of ``cfg`` read ``splits`` (classes from the files)."""
    train = cfg.train_dataloader.dataset
    inner = train.dataset if train.type == 'MultiImageMixDataset' else train
    for dataset, (ann_file, prefix) in ((inner, splits['train']),
                                        (cfg.val_dataloader.dataset, splits['val']),
                                        (cfg.test_dataloader.dataset, splits['val'])):
        dataset.update(type='CocoJSONDataset', data_root='', ann_file=ann_file,
                       data_prefix=dict(img=prefix))
        dataset.pop('metainfo', None)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = splits['val'][0]
    for loader, size in ((cfg.train_dataloader, batch_size), (cfg.val_dataloader, batch_size),
                         (cfg.test_dataloader, batch_size)):
        loader.update(batch_size=size, num_workers=workers, persistent_workers=workers > 0)


def num_classes_of(ann_file: str) -> int:
    return len(json.loads(Path(ann_file).read_text())['categories'])


# ----------------------------------------------------------------------------------------------
# configs


def replace_values(node, mapping: dict):
    """Copy of a config tree with every list/tuple value found in ``mapping`` replaced."""
    if isinstance(node, dict):
        return type(node)({key: replace_values(value, mapping) for key, value in node.items()})
    if isinstance(node, (list, tuple)):
        if all(isinstance(value, (int, float)) for value in node) and tuple(node) in mapping:
            return mapping[tuple(node)]
        return type(node)(replace_values(value, mapping) for value in node)
    return node


def resize_pipelines(cfg: Config, mapping: dict) -> None:
    cfg.train_dataloader = replace_values(cfg.train_dataloader, mapping)
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader] = replace_values(cfg[loader], mapping)


def use_simple_pipeline(cfg: Config, size: int) -> None:
    """Train on letterboxed single images + flip (identical for both models), no mix dataset."""
    train = cfg.train_dataloader.dataset
    inner = train.dataset if train.type == 'MultiImageMixDataset' else train
    inner.pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(size, size), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Pad', size=(size, size), pad_val=dict(img=(114, 114, 114))),
        dict(type='PackDetInputs'),
    ]
    cfg.train_dataloader.dataset = inner
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook.type != 'YOLOXModeSwitchHook']  # it switches mosaic off


def scaled_epochs(recipe_epochs: int, epochs: int) -> int:
    """A phase of ``recipe_epochs`` (out of the recipe's 300) scaled to ``epochs``, at least 1."""
    return max(1, round(recipe_epochs * epochs / RECIPE_EPOCHS))


def common_settings(cfg: Config, *, epochs: int, seed: int) -> None:
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs + 1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='DatasetClassesCheckHook')]
    cfg.custom_imports = dict(imports=['yolov7_mmdet'], allow_failed_imports=False)
    cfg.randomness = dict(seed=seed)


def yolov7_tiny_config(splits: dict, args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(str(YOLOV7_CONFIG))
    size = args.img_size
    resize_pipelines(cfg, {(640, 640): (size, size)})
    point_at_data(cfg, splits, batch_size=args.batch_size, workers=args.workers)
    cfg.model.bbox_head.num_classes = num_classes_of(splits['train'][0])
    cfg.model.bbox_head.loss.img_size = size
    cfg.optim_wrapper.batch_size_per_gpu = args.batch_size
    cfg.optim_wrapper.nominal_batch_size = args.batch_size
    cfg.default_hooks.param_scheduler.update(warmup_epochs=scaled_epochs(3, args.epochs),
                                             min_warmup_iters=0)
    if args.pipeline == 'simple':
        use_simple_pipeline(cfg, size)
    common_settings(cfg, epochs=args.epochs, seed=args.seed)
    return cfg


def yolox_tiny_config(splits: dict, args: argparse.Namespace) -> Config:
    import mmdet
    cfg = Config.fromfile(str(Path(mmdet.__file__).parent / '.mim' / 'configs' / YOLOX_CONFIG))
    size, epochs = args.img_size, args.epochs
    resize_pipelines(cfg, {(640, 640): (size, size), (416, 416): (size, size),
                           (-320, -320): (-size // 2, -size // 2)})
    point_at_data(cfg, splits, batch_size=args.batch_size, workers=args.workers)
    cfg.model.bbox_head.num_classes = num_classes_of(splits['train'][0])
    if args.pipeline == 'simple':
        use_simple_pipeline(cfg, size)
        cfg.model.data_preprocessor.batch_augments = None  # no multi-scale either
    else:
        cfg.model.data_preprocessor.batch_augments[0].random_size_range = (size // 64 * 32, size)
    warmup, last = scaled_epochs(5, epochs), scaled_epochs(15, epochs)
    base_lr = cfg.optim_wrapper.optimizer.lr
    cfg.param_scheduler = [
        dict(type='mmdet.QuadraticWarmupLR', by_epoch=True, begin=0, end=warmup,
             convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=warmup, T_max=epochs - last,
             end=epochs - last, by_epoch=True, convert_to_iter_based=True),
        dict(type='ConstantLR', by_epoch=True, factor=1, begin=epochs - last, end=epochs),
    ]
    common_settings(cfg, epochs=epochs, seed=args.seed)
    for hook in cfg.custom_hooks:
        if hook.type == 'YOLOXModeSwitchHook':
            hook.num_last_epochs = last
    return cfg


# ----------------------------------------------------------------------------------------------
# runs


def run_tool(*args: str, threads: int) -> None:
    command = [sys.executable, *args]
    print(f'+ OMP_NUM_THREADS={threads}', ' '.join(command), flush=True)
    subprocess.run(command, cwd=REPO_ROOT, check=True,
                   env={**os.environ, 'OMP_NUM_THREADS': str(threads)})


def train_and_test(cfg: Config, work_dir: Path, *, threads: int) -> dict:
    """``tools/train.py`` then ``tools/test.py`` on the last checkpoint; metrics and train time."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / 'config.py'
    cfg.dump(str(config_file))
    start = time.perf_counter()
    run_tool('tools/train.py', str(config_file), '--work-dir', str(work_dir), threads=threads)
    train_seconds = time.perf_counter() - start
    checkpoint = work_dir / f'epoch_{cfg.train_cfg.max_epochs}.pth'
    test_dir = work_dir / 'test'
    run_tool('tools/test.py', str(config_file), str(checkpoint), '--work-dir', str(test_dir),
             threads=threads)
    metrics_file = sorted(test_dir.glob('*/*.json'))[-1]  # <timestamp>/<timestamp>.json
    metrics = json.loads(metrics_file.read_text())
    # CocoMetric returns no metrics (and logs an error) when the model made no detection at all
    return dict(mAP=metrics.get('coco/bbox_mAP', 0.0), mAP_50=metrics.get('coco/bbox_mAP_50', 0.0),
                train_minutes=train_seconds / 60)


def whole_image_floor(val_ann_file: str) -> dict:
    """mAP of a detector that learned nothing but the data's prior: one box covering each whole
    image, of the most frequent class, score 1 (a floor well above 'no boxes' on raccoon)."""
    from mmdet.datasets.api_wrappers import COCO, COCOeval
    gt = COCO(val_ann_file)
    labels, counts = np.unique([ann['category_id'] for ann in gt.dataset['annotations']],
                               return_counts=True)
    category = int(labels[counts.argmax()])
    detections = [dict(image_id=image['id'], category_id=category, score=1.0,
                       bbox=[0, 0, image['width'], image['height']])
                  for image in gt.dataset['images']]
    evaluation = COCOeval(gt, gt.loadRes(detections), 'bbox')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return dict(mAP=float(evaluation.stats[0]), mAP_50=float(evaluation.stats[1]))


def print_table(dataset: str, args: argparse.Namespace, results: dict) -> None:
    print(f'\n{dataset}: {args.epochs} epochs at {args.img_size}x{args.img_size}, batch '
          f'{args.batch_size}, {args.pipeline} pipeline, CPU ({args.threads} thread), from scratch; '
          'held-out split, COCO bbox metrics')
    print(f'| {"model":<32} | {"mAP":>6} | {"mAP@0.5":>7} | {"train min":>9} |')
    print(f'|{"-" * 34}|{"-" * 8}|{"-" * 9}|{"-" * 11}|')
    for name, result in results.items():
        minutes = f'{result["train_minutes"]:.1f}' if 'train_minutes' in result else '-'
        print(f'| {name:<32} | {result["mAP"]:6.3f} | {result["mAP_50"]:7.3f} | {minutes:>9} |')


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not SHARED.is_dir():
        raise SystemExit(f'the real datasets are not at {SHARED} (../shared is absent)')
    import yolov7_mmdet  # noqa: F401  (registers CocoJSONDataset and the hooks)
    work_dir = REPO_ROOT / args.work_dir / args.dataset
    splits = convert_splits(args.dataset, work_dir / 'data')
    builders = dict(yolov7_tiny=yolov7_tiny_config, yolox_tiny=yolox_tiny_config)
    results = {'predicts nothing': dict(mAP=0.0, mAP_50=0.0),
               'whole-image box (data prior)': whole_image_floor(splits['val'][0])}
    for name in args.models:
        results[name] = train_and_test(builders[name](splits, args), work_dir / name,
                                       threads=args.threads)
    print_table(args.dataset, args, results)
    return results


if __name__ == '__main__':
    main()
