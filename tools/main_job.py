"""The project's main job: train yolov7-tiny on the embedded demo dataset and evaluate it, end to end.

    python tools/main_job.py [--work-dir work_dirs/demo] [--data-root data/demo_shapes]

1. Makes the demo dataset (coloured shapes on textured backgrounds, COCO JSON; see
   ``yolov7_mmdet/datasets/demo.py``) unless an identical copy is already there. No download.
2. Trains ``configs/demo/yolov7_tiny_demo.py`` with ``tools/train.py`` (the log shows progress every
   few iterations; a checkpoint is written every epoch, the last epoch is validated). On a machine
   too slow to finish within ``--train-minutes`` (default 11), training is stopped there.
3. Evaluates the newest checkpoint (the final one, or the last complete epoch when training was
   stopped) on the demo val split (COCO bbox mAP, mmdet's ``CocoMetric``) and
   draws its predictions on a few val images (ground truth left, predictions right) into
   ``<work-dir>/predictions.png``.
4. Prints where everything is, and the mAP.

Extra arguments after ``--cfg-options`` go to both training and evaluation, as in ``tools/train.py``.
Exits non-zero when a step fails.
"""
from __future__ import annotations

import argparse
import glob
import os
import os.path as osp
import signal
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'yolov7_tiny_demo.py')
NUM_SHOWN = 6


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train and evaluate yolov7-tiny on the demo dataset')
    parser.add_argument('--work-dir', default=osp.join(REPO_ROOT, 'work_dirs', 'yolov7_tiny_demo'),
                        help='where logs, checkpoints and the prediction image go')
    parser.add_argument('--data-root', default=osp.join(REPO_ROOT, 'data', 'demo_shapes'),
                        help='where the demo dataset is (made if missing)')
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='training config')
    parser.add_argument('--skip-train', action='store_true',
                        help='evaluate the newest checkpoint already in the work dir')
    parser.add_argument('--train-minutes', type=float, default=11.0,
                        help='stop training after this long and evaluate the last complete epoch '
                             '(keeps the whole job within 15 minutes on a slow machine)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides passed on to training and evaluation')
    return parser.parse_args(argv)


def step(title: str) -> float:
    print(f'\n==== {title} ====', flush=True)
    return time.time()


def data_root_options(data_root: str) -> list[str]:
    """``--cfg-options`` that point every dataset and evaluator of the demo config at ``data_root``."""
    root = data_root.rstrip('/') + '/'
    val_json = osp.join(root, 'annotations', 'val.json')
    return [f'train_dataloader.dataset.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={val_json}',
            f'test_evaluator.ann_file={val_json}']


def train(config: str, work_dir: str, options: list[str], budget_minutes: float) -> bool:
    """Run ``tools/train.py``; stop it after ``budget_minutes``. Returns whether it finished.

    A checkpoint is written after every epoch (atomically), so a run stopped at the budget leaves the
    last complete epoch to evaluate.
    """
    command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
               '--work-dir', work_dir, '--cfg-options', *options]
    print(' '.join(command), flush=True)
    # its own process group, so that stopping it also stops its data-loader workers quietly
    process = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True)
    try:
        return_code = process.wait(timeout=budget_minutes * 60)
    except subprocess.TimeoutExpired:
        stop_process_group(process)
        print(f'\ntraining stopped at its time budget ({budget_minutes:g} min, see --train-minutes); '
              'evaluating the last complete epoch', flush=True)
        return False
    except KeyboardInterrupt:  # Ctrl-C reaches only this process, not the training's own group
        stop_process_group(process)
        raise
    if return_code != 0:
        raise subprocess.CalledProcessError(return_code, command)
    return True


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group of ``process`` (SIGKILL after 30 s).

    SIGTERM, not SIGINT: a job started in the background of a shell ignores SIGINT. The checkpoints
    are written atomically, so stopping in the middle of a save is safe.
    """
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def latest_checkpoint(work_dir: str) -> str:
    """The newest of the ``best_coco_bbox_mAP*`` and the last epoch checkpoints of ``work_dir``."""
    from yolov7_mmdet.engine.hooks import latest_checkpoint

    candidates = glob.glob(osp.join(work_dir, 'best_coco_bbox_mAP*.pth'))
    last = latest_checkpoint(work_dir)  # last_checkpoint is relative to the work dir
    if last is not None:
        candidates.append(last)
    candidates = [path for path in candidates if osp.isfile(path)]
    if not candidates:
        raise FileNotFoundError(f'no checkpoint in {work_dir}; did training run?')
    return max(candidates, key=osp.getmtime)


def parse_options(options: list[str]) -> dict:
    """``['a.b=1', ...]`` as ``--cfg-options`` would give it (values parsed like mmengine's)."""
    from mmengine.config import DictAction

    return {key: DictAction._parse_iterable(value)
            for key, value in (item.split('=', 1) for item in options)}


def evaluate(config: str, checkpoint: str, work_dir: str, options: list[str]) -> dict:
    """``tools/test.py``'s evaluation, in process so that the metrics come back as a dict."""
    from yolov7_mmdet.utils.launch import build_runner, check_checkpoint_fits, load_config

    cfg = load_config(config, cfg_options=parse_options(options), work_dir=work_dir)
    cfg.load_from = checkpoint
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, checkpoint)
    return runner.test()


