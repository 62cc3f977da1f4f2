"""Save a checkpoint's inference graph (``switch_to_deploy()``) as a checkpoint of its own.

    python tools/deployment/save_deployed.py CONFIG CHECKPOINT --out DEPLOYED.pth [--cfg-options k=v ...]

Load it again with the same config and ``model.deploy=True``, which builds the model in deploy form::

    python tools/test.py CONFIG DEPLOYED.pth --cfg-options model.deploy=True
    python tools/deployment/export_onnx.py CONFIG DEPLOYED.pth --out m.onnx --cfg-options model.deploy=True
"""
import argparse
import io
import sys

import torch
from mmengine.config import DictAction
from mmengine.runner.checkpoint import _load_checkpoint, weights_to_cpu

import yolov7_mmdet  # noqa: F401  (registers the plugin)
from yolov7_mmdet.deployment.export import check_output_file, load_detector, write_output
from yolov7_mmdet.engine.hooks.atomic_checkpoint_hook import RESUME_META_KEYS
from yolov7_mmdet.utils.launch import load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Save the deployed form of a checkpoint')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='training-graph checkpoint')
    parser.add_argument('--out', required=True, help='the deployed checkpoint to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    check_output_file(args.out, inputs=[args.checkpoint, args.config])
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    if cfg.model.get('deploy', False):
        raise ValueError('The config already builds the deployed model (model.deploy=True): '
                         'the checkpoint to convert is a training-graph one.')
    detector = load_detector(cfg, args.checkpoint).switch_to_deploy()
    meta = dict(_load_checkpoint(args.checkpoint, map_location='cpu').get('meta', {}), deployed=True)
    for resume_state in RESUME_META_KEYS:
        meta.pop(resume_state, None)  # an interrupt checkpoint's: a copy of every gradient
    buffer = io.BytesIO()
    torch.save(dict(meta=meta, state_dict=weights_to_cpu(detector.state_dict())), buffer)
    write_output(args.out, buffer.getvalue())
    print(f'Saved the deployed model to {args.out}; load it with --cfg-options model.deploy=True.')
    return args.out


if __name__ == '__main__':
    try:
        main()
    except (ValueError, OSError) as error:  # bad input, a missing file, a full disk: one line
        sys.exit(f'save_deployed.py: error: {error}')
