"""Convert VOC XML or YOLO txt to COCO JSON for ``CocoJSONDataset``, or clean a COCO JSON.

Every command reads its format, skips or repairs dirty data (counted in one warning; see
``docs/datasets.md``), writes COCO JSON and prints a ``dataset=dict(...)`` line for a config.

    # Pascal VOC devkit (bccd): Annotations/ + JPEGImages/ + ImageSets/Main/<split>.txt
    python tools/dataset_converters/to_coco.py voc bccd/Annotations --img-dir bccd/JPEGImages \\
        --split bccd/ImageSets/Main/train.txt --out data/bccd/train.json
    # VOC XML beside each image, class order from a TF label map (cards)
    python tools/dataset_converters/to_coco.py voc cards/images/train \\
        --classes cards/training/labelmap.pbtxt --out data/cards/train.json
    # YOLO txt from the data yaml of the official repo (train/val/test entries, names)
    python tools/dataset_converters/to_coco.py yolo --data data/custom.yaml --split val --out val.json
    # YOLO txt from an image folder (labels in the sibling labels/ folder) and a class list
    python tools/dataset_converters/to_coco.py yolo --images coco128/images/train --classes coco \\
        --out data/coco128/train.json
    # an existing COCO JSON through the same checks
    python tools/dataset_converters/to_coco.py coco instances_train2017.json \\
        --image-root data/coco/train2017 --out data/coco/train2017_clean.json
    # a one-folder dataset split 80/20, stratified by class: data/raccoon/{train,val}.json
    python tools/dataset_converters/to_coco.py voc raccoon/annotations --img-dir raccoon/images \\
        --val-fraction 0.2 --seed 0 --out data/raccoon

``--classes``: names (one name is fine: ``--classes kangaroo``), or one .txt (a name per line) /
.yaml (``names``) / .pbtxt (label map) file, or ``coco`` (the 80 COCO names). Without it, VOC uses
the sorted object names found and COCO the file's categories; YOLO txt needs it (or ``--data``),
since its rows hold class ids only.

``--out`` is the COCO JSON file to write (``.json``); with ``--val-fraction F`` it is a folder that
gets ``train.json`` and ``val.json`` (a fraction F of the images, stratified by each image's rarest
class; the same for the same ``--seed``) and one ``issues.txt``. Outputs are written all together
or not at all (a failed run leaves every earlier output as it was), and an output that is one of
the inputs (the same file by any path or link) is refused.

Every skipped or repaired file is listed in ``<out>.issues.txt`` beside the output (the warning
names the first few). Images whose every box was dropped are skipped unless
``--no-drop-images-with-bad-boxes``. A mistake on the command line or in the input (missing file, bad
yaml, ``nc`` that does not match ``names``, no box at all) prints one ``error:`` line and exits with
status 2; ``--debug`` shows the traceback instead.
"""
import argparse
import sys
from pathlib import Path
from typing import List

from yolov7_mmdet.datasets.sources import (SPLIT_FILES, SPLIT_REPORT, issues_report_path,
                                           printable, read_coco_json, read_data_yaml, read_voc,
                                           read_yolo_txt, refuse_overwriting_inputs, save_as_coco,
                                           save_split_as_coco, voc_annotation_files,
                                           yolo_label_path)


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--out', required=True, help='COCO JSON file to write (.json); with '
                        '--val-fraction, the folder that gets train.json and val.json')
    common.add_argument('--val-fraction', type=float, help='split the images into train.json and '
                        'val.json, this fraction for val, stratified by class')
    common.add_argument('--seed', type=int, help='seed of the --val-fraction split (default: 0)')
    common.add_argument('--classes', nargs='+', help='class names, or one .txt/.yaml/.pbtxt file, '
                        'or "coco"')
    common.add_argument('--image-root', help='folder file_names are relative to (coco: in the input '
                        'too); default: the deepest folder holding every image')
    common.add_argument('--no-decode', action='store_true',
                        help='read image headers only (faster, but truncated or corrupt images are '
                        'not caught here; training then stops at the first one)')
    common.add_argument('--drop-images-with-bad-boxes', action=argparse.BooleanOptionalAction,
                        default=True, help='skip images whose every box was dropped (unknown class, '
                        'bad coordinates) instead of keeping them as background images, which '
                        'would teach that their objects are not there (default: skip; '
                        '--no-drop-images-with-bad-boxes keeps them)')
    common.add_argument('--debug', action='store_true',
                        help='show the traceback of an error instead of one line')

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    formats = parser.add_subparsers(dest='format', required=True)
    voc = formats.add_parser('voc', parents=[common], help='Pascal VOC XML')
    voc.add_argument('ann_dir', help='folder of the .xml files')
    voc.add_argument('--split', help='text file of image ids, one per line (default: every XML)')
    voc.add_argument('--img-dir', help='folder of the images (default: beside each XML file)')
    yolo = formats.add_parser('yolo', parents=[common], help='YOLO txt')
    source = yolo.add_mutually_exclusive_group(required=True)
    source.add_argument('--data', help='YOLO data yaml (train/val/test, names)')
    source.add_argument('--images', nargs='+', help='image folders or .txt image lists')
    yolo.add_argument('--split', default='train', help='split of --data (default: train)')
    coco = formats.add_parser('coco', parents=[common], help='COCO JSON (clean a copy)')
    coco.add_argument('ann_file', help='COCO JSON to check (needs --image-root)')
    args = parser.parse_args(argv)
    if args.classes and len(args.classes) == 1:
        args.classes = args.classes[0]  # one value: a file, an alias, or a single class name
    return args


