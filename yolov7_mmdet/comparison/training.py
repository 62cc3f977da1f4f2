"""Train mode, the runs: train and evaluate every (model, seed), resumable per run.

Every run validates every epoch with the same ``CocoMetric`` (EMA weights, as all these recipes do)
and records mAP and the training wall time (validation excluded) per epoch. A run that finished is
not trained again on a re-run with the same ``--out``: its ``result.json`` is read back.
"""
import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.hooks import Hook

from .models import ModelSpec
from .recipe import train_config
from .report import write_json


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
