"""Convert an official YOLOv7 checkpoint (github WongKinYiu/yolov7) into a yolov7_mmdet checkpoint.

Usage::

    python tools/model_converters/yolov7_to_mmdet.py yolov7_training.pt yolov7_l_coco.pth [--arch l] [--use-ema]

Reads the released weights and official ``train.py`` / ``strip_optimizer`` checkpoints (whole pickled
modules, fp16 or fp32, with or without optimizer state and EMA) and plain state dicts, without the
official code and without running anything from the file:
:func:`yolov7_mmdet.utils.official_checkpoint.official_state_dict` allows only the official YOLOv7
layers (as inert placeholders), tensors and plain containers, and refuses any other pickled global.

The variant is inferred when ``--arch`` is not given: the file's weights are mapped onto each of the
seven models (built on the meta device with the file's number of classes and aux head or not); exactly
one must take every weight with the right shape, else the tool refuses (none, or ambiguous). The
number of classes is read from the detect layer; the weights are mapped with
:func:`yolov7_mmdet.models.detectors.official_layout.convert_official_state_dict` (every official weight
must find its place) and loaded strictly before saving ``{'state_dict': ..., 'meta': ...}`` for
``load_from`` / ``tools/test.py`` (written atomically; an output that is the input file is refused).
The file's anchors are saved as ``bbox_head.anchors``, so both use them; when they differ from the
config's (the official auto-anchor changed them) one line says so.

Supported: the training graphs (``cfg/training``: ``IDetect`` / ``IAuxDetect``, RepConv unfused), also
without their aux head (lead-only P6 checkpoints: ``meta['aux_head']`` is False, and a training config
loads them non-strictly with a freshly initialised aux head), and the ``cfg/deploy`` graphs (plain
``Detect``: the implicit vectors are written as their identities, 0 and 1, which is exact). Checkpoints
with fused convolutions (after ``Model.fuse()``) are rejected: their BN and RepConv branches are gone.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
from pathlib import Path
from typing import Optional

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import yolov7_mmdet
from yolov7_mmdet.utils.atomic import atomic_write_bytes, refuse_overwriting_inputs
from yolov7_mmdet.models.detectors.official_layout import convert_official_state_dict
from yolov7_mmdet.utils.official_checkpoint import official_state_dict

ARCHS = ('tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e')
P5_ARCHS = ('tiny', 'l', 'x')  # no aux head in any of their graphs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', type=Path, help='official checkpoint or state dict')
    parser.add_argument('dst', type=Path, help='output checkpoint for yolov7_mmdet')
    parser.add_argument('--arch', choices=ARCHS, default=None,
                        help='model variant (default: inferred from the file, see the module docstring)')
    parser.add_argument('--config', type=Path, default=None,
                        help='model config (default: configs/_base_/models/yolov7_<arch>.py); needs --arch')
    parser.add_argument('--use-ema', action='store_true', help="take the checkpoint's 'ema' model")
    return parser.parse_args(argv)


def detect_index(state: dict) -> int:
    """Index of the official detect layer: the one holding ``m.0`` (the first prediction conv)."""
    indices = [int(key.split('.')[1]) for key in state if key.startswith('model.') and '.m.0.' in key]
    if not indices:
        raise ValueError('the official state has no detect layer (no model.{i}.m.0.weight)')
    return max(indices)


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


def model_cfg_for(arch: str, state: dict, config: Optional[Path] = None):
    """The model config of ``arch`` with the file's number of classes, without aux branch if it has none."""
    model_cfg = Config.fromfile(str(config or yolov7_mmdet.config_path(f'_base_/models/yolov7_{arch}.py'))).model
    model_cfg.bbox_head.num_classes = num_classes_of(state)
    if not has_aux_head(state):  # a lead-only checkpoint: the model is built without the aux branch
        model_cfg.neck.aux_taps = False
        model_cfg.bbox_head.aux_in_channels = model_cfg.bbox_head.aux_feat_channels = None
    return model_cfg


