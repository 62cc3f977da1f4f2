"""Convert an official YOLOv7 checkpoint (github WongKinYiu/yolov7) into a yolov7_mmdet checkpoint.

Usage::

    # a plain state dict (torch.save(model.state_dict())): loaded with weights_only=True
    python tools/model_converters/yolov7_to_mmdet.py yolov7_state.pt yolov7_mmdet.pth --arch l

    # an official training checkpoint ({'model': Model, 'ema': ...}) pickles whole modules: it can only
    # be read with the official code importable, and unpickling runs code from the file, so only use
    # files you trust
    python tools/model_converters/yolov7_to_mmdet.py yolov7.pt yolov7_mmdet.pth --arch l \\
        --official-repo /path/to/yolov7 --trust-pickle

The number of classes is read from the checkpoint's detect layer; the model is built from
``configs/_base_/models/yolov7_<arch>.py`` (or ``--config``) on the meta device, the weights are mapped
with :func:`yolov7_mmdet.models.detectors.official_layout.convert_official_state_dict` (which checks
that every official weight finds its place and that the anchors agree) and loaded strictly before
saving ``{'state_dict': ..., 'meta': ...}`` for ``load_from`` / ``tools/test.py``.

Supported: the training graphs (``cfg/training``: ``IDetect`` / ``IAuxDetect``, RepConv unfused), also
without their aux head (lead-only P6 checkpoints: ``meta['aux_head']`` is False, and a training config
loads them non-strictly with a freshly initialised aux head), and the ``cfg/deploy`` graphs (plain
``Detect``: the implicit vectors are written as their identities, 0 and 1, which is exact). Checkpoints
with fused convolutions (after ``Model.fuse()``) are rejected: their BN and RepConv branches are gone.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import yolov7_mmdet
from yolov7_mmdet.models.detectors.official_layout import convert_official_state_dict

ARCHS = ('tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', type=Path, help='official checkpoint or state dict')
    parser.add_argument('dst', type=Path, help='output checkpoint for yolov7_mmdet')
    parser.add_argument('--arch', choices=ARCHS, required=True, help='model variant')
    parser.add_argument('--config', type=Path, default=None,
                        help='model config (default: configs/_base_/models/yolov7_<arch>.py)')
    parser.add_argument('--official-repo', type=Path, default=None,
                        help='official yolov7 checkout, needed to unpickle training checkpoints')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow full unpickling (runs code from the file): trusted files only')
    parser.add_argument('--use-ema', action='store_true', help="take the checkpoint's 'ema' model")
    return parser.parse_args(argv)


def load_official_state(src: Path, *, official_repo: Path | None, trust_pickle: bool,
                        use_ema: bool) -> dict:
    """Read ``src`` and return its official state dict (``model.{i}...`` keys, float32)."""
    if trust_pickle:
        if official_repo is not None:
            sys.path.insert(0, str(official_repo))
        checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    else:
        checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    if isinstance(checkpoint, dict) and ('model' in checkpoint or 'ema' in checkpoint):
        module = checkpoint['ema'] if use_ema and checkpoint.get('ema') is not None else checkpoint['model']
        checkpoint = module.state_dict() if hasattr(module, 'state_dict') else module
    elif isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not any(k.startswith('model.') for k in checkpoint):
        raise ValueError(f'{src} holds no official YOLOv7 state dict (keys model.{{i}}....)')
    return {key: value.float() if value.is_floating_point() else value for key, value in checkpoint.items()}


def detect_index(state: dict) -> int:
    """Index of the official detect layer: the one holding ``m.0`` (the first prediction conv)."""
    return max(int(key.split('.')[1]) for key in state if key.startswith('model.') and '.m.0.' in key)


def num_classes_of(state: dict) -> int:
    """Classes from the first detect conv: ``A * (5 + C)`` outputs, A from the anchor grid."""
    detect = detect_index(state)
    out_channels = state[f'model.{detect}.m.0.weight'].shape[0]
    num_anchors = state[f'model.{detect}.anchor_grid'].shape[2] if f'model.{detect}.anchor_grid' in state else 3
    return out_channels // num_anchors - 5


def with_identity_implicit(state: dict) -> dict:
    """A ``cfg/deploy`` checkpoint (plain ``Detect``) as an ``IDetect`` one: ImplicitA = 0, ImplicitM = 1.

    The two graphs then compute the same function, so the result loads into the training-graph model.
    """
    detect = detect_index(state)
    if any(key.startswith(f'model.{detect}.ia.') for key in state):
        return state
    completed = dict(state)
    level = 0
    while f'model.{detect}.m.{level}.weight' in state:
        out_channels, in_channels = state[f'model.{detect}.m.{level}.weight'].shape[:2]
        completed[f'model.{detect}.ia.{level}.implicit'] = torch.zeros(1, in_channels, 1, 1)
        completed[f'model.{detect}.im.{level}.implicit'] = torch.ones(1, out_channels, 1, 1)
        level += 1
    return completed


def has_aux_head(state: dict) -> bool:
    """Whether the checkpoint holds an ``IAuxDetect`` aux head (``*_training.pt`` of the P6 models)."""
    return any(key.startswith(f'model.{detect_index(state)}.m2.') for key in state)


def convert(state: dict, model_cfg) -> dict:
    """Build the model of ``model_cfg`` (meta device) and return the loaded, converted state dict."""
    init_default_scope('mmdet')
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    converted = convert_official_state_dict(state, model)
    model.load_state_dict(converted, strict=True, assign=True)  # proves the keys and shapes fit
    return converted


def main(argv=None) -> None:
    args = parse_args(argv)
    state = load_official_state(args.src, official_repo=args.official_repo, trust_pickle=args.trust_pickle,
                                use_ema=args.use_ema)
    config = args.config or yolov7_mmdet.config_path(f'_base_/models/yolov7_{args.arch}.py')
    model_cfg = Config.fromfile(str(config)).model
    model_cfg.bbox_head.num_classes = num_classes_of(state)
    aux = has_aux_head(state)
    if not aux:  # a lead-only checkpoint: the model is built without the aux branch
        model_cfg.neck.aux_taps = False
        model_cfg.bbox_head.aux_in_channels = model_cfg.bbox_head.aux_feat_channels = None
    converted = convert(with_identity_implicit(state), model_cfg)
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(state_dict=converted,
                    meta=dict(source=str(args.src), arch=args.arch, num_classes=model_cfg.bbox_head.num_classes,
                              aux_head=aux)),
               args.dst)
    print(f'{len(state)} official tensors -> {len(converted)} tensors, {model_cfg.bbox_head.num_classes} '
          f'classes: {args.dst}')


if __name__ == '__main__':
    main()
