"""Evaluate a checkpoint; the flags are mmdet 3.3's ``tools/test.py``.

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl] [--show-dir vis] [--tta] [--deploy]
        [--eval-protocol {official,square}]

Unlike mmdet's tool, a checkpoint that does not fit the config's model (another variant, another
``num_classes``) is an error instead of a warning followed by evaluating random weights. ``--deploy``
evaluates (and draws) the model after ``switch_to_deploy()``, the graph that is exported.
It evaluates with the protocol that the config validates with (``val_dataloader``): the COCO configs'
is the official ``test.py`` one (rectangular batches of 32 sorted by aspect ratio: the published
numbers), the custom and demo configs' the square letterbox; ``--eval-protocol official|square``
chooses (``square``: every image letterboxed to the model size, what exported models take; and
``official`` takes ``val_dataloader``'s batch size where it validates that way, else 32); see
``yolov7_mmdet/datasets/rect_eval.py``.
"""
import argparse
import os
import sys

from mmengine.config import DictAction

import yolov7_mmdet  # noqa: F401  (registers the plugin; lets torch load our checkpoints)
from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo
from yolov7_mmdet.datasets.rect_eval import eval_protocol_of, set_eval_protocol
from yolov7_mmdet.utils.checkpoint import CheckpointError
from yolov7_mmdet.utils.launch import build_runner, check_checkpoint_fits, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a detector checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to this pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save images with drawn predictions into this dir '
                        '(relative to the work dir\'s timestamp folder)')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds between shown images')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. test_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (horizontal flip)')
    parser.add_argument('--deploy', action='store_true',
                        help='evaluate the inference graph (switch_to_deploy() after loading the checkpoint)')
    parser.add_argument('--eval-protocol', choices=['official', 'square'],
                        help="'official': test.py's rectangular batches; 'square': every image "
                        "letterboxed to the model size. Default: the protocol of the config's "
                        "val_dataloader (the COCO configs: official)")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must name a .pkl or .pickle file')
    if args.tta and args.eval_protocol == 'official':
        parser.error('--tta evaluates square images; it cannot be combined with --eval-protocol official')
    return args


def wrap_for_tta(cfg) -> None:
    """Use the config's ``tta_model`` / ``tta_pipeline``; YOLOv7 configs define both."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise RuntimeError(f'--tta needs {" and ".join(missing)} in the config.')
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args.config, cfg_options=args.cfg_options, work_dir=args.work_dir,
                      launcher=args.launcher)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.deploy:
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='SwitchToDeployHook')]
    set_eval_protocol(cfg, 'square' if args.tta else
                      args.eval_protocol or eval_protocol_of(cfg.get('val_dataloader') or {}))
    if args.tta:
        wrap_for_tta(cfg)
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, args.checkpoint)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    try:
        main()
    except CheckpointError as error:  # a checkpoint that is unsafe, broken or does not fit: no traceback
        sys.exit(f'test.py: error: {error}')
