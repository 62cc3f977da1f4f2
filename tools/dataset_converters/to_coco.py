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

``--classes``: names, or one .txt (a name per line) / .yaml (``names``) / .pbtxt (label map) file,
or ``coco`` (the 80 COCO names). Without it, VOC uses the sorted object names found and COCO the
file's categories; YOLO txt needs it (or ``--data``), since its rows hold class ids only.
"""
import argparse

from yolov7_mmdet.datasets.sources import (read_coco_json, read_data_yaml, read_voc,
                                           read_yolo_txt, save_as_coco, voc_annotation_files)


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--out', required=True, help='COCO JSON file to write')
    common.add_argument('--classes', nargs='+', help='class names, or one .txt/.yaml/.pbtxt file, '
                        'or "coco"')
    common.add_argument('--image-root', help='folder file_names are relative to (coco: in the input '
                        'too); default: the deepest folder holding every image')
    common.add_argument('--no-decode', action='store_true',
                        help='read image headers only (faster; corrupt pixels are not caught)')

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


def read_dataset(args: argparse.Namespace):
    """``(DetectionData, name for the warning)`` of the parsed command line."""
    decode = not args.no_decode
    if args.format == 'voc':
        xml_files = voc_annotation_files(args.ann_dir, args.split)
        return read_voc(xml_files, image_dir=args.img_dir, classes=args.classes,
                        decode=decode), args.ann_dir
    if args.format == 'coco':
        if not args.image_root:
            raise SystemExit('coco needs --image-root (the folder its file_names are relative to)')
        return read_coco_json(args.ann_file, image_root=args.image_root, classes=args.classes,
                              decode=decode), args.ann_file
    if args.data:
        data_yaml = read_data_yaml(args.data)
        if args.split not in data_yaml.splits:
            raise SystemExit(f'{args.data} has no {args.split!r} split ({sorted(data_yaml.splits)})')
        images, classes, name = data_yaml.splits[args.split], data_yaml.names, args.data
    else:
        if not args.classes:
            raise SystemExit('yolo --images needs --classes (YOLO txt rows hold class ids only)')
        images, classes, name = args.images, args.classes, ' '.join(args.images)
    return read_yolo_txt(images, classes=classes, decode=decode), name


def main(argv=None) -> str:
    args = parse_args(argv)
    data, name = read_dataset(args)
    snippet = save_as_coco(data, args.out, name=name, image_root=args.image_root)
    print(snippet)
    return snippet


if __name__ == '__main__':
    main()
