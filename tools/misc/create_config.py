"""Write a ready YOLOv7 config for your COCO-JSON dataset and print what its training will do.

    python tools/misc/create_config.py --data data/cards/train.json data/cards/val.json \\
        --model tiny --size 320 --batch 8 --epochs 100 --out configs/custom/cards_tiny.py

The config is a copy of the one template, ``configs/yolov7/yolov7_tiny_custom.py``, with the
variables of its first block set: the model's base configs, the data files (absolute, so that the
config works from any folder and after a move), the classes (from the JSON files' ``categories``;
every file must list the same ones), the input size, batch, epochs and schedule knobs. The image
folders come from the ``info.image_root`` that ``to_coco.py`` writes (a relative one is taken from
the current folder) or ``--img-dirs``. ``_base_`` names the installed package's configs
(``yolov7_mmdet.config_path``). Every value is written as a Python literal (``repr``); before the
tool reports success the written text is parsed back and must be the template with exactly these
literals, and it is loaded with mmengine, whose values must be the ones given; only then is the file
written (atomically). Data whose strings mmengine would substitute (``{{ ... }}``) is refused.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from mmengine.config import Config

from yolov7_mmdet import config_path
from yolov7_mmdet.datasets.sources import load_coco_dict
from yolov7_mmdet.engine.hooks import ScheduleSummary, atomic_write_bytes, schedule_of_config

TEMPLATE = 'yolov7/yolov7_tiny_custom.py'  # below configs/
# The base configs of each model: the model, its dataset base (the augmentation of its official
# hyp file: hyp.scratch.tiny.yaml for tiny, hyp.scratch.p5.yaml for l and x) and its schedule.
MODELS = {
    'tiny': ('models/yolov7_tiny.py', 'datasets/yolov7_coco_tiny.py',
             'schedules/yolov7_tiny_300e.py'),
    'l': ('models/yolov7_l.py', 'datasets/yolov7_coco.py', 'schedules/yolov7_300e.py'),
    'x': ('models/yolov7_x.py', 'datasets/yolov7_coco.py', 'schedules/yolov7_300e.py'),
}
MAX_STRIDE = 32  # the P5 models above
HEADER = f'# Written by tools/misc/create_config.py from configs/{TEMPLATE}.\n'
LINE_WIDTH = 100


def template_text() -> str:
    return Path(config_path(TEMPLATE)).read_text(encoding='utf-8')


def literal(value: Any, prefix_width: int) -> str:
    """``value`` as Python source made by ``repr``; a list or tuple too long for the line of
    ``prefix_width`` characters is written one element per line."""
    text = repr(value)
    if len(text) + prefix_width <= LINE_WIDTH or not isinstance(value, (list, tuple)) or not value:
        return text
    brackets = '[]' if isinstance(value, list) else '()'
    return brackets[0] + '\n' + ''.join(f'    {item!r},\n' for item in value) + brackets[1]


def assigned_name(stmt: ast.stmt) -> Optional[str]:
    """``name`` of a ``name = value`` statement, else None."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0],
                                                                             ast.Name):
        return stmt.targets[0].id
    return None


def render_config(template: str, values: Dict[str, Any]) -> str:
    """``template`` with the value of each top-level assignment named in ``values`` replaced by
    that value's literal, under :data:`HEADER`.

    Raises:
        ValueError: If the template does not assign one of the names.
    """
    lines = template.splitlines(keepends=True)
    nodes = {assigned_name(stmt): stmt for stmt in ast.parse(template).body
             if assigned_name(stmt) in values}
    missing = sorted(set(values) - set(nodes))
    if missing:
        raise ValueError(f'the template configs/{TEMPLATE} does not set {missing}')
    # from the last statement up, so that the earlier ones keep their line numbers
    for name, stmt in sorted(nodes.items(), key=lambda item: item[1].lineno, reverse=True):
        node = stmt.value
        first = lines[node.lineno - 1].encode()  # ast offsets are UTF-8 byte offsets
        last = lines[node.end_lineno - 1].encode()
        before, after = first[:node.col_offset].decode(), last[node.end_col_offset:].decode()
        lines[node.lineno - 1:node.end_lineno] = [
            before + literal(values[name], len(before)) + after]
    return HEADER + ''.join(lines)


