"""Write a ready YOLOv7 config for your COCO-JSON dataset and print the command that trains it.

    python tools/misc/create_config.py --data data/cards/train.json data/cards/val.json \\
        --model tiny --size 320 --batch 8 --epochs 100 --out configs/custom/cards_tiny.py

Class names and ``num_classes`` come from the JSON files' ``categories`` (both files must list the
same ones); the image folders from the ``info.image_root`` that ``to_coco.py`` writes (or
``--img-dirs``). Everything a user changes is a variable at the top of the written config, and every
other field derives from those variables: the input size of every pipeline (test-time
augmentation included) and of the loss, the batch size of the loader and of the optimizer, the
warmup, the validation interval. The shipped ``configs/yolov7/yolov7_{tiny,l}_custom.py`` are
this script's output for the cards dataset (a test keeps them in sync).
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Sequence, Tuple

from yolov7_mmdet.datasets.sources import load_coco_dict

# Augmentation of the official hyp files per model: (max_translate_ratio, scaling_ratio_range,
# mixup_prob); tiny: hyp.scratch.tiny.yaml, l / x: hyp.scratch.p5.yaml.
MODELS = {
    'tiny': dict(base='yolov7_tiny', schedule='yolov7_tiny_300e', translate=0.1, scale=(0.5, 1.6),
                 mixup=0.05),
    'l': dict(base='yolov7_l', schedule='yolov7_300e', translate=0.2, scale=(0.1, 2.0), mixup=0.15),
    'x': dict(base='yolov7_x', schedule='yolov7_300e', translate=0.2, scale=(0.1, 2.0), mixup=0.15),
}
MAX_STRIDE = 32  # the P5 models above

TEMPLATE = '''\
# yolov7-{model} on your own COCO-JSON dataset (tools/dataset_converters/to_coco.py makes one from
# VOC XML, YOLO txt or COCO), written by tools/misc/create_config.py; docs/custom_dataset.md.
# Change the variables of the first block; every other field derives from them. Edit this file
# rather than inheriting it and re-assigning a variable: mmengine does not re-evaluate the fields
# below in a child config (InputSizeCheckHook then refuses the sizes that disagree).
_base_ = [
    '{configs}/_base_/models/{base}.py',
    '{configs}/_base_/datasets/yolov7_coco.py',
    '{configs}/_base_/schedules/{schedule}.py',
]

# ---------------------------------------------------------------- what you change
train_ann_file = '{train_ann}'  # COCO JSON (to_coco.py --out)
train_img_dir = '{train_img}'  # the folder its file_names are relative to
val_ann_file = '{val_ann}'
val_img_dir = '{val_img}'
classes = {classes}  # in category-id order
img_scale = ({size}, {size})  # (width, height) of every input, a multiple of {max_stride}
train_batch_size_per_gpu = {batch}
max_epochs = {epochs}
# Fine-tune from converted official weights (docs/pretrained.md says how to make them), e.g.
# 'work_dirs/pretrained/yolov7-{model}_mmdet.pth'; None trains from scratch.
load_from = None
auto_anchor = True  # re-fit the anchors to the training boxes when they fit badly (BPR < 0.98)

# ---------------------------------------------------------------- derived from the above
nominal_batch_size = 64  # official: gradients are accumulated to 64 images per optimizer step
val_interval = max(1, max_epochs // 10)  # and after the last epoch
warmup_epochs = min(3, max(1, max_epochs // 10))  # official: 3 (and >= 1000 iterations, dropped)
num_workers = 2

model = dict(bbox_head=dict(num_classes=len(classes), loss=dict(img_size=img_scale[0])))

mosaic_affine = [
    dict(type='YOLOv7Mosaic', img_scale=img_scale, mosaic9_prob=0.2, prob=1.0, pad_val=114.0),
    dict(type='YOLOv7RandomAffine', img_scale=img_scale, max_translate_ratio={translate},
         scaling_ratio_range={scale}, border_val=(114, 114, 114)),
]
train_pipeline = [
    *mosaic_affine,
    dict(type='YOLOv7MixUp', prob={mixup}, alpha=8.0, beta=8.0, pre_transform=mosaic_affine),
    dict(type='YOLOv7HSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param')),
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
             [dict(type='Resize', scale=img_scale, keep_ratio=True)],
             [dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False)],
             [dict(type='LoadAnnotations', with_bbox=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'pad_param', 'flip', 'flip_direction'))],
         ])
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=num_workers,
    dataset=dict(
        dataset=dict(
            type='CocoJSONDataset', data_root='', ann_file=train_ann_file,
            data_prefix=dict(img=train_img_dir), metainfo=dict(classes=classes)),
        pipeline=train_pipeline))
# square letterbox, one image shape (the COCO configs' official rectangular batches are replaced)
val_dataloader = dict(
    batch_sampler=None,
    collate_fn=dict(_delete_=True, type='pseudo_collate'),
    batch_size=train_batch_size_per_gpu,
    num_workers=num_workers,
    dataset=dict(
        type='CocoJSONDataset', data_root='', ann_file=val_ann_file,
        data_prefix=dict(img=val_img_dir), metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=val_ann_file)
test_evaluator = val_evaluator

optim_wrapper = dict(batch_size_per_gpu=train_batch_size_per_gpu,
                     nominal_batch_size=nominal_batch_size)
train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=10),
    param_scheduler=dict(warmup_epochs=warmup_epochs, min_warmup_iters=0),
    checkpoint=dict(save_best='coco/bbox_mAP', rule='greater'))
custom_hooks = _base_.custom_hooks + ([dict(type='AutoAnchorHook')] if auto_anchor else [])
env_cfg = dict(cudnn_benchmark=True)  # fixed-size inputs
sync_bn = 'torch'  # multi-GPU (tools/dist_train.sh); ignored on one GPU or CPU
'''


def categories_of(ann_file: Path) -> Tuple[Tuple[str, ...], str]:
    """``(class names in id order, info.image_root or '')`` of a COCO JSON; errors name the file."""
    coco = load_coco_dict(ann_file)
    categories = sorted(coco.get('categories') or [], key=lambda category: category['id'])
    if not categories:
        raise ValueError(f'{ann_file}: no `categories`; convert it with '
                         'tools/dataset_converters/to_coco.py')
    image_root = (coco.get('info') or {}).get('image_root', '')
    return tuple(str(category['name']) for category in categories), image_root


def as_folder(path: str) -> str:
    """``path`` ending in one ``/`` (mmdet joins ``data_prefix`` and ``file_name`` as strings)."""
    return path.rstrip('/') + '/'


def render_config(*, model: str, train_ann: str, val_ann: str, train_img: str, val_img: str,
                  classes: Sequence[str], size: int, batch: int, epochs: int,
                  configs_dir: str) -> str:
    """The text of a config (see the module docstring).

    Args:
        model: A key of ``MODELS``.
        train_ann, val_ann: The COCO JSON files.
        train_img, val_img: The folders their ``file_name``s are relative to.
        classes: Class names in category-id order.
        size: Input size (a multiple of ``MAX_STRIDE``).
        batch: Images per GPU and iteration.
        epochs: Training epochs.
        configs_dir: The ``configs`` folder, relative to where the config is written.

    Raises:
        ValueError: On an unknown model, a size not divisible by the stride, or a bad count.
    """
    if model not in MODELS:
        raise ValueError(f'--model {model!r}: one of {sorted(MODELS)}')
    if size <= 0 or size % MAX_STRIDE:
        raise ValueError(f'--size {size}: must be a positive multiple of {MAX_STRIDE}')
    if batch <= 0 or epochs <= 0:
        raise ValueError(f'--batch {batch} and --epochs {epochs} must be positive')
    spec = MODELS[model]
    return TEMPLATE.format(
        model=model, configs=configs_dir, base=spec['base'], schedule=spec['schedule'],
        train_ann=train_ann, val_ann=val_ann, train_img=as_folder(train_img), val_img=as_folder(val_img),
        classes=repr(tuple(classes)), size=size, max_stride=MAX_STRIDE, batch=batch, epochs=epochs,
        translate=spec['translate'], scale=spec['scale'], mixup=spec['mixup'])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', nargs=2, required=True, metavar=('TRAIN_JSON', 'VAL_JSON'))
    parser.add_argument('--img-dirs', nargs=2, metavar=('TRAIN_DIR', 'VAL_DIR'),
                        help="image folders (default: the JSON files' info.image_root)")
    parser.add_argument('--model', default='tiny', choices=sorted(MODELS))
    parser.add_argument('--size', type=int, default=640, help='input size (default 640)')
    parser.add_argument('--batch', type=int, default=16, help='images per GPU (default 16)')
    parser.add_argument('--epochs', type=int, default=300, help='default 300')
    parser.add_argument('--out', required=True, help='the config file to write (.py)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks')
    return parser.parse_args(argv)


def create_config(args: argparse.Namespace) -> Path:
    """Write the config of the parsed command line; returns its path."""
    (train_classes, train_root), (val_classes, val_root) = map(categories_of, map(Path, args.data))
    if train_classes != val_classes:
        raise ValueError(f'{args.data[0]} and {args.data[1]} list different categories: '
                         f'{train_classes} vs {val_classes}')
    train_img, val_img = args.img_dirs or (train_root, val_root)
    if not train_img or not val_img:
        raise ValueError('the JSON files do not say where their images are (no info.image_root; '
                         'not written by to_coco.py?): give --img-dirs TRAIN_DIR VAL_DIR')
    out = Path(args.out)
    repo_configs = Path(__file__).resolve().parents[2] / 'configs'
    configs_dir = Path(os.path.relpath(repo_configs, out.resolve().parent)).as_posix()
    text = render_config(model=args.model, train_ann=args.data[0], val_ann=args.data[1],
                         train_img=train_img, val_img=val_img, classes=train_classes,
                         size=args.size, batch=args.batch, epochs=args.epochs,
                         configs_dir=configs_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding='utf-8')
    return out


def main(argv=None) -> Path:
    args = parse_args(argv)
    try:
        out = create_config(args)
    except (OSError, ValueError) as error:
        if args.debug:
            raise
        print(f'error: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    print(f'wrote {out}\ntrain: python tools/train.py {out}\n'
          f'test:  python tools/test.py {out} work_dirs/{out.stem}/best_coco_bbox_mAP_epoch_N.pth')
    return out


if __name__ == '__main__':
    main()
