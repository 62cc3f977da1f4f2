"""Compare our YOLOv7 models with any MMDetection config: cost on a device, or learning on your data.

    # cost (no data): parameters, FLOPs, batch-1 latency, batch-N throughput, peak memory
    python tools/analysis_tools/compare_models.py --mode cost --models yolov7_tiny yolov7_l \\
        mmdet::yolox/yolox_tiny_8xb8-300e_coco.py mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py \\
        --size 320 --batch 8 --out work_dirs/compare_cost
    # train: every model from scratch on the same data, input size, batch, epochs and seeds
    python tools/analysis_tools/compare_models.py --mode train --models yolov7_tiny \\
        mmdet::yolox/yolox_tiny_8xb8-300e_coco.py --data train.json val.json --image-root IMAGES \\
        --epochs 10 --size 256 --batch 8 --seeds 0 1 --out work_dirs/compare_raccoon
    # ours twice: accumulating to the recipe's 64 images per step, and stepping every batch of 8
    python tools/analysis_tools/compare_models.py --mode train --models yolov7_tiny \
        --nominal-batch 64 8 --data train.json val.json --out work_dirs/compare_raccoon

``--models`` takes our short names (``yolov7_tiny``, ``yolov7_l``, ``yolov7_x``, ``yolov7_w6``,
``yolov7_e6``, ``yolov7_d6``, ``yolov7_e6e``), mmdet's packaged configs (``mmdet::...``) or any config
file. Everything goes into ``--out``: ``<mode>.md`` (the table), ``<mode>.csv``, ``<mode>.json`` and
PNG plots (cost: AP vs latency; train: mAP vs epoch, mAP vs training wall time).

The rules of each mode are in the docstrings of ``yolov7_mmdet.comparison`` (``cost``,
``recipe``, ``training``); results and their reading: ``docs/benchmarks.md``. ``--replot``
rewrites a mode's table, CSV and plots from its saved JSON without measuring or training.
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch


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
    parser.add_argument('--replot', action='store_true',
                        help='measure and train nothing: rewrite the table, CSV and plots from '
                        '--out/<mode>.json')
    cost = parser.add_argument_group('cost mode')
    cost.add_argument('--warmup', type=int, default=1, help='untimed rounds')
    cost.add_argument('--repeats', type=int, default=3, help='timed rounds (median)')
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
    train.add_argument('--nominal-batch', type=int, nargs='+', metavar='N',
                       help='images per optimizer step of our models, each value a run of its own '
                       '(labelled <model>_nb<N> unless it is the recipe\'s 64); default: the '
                       'recipe\'s 64, accumulating over batches as the official train.py')
    train.add_argument('--load-from', nargs='+', metavar='LABEL=CKPT',
                       help='start a model from a checkpoint instead of from scratch')
    train.add_argument('--log-level', default='WARNING', help="mmengine's log level")
    args = parser.parse_args(argv)
    if not args.models and not args.replot:
        parser.error('--models is required (except with --replot)')
    if args.mode == 'train' and not args.data and not args.replot:
        parser.error('--mode train needs --data TRAIN_JSON VAL_JSON')
    if args.nominal_batch and min(args.nominal_batch) < 1:
        parser.error(f'--nominal-batch takes images per optimizer step (>= 1), got '
                     f'{args.nominal_batch}')
    try:
        args.load_from = load_from_arg(args.load_from)
    except ValueError as error:
        parser.error(str(error))
    return args


def replot(mode: str, out: Path) -> None:
    """Rewrite ``mode``'s table, CSV and plots from the JSON that a run saved in ``out``."""
    from yolov7_mmdet.comparison import write_cost_outputs, write_train_outputs
    saved = json.loads((out / f'{mode}.json').read_text())
    if mode == 'cost':
        write_cost_outputs(saved['rows'], saved['settings'], out)
    else:
        write_train_outputs(saved['runs'], saved['whole_image_floor'], saved['settings'], out)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import yolov7_mmdet  # noqa: F401  (registers our models, CocoJSONDataset, hooks)
    from yolov7_mmdet.comparison import (cost_settings, resolve_models, run_cost, run_train,
                                         train_settings, with_nominal_batches, write_cost_outputs,
                                         write_train_outputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        replot(args.mode, out)
    elif args.mode == 'cost':
        specs = resolve_models(args.models)
        write_cost_outputs(run_cost(specs, args), cost_settings(args), out)
    else:
        specs = with_nominal_batches(resolve_models(args.models), args.nominal_batch)
        results, floor = run_train(specs, args)
        write_train_outputs(results, floor, train_settings(args), out)
    print((out / f'{args.mode}.md').read_text())
    print(f'outputs in {args.out}')


if __name__ == '__main__':
    main()