def draw_predictions(config: str, checkpoint: str, options: list[str], out_file: str) -> None:
    """Ground truth (left) and predictions with score >= 0.3 (right) on the first val images."""
    import mmcv
    import numpy as np
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import DATASETS, VISUALIZERS
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    cfg.merge_from_dict(parse_options(options))
    model = init_detector(cfg, checkpoint, device='cpu')
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    visualizer = VISUALIZERS.build(dict(type='DetLocalVisualizer', name='main_job'))
    visualizer.dataset_meta = model.dataset_meta
    rows = []
    for index in range(min(NUM_SHOWN, len(dataset))):
        sample = dataset[index]['data_samples']
        prediction = inference_detector(model, sample.img_path)
        ground_truth = sample.gt_instances.clone()
        ground_truth.bboxes = ground_truth.bboxes.tensor  # the visualizer wants a plain (N, 4) tensor
        prediction.gt_instances = ground_truth
        image = mmcv.imread(sample.img_path, channel_order='rgb')
        visualizer.add_datasample('demo', image, prediction, draw_gt=True, pred_score_thr=0.3)
        rows.append(visualizer.get_image())  # (H, 2W, 3) RGB: ground truth | predictions
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=255)
              for row in rows]
    mmcv.imwrite(np.concatenate(padded, axis=0)[..., ::-1], out_file, auto_mkdir=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, REPO_ROOT)
    from yolov7_mmdet.datasets.demo import make_demo_dataset

    work_dir = osp.abspath(args.work_dir)
    options = data_root_options(osp.abspath(args.data_root)) + list(args.cfg_options)
    started = step(f'1/4 demo dataset in {args.data_root}')
    paths = make_demo_dataset(args.data_root)
    print(f"train: {paths['train']}\nval:   {paths['val']}  ({time.time() - started:.0f} s)")

    if not args.skip_train:
        started = step(f'2/4 training {osp.relpath(args.config, REPO_ROOT)} -> {work_dir}')
        train(args.config, work_dir, options, args.train_minutes)
        print(f'training took {(time.time() - started) / 60:.1f} min')

    started = step('3/4 evaluating the checkpoint on the demo val split')
    checkpoint = latest_checkpoint(work_dir)
    metrics = evaluate(args.config, checkpoint, work_dir, options)
    print(f'evaluation took {time.time() - started:.0f} s')

    started = step('4/4 drawing predictions')
    picture = osp.join(work_dir, 'predictions.png')
    draw_predictions(args.config, checkpoint, options, picture)

    print('\n==== results ====')
    print(f"COCO bbox mAP@[.5:.95] = {metrics.get('coco/bbox_mAP', float('nan')):.3f}   "
          f"mAP@0.5 = {metrics.get('coco/bbox_mAP_50', float('nan')):.3f}")
    print(f'checkpoint:  {checkpoint}')
    print(f'predictions: {picture}  (ground truth left, predictions with score >= 0.3 right)')
    print(f'logs:        {work_dir}/<timestamp>/')


if __name__ == '__main__':
    main()