def anchors_note(anchors: torch.Tensor, model_cfg) -> Optional[str]:
    """One line when the file's anchors (pixels) are not the config's, else None."""
    config_anchors = torch.tensor(model_cfg.bbox_head.anchors, dtype=torch.float32)
    if torch.equal(anchors, config_anchors):
        return None
    return (f'anchors: the file\'s {_rounded(anchors)} (pixels; changed by the official auto-anchor?) differ '
            f'from the config\'s {_rounded(config_anchors)}: saved as bbox_head.anchors, which tools/test.py and '
            f'load_from use')


def _rounded(anchors: torch.Tensor) -> list:
    return [[[round(value, 2) for value in pair] for pair in level] for level in anchors.tolist()]


def conversions(state: dict, archs, config: Optional[Path] = None) -> tuple[dict, dict]:
    """Try each arch: ``({arch: converted state}, {arch: why it does not fit})``."""
    fits, failures = {}, {}
    for arch in archs:
        try:
            fits[arch] = convert(state, model_cfg_for(arch, state, config))
        except (KeyError, ValueError, RuntimeError) as error:
            failures[arch] = str(error).strip('\'"').splitlines()[0]
    return fits, failures


def convert_file(src: Path, *, arch: Optional[str] = None, config: Optional[Path] = None,
                 use_ema: bool = False) -> tuple[str, dict, dict]:
    """Read ``src`` safely and convert it: ``(arch, official state, converted state)``.

    Raises:
        ValueError: The file fits no variant (or not ``arch``), or more than one.
    """
    state = with_identity_implicit(official_state_dict(src, use_ema=use_ema))
    if arch is not None:
        fits, failures = conversions(state, [arch], config)
        if not fits:
            others, _ = conversions(state, [a for a in ARCHS if a != arch])
            fitting = f'it fits --arch {", ".join(others)}' if others else 'it fits no YOLOv7 variant'
            raise ValueError(f'{src} is not a yolov7-{arch} checkpoint ({failures[arch]}); {fitting}')
        return arch, state, fits[arch]
    fits, failures = conversions(state, ARCHS)
    if len(fits) != 1:
        reason = (f'it fits {", ".join(fits)}: pass --arch' if fits else
                  'it fits no YOLOv7 variant: ' + '; '.join(f'{a}: {why}' for a, why in failures.items()))
        raise ValueError(f'cannot infer the variant of {src}: {reason}')
    (arch, converted), = fits.items()
    return arch, state, converted


def save_atomically(checkpoint: dict, dst: Path) -> None:
    """``torch.save`` to ``dst`` through the project's atomic writer: a failure (a full disk) leaves an
    existing ``dst`` as it was and no partial file."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(str(dst), buffer.getvalue())


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.config is not None and args.arch is None:
        raise SystemExit('--config needs --arch')
    refuse_overwriting_inputs([args.dst], [path for path in (args.src, args.config) if path is not None])
    arch, state, converted = convert_file(args.src, arch=args.arch, config=args.config, use_ema=args.use_ema)
    num_classes, aux = num_classes_of(state), has_aux_head(state)
    save_atomically(dict(state_dict=converted,
                         meta=dict(source=str(args.src), arch=arch, num_classes=num_classes, aux_head=aux)),
                    args.dst)
    note = anchors_note(converted['bbox_head.anchors'], model_cfg_for(arch, state, args.config))
    if note:
        print(note)
    aux_note = '' if arch in P5_ARCHS else ', with aux head' if aux else ', lead head only (no aux head)'
    print(f'{len(state)} official tensors -> {len(converted)} tensors, yolov7-{arch}, {num_classes} classes'
          f'{aux_note}: {args.dst}')


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError, pickle.UnpicklingError) as error:  # a bad file: one line, no traceback
        raise SystemExit(f'yolov7_to_mmdet: {error}') from None
