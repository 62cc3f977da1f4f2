"""Train a detector with YOLOv7 components; the flags are mmdet 3.3's ``tools/train.py``.

    python tools/train.py configs/yolov7/yolov7_tiny_8xb16-300e_coco.py [--amp [--amp-dtype bfloat16]] [--resume [CKPT]]

Ctrl-C or SIGTERM saves ``iter_<N>.pth`` after the iteration in progress and exits with 130 / 143;
``--resume`` continues from it exactly. A broken, unsafe or misfitting checkpoint and a diverged run
end with one ``train.py: error: ...`` line (docs/threat_model.md).
"""
import argparse
import os
import sys

from mmengine.config import DictAction

import yolov7_mmdet  # noqa: F401  (registers the plugin; lets torch load our checkpoints)
from mmdet.utils import setup_cache_size_limit_of_dynamo
from yolov7_mmdet.engine.hooks import NonFiniteLossError, TrainingInterrupted
from yolov7_mmdet.utils.checkpoint import CheckpointError
from yolov7_mmdet.utils.launch import build_runner, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument('--amp-dtype', choices=('float16', 'bfloat16'), default='float16',
                        help='the autocast type of --amp; the loss always runs in float32')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir when CKPT is omitted')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_dataloader.batch_size=4')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg, dtype: str = 'float16') -> None:
    if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print('AMP is already enabled in the config.')
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.optim_wrapper.dtype = dtype


def enable_auto_scale_lr(cfg) -> None:
    auto_scale_lr = cfg.get('auto_scale_lr', None)
    if not auto_scale_lr or 'base_batch_size' not in auto_scale_lr:
        raise RuntimeError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config.')
    cfg.auto_scale_lr.enable = True


def apply_resume(cfg, resume: str) -> None:
    cfg.resume = True
    cfg.load_from = None if resume == 'auto' else resume


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args.config, cfg_options=args.cfg_options, work_dir=args.work_dir,
                      launcher=args.launcher)
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if args.resume is not None:
        apply_resume(cfg, args.resume)
    runner = build_runner(cfg)
    try:
        runner.train()
    finally:  # an error skips after_train: give SIGINT / SIGTERM back to their previous handlers
        for hook in runner.hooks:
            if hasattr(hook, 'restore_signal_handlers'):
                hook.restore_signal_handlers()


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, NonFiniteLossError) as error:  # the message says all: no traceback
        sys.exit(f'train.py: error: {error}')
    except TrainingInterrupted as interrupt:  # the checkpoint it saved is already logged
        sys.exit(interrupt.exit_status)