class UsageError(ValueError):
    """A command line that cannot work (reported in one line, exit status 2)."""


def output_files(args: argparse.Namespace) -> List[Path]:
    """The files the command line would write (the issue report included); checks ``--out``."""
    out = Path(args.out)
    if args.val_fraction is None:
        if args.seed is not None:
            raise UsageError('--seed seeds the --val-fraction split; without --val-fraction it '
                             'does nothing')
        if out.suffix.lower() != '.json':
            raise UsageError(f'--out {out} is not a .json file (with --val-fraction, --out is a '
                             'folder)')
        return [out, issues_report_path(out)]
    if not 0 < args.val_fraction < 1:
        raise UsageError(f'--val-fraction must be between 0 and 1, got {args.val_fraction}')
    if out.suffix.lower() == '.json' or out.is_file():
        raise UsageError(f'with --val-fraction, --out is a folder that gets '
                         f'{" and ".join(SPLIT_FILES)}; got the file {out}')
    return [out / name for name in (*SPLIT_FILES, SPLIT_REPORT)]


def command_line_inputs(args: argparse.Namespace) -> List[Path]:
    """The input files named on the command line (folders and class names are harmless)."""
    files = [args.classes] if isinstance(args.classes, str) else []
    if args.format == 'voc':
        files += [args.split] if args.split else []
    elif args.format == 'coco':
        files.append(args.ann_file)
    else:
        files += [args.data] if args.data else list(args.images)
    return [Path(file) for file in files]


def read_dataset(args: argparse.Namespace):
    """``(DetectionData, name for the warning, annotation files read)`` of the command line."""
    options = dict(decode=not args.no_decode,
                   drop_images_with_bad_boxes=args.drop_images_with_bad_boxes)
    if args.format == 'voc':
        if args.split and not Path(args.split).is_file():
            raise FileNotFoundError(f'split file not found: {args.split}')
        xml_files = voc_annotation_files(args.ann_dir, args.split)
        if not xml_files:
            raise FileNotFoundError(f'no .xml file in {args.ann_dir}')
        data = read_voc(xml_files, image_dir=args.img_dir, classes=args.classes, **options)
        return data, args.ann_dir, xml_files
    if args.format == 'coco':
        if not args.image_root:
            raise UsageError('coco needs --image-root (the folder its file_names are relative to)')
        return read_coco_json(args.ann_file, image_root=args.image_root, classes=args.classes,
                              **options), args.ann_file, []
    if args.data:
        data_yaml = read_data_yaml(args.data)
        if args.split not in data_yaml.splits:
            raise UsageError(f'{args.data} has no {args.split!r} split ({sorted(data_yaml.splits)})')
        images, classes, name = data_yaml.splits[args.split], data_yaml.names, args.data
    else:
        if not args.classes:
            raise UsageError('yolo --images needs --classes (YOLO txt rows hold class ids only)')
        images, classes, name = args.images, args.classes, ' '.join(args.images)
    data = read_yolo_txt(images, classes=classes, **options)
    return data, name, [yolo_label_path(record.path) for record in data.images]


def convert(args: argparse.Namespace) -> str:
    """Read, check and write the dataset of the parsed command line; returns the config lines.

    An output that is an input is refused twice: against the files named on the command line
    before reading (fast), against every annotation and image file read before writing.
    """
    outputs = output_files(args)
    refuse_overwriting_inputs(outputs, command_line_inputs(args))
    data, name, annotations = read_dataset(args)
    refuse_overwriting_inputs(outputs, annotations + [record.path for record in data.images])
    if args.val_fraction is None:
        return save_as_coco(data, args.out, name=name, image_root=args.image_root)
    return save_split_as_coco(data, args.out, val_fraction=args.val_fraction, seed=args.seed or 0,
                              name=name, image_root=args.image_root)


def main(argv=None) -> str:
    """Run the command line; a usage or data error prints one line and exits with status 2."""
    args = parse_args(argv)
    try:
        snippet = convert(args)
    except (OSError, ValueError, KeyError) as error:
        if args.debug:
            raise
        message = str(error) if not isinstance(error, KeyError) else f'missing key {error}'
        print(f'error: {printable(message)}  (--debug shows the traceback)', file=sys.stderr)
        raise SystemExit(2) from None
    print(snippet)
    return snippet


if __name__ == '__main__':
    main()