def is_literal(node: ast.expr, value: Any) -> bool:
    """Whether ``node`` is a literal (no name, call or operator) that evaluates to ``value``."""
    try:
        return ast.literal_eval(node) == value
    except ValueError:  # not a literal
        return False


def load_checked(text: str, template: str, values: Dict[str, Any], folder: Path) -> Config:
    """Prove that ``text`` is ``template`` with exactly ``values`` as literals, so that nothing of
    the data can run, then load it with mmengine (from a temporary file in ``folder``, the output's)
    and check that it reads those values unchanged.

    Raises:
        ValueError: If a value would be substituted by mmengine or the check fails otherwise.
    """
    for name, value in values.items():
        if '{{' in repr(value):
            raise ValueError(f'{name} = {value!r} holds "{{{{", which mmengine substitutes when '
                             'it loads a config; rename the file or folder')
    written, expected = ast.parse(text).body, ast.parse(template).body
    if len(written) != len(expected):
        raise ValueError('the written config has other statements than its template')
    for stmt, template_stmt in zip(written, expected):
        name = assigned_name(stmt)
        if name in values and name == assigned_name(template_stmt):
            if not is_literal(stmt.value, values[name]):
                raise ValueError(f'{name} was not written as the literal {values[name]!r}')
        elif ast.dump(stmt) != ast.dump(template_stmt):
            raise ValueError(f'line {stmt.lineno} of the written config differs from its template')
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile('w', encoding='utf-8', suffix='.py', prefix='.',
                                     dir=folder) as file:
        file.write(text)
        file.flush()
        cfg = Config.fromfile(file.name)  # where relative _base_ paths resolve as in the output
    for name, value in values.items():
        if name != '_base_' and cfg[name] != value:
            raise ValueError(f'mmengine reads {name} as {cfg[name]!r}, not {value!r}')
    return cfg


def read_split(ann_file: str, img_dir: Optional[str]) -> Tuple[Tuple[str, ...], str, int]:
    """``(class names in id order, absolute image folder ending in '/', image count)`` of a COCO
    JSON; the folder is ``img_dir`` or the file's ``info.image_root``. Errors name the file."""
    coco = load_coco_dict(ann_file)
    categories = coco.get('categories') or []
    if not categories:
        raise ValueError(f'{ann_file}: no `categories`; convert it with '
                         'tools/dataset_converters/to_coco.py')
    if not isinstance(categories, list) or not all(
            isinstance(category, dict) and isinstance(category.get('id'), int)
            and isinstance(category.get('name'), str) for category in categories):
        raise ValueError(f'{ann_file}: `categories` must be a list of {{"id": int, "name": str}}; '
                         'convert it with tools/dataset_converters/to_coco.py')
    categories = sorted(categories, key=lambda category: category['id'])
    images = coco.get('images') or []
    if not isinstance(images, list):
        raise ValueError(f'{ann_file}: `images` must be a list')
    info = coco.get('info')
    img_dir = img_dir or (info.get('image_root') if isinstance(info, dict) else None)
    if not img_dir or not isinstance(img_dir, str):
        raise ValueError(f'{ann_file} does not say where its images are (no info.image_root; not '
                         'written by to_coco.py?): give the folder (--img-dirs, --test-img-dir)')
    classes = tuple(category['name'] for category in categories)
    return classes, os.path.abspath(img_dir) + '/', len(images)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', nargs=2, required=True, metavar=('TRAIN_JSON', 'VAL_JSON'))
    parser.add_argument('--img-dirs', nargs=2, metavar=('TRAIN_DIR', 'VAL_DIR'),
                        help="image folders (default: the JSON files' info.image_root)")
    parser.add_argument('--test', metavar='TEST_JSON',
                        help='what tools/test.py evaluates, e.g. the test split of a Roboflow '
                             'export (default: the validation files)')
    parser.add_argument('--test-img-dir', help="its image folder (default: its info.image_root)")
    parser.add_argument('--model', default='tiny', choices=sorted(MODELS))
    parser.add_argument('--size', type=int, default=640, help='input size (default 640)')
    parser.add_argument('--batch', type=int, default=16, help='images per GPU (default 16)')
    parser.add_argument('--epochs', type=int, default=300, help='default 300')
    parser.add_argument('--nominal-batch', type=int, default=64,
                        help='images per optimizer step, reached by summing the gradients of '
                             'several iterations (default 64, the official recipe; a smaller one, '
                             'e.g. --batch, is a departure from it that gives a small dataset more '
                             'steps)')
    parser.add_argument('--warmup-iters', type=int,
                        help='warmup iterations (default: min(3, max(1, epochs // 10)) epochs; the '
                             'official recipe warms up for max(3 epochs, 1000 iterations))')
    parser.add_argument('--out', required=True, help='the config file to write (.py)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def check_numbers(args: argparse.Namespace) -> None:
    if args.size <= 0 or args.size % MAX_STRIDE:
        raise ValueError(f'--size {args.size}: must be a positive multiple of {MAX_STRIDE}')
    for flag, value in (('--batch', args.batch), ('--epochs', args.epochs),
                        ('--nominal-batch', args.nominal_batch)):
        if value <= 0:
            raise ValueError(f'{flag} {value}: must be positive')
    if args.warmup_iters is not None and args.warmup_iters < 0:
        raise ValueError(f'--warmup-iters {args.warmup_iters}: must be >= 0')


def config_values(args: argparse.Namespace) -> Tuple[Dict[str, Any], int]:
    """The template variables of the command line, and the number of training images."""
    check_numbers(args)
    train_dir, val_dir = args.img_dirs or (None, None)
    splits = [(args.data[0], train_dir), (args.data[1], val_dir)]
    if args.test:
        splits.append((args.test, args.test_img_dir))
    (classes, train_img, num_images), *others = [read_split(*split) for split in splits]
    for (ann_file, _), (other_classes, _, _) in zip(splits[1:], others):
        if other_classes != classes:
            raise ValueError(f'{args.data[0]} and {ann_file} list different categories: '
                             f'{classes} vs {other_classes}')
    inputs = {os.path.abspath(ann_file) for ann_file, _ in splits}
    if os.path.abspath(args.out) in inputs:
        raise ValueError(f'--out {args.out} is one of the input files')
    test_ann, test_img = ((os.path.abspath(args.test), others[1][1]) if args.test else (None, None))
    values = dict(
        _base_=[config_path(f'_base_/{base}') for base in MODELS[args.model]],
        train_ann_file=os.path.abspath(args.data[0]), train_img_dir=train_img,
        val_ann_file=os.path.abspath(args.data[1]), val_img_dir=others[0][1],
        test_ann_file=test_ann, test_img_dir=test_img, classes=classes,
        img_scale=(args.size, args.size), train_batch_size_per_gpu=args.batch,
        max_epochs=args.epochs, nominal_batch_size=args.nominal_batch,
        warmup_iters=args.warmup_iters)
    return values, num_images


def create_config(args: argparse.Namespace) -> Tuple[Path, ScheduleSummary]:
    """Write the config of the parsed command line; returns its path and its schedule's summary."""
    values, num_images = config_values(args)
    template = template_text()
    text = render_config(template, values)
    out = Path(args.out)
    cfg = load_checked(text, template, values, out.parent)
    schedule = schedule_of_config(cfg, dataset_size=num_images)
    atomic_write_bytes(str(out), text.encode('utf-8'))
    return out, ScheduleSummary.of(schedule)


def schedule_report(summary: ScheduleSummary) -> str:
    """The summary, and a warning with the flags that fix its problems."""
    report = f'schedule on one GPU: {summary.describe()}'
    warning = summary.warning(nominal_batch='--nominal-batch {}', warmup_iters='--warmup-iters {}')
    return report + (f'\nwarning: {warning}' if warning else '')


def main(argv=None) -> Path:
    args = parse_args(argv)
    try:
        out, summary = create_config(args)
    except (OSError, ValueError) as error:
        if args.debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    print(f'wrote {out}\n{schedule_report(summary)}\n'
          f'train: python tools/train.py {out}\n'
          f'test:  python tools/test.py {out} work_dirs/{out.stem}/best_coco_bbox_mAP_epoch_N.pth')
    return out


if __name__ == '__main__':
    main()
