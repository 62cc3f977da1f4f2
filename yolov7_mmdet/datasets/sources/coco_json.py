"""COCO JSON in and out: the form mmdet's ``CocoDataset`` and ``CocoMetric`` read.

:func:`write_coco_json` is the last step of every converter; :func:`read_coco_json` puts an existing
COCO file through the same checks as the other formats (to clean it before training).
Conventions of the written file: category ids are ``label + 1`` in class order, boxes are
``[x, y, w, h]`` pixels of the decoded image, ignored boxes (VOC ``difficult``) are ``iscrowd: 1``
(mmdet then ignores them in training and COCO evaluation), ``file_name`` is relative to the image
root given (use it as ``data_prefix=dict(img=...)``), which ``info.image_root`` records.
"""
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
from mmengine.logging import print_log

from .class_names import ClassesSource, load_class_names
from .issues import DataIssues
from .records import DetectionData, build_record


def to_coco_dict(data: DetectionData, *, image_root: Union[str, Path]) -> dict:
    """A COCO detection dict of ``data``; image ``file_name``s relative to ``image_root``."""
    images, annotations = [], []
    for image_id, record in enumerate(data.images, start=1):
        images.append(dict(id=image_id, width=record.width, height=record.height,
                           file_name=Path(os.path.relpath(record.path, image_root)).as_posix()))
        # (N, 4) x1, y1, x2, y2 -> (N, 4) x, y, w, h
        xywh = np.concatenate([record.bboxes[:, :2], record.bboxes[:, 2:] - record.bboxes[:, :2]], 1)
        for bbox, label, ignore in zip(xywh.tolist(), record.labels.tolist(), record.ignore.tolist()):
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                    category_id=label + 1, bbox=[round(v, 2) for v in bbox],
                                    area=round(bbox[2] * bbox[3], 2), iscrowd=int(ignore)))
    categories = [dict(id=label + 1, name=name) for label, name in enumerate(data.classes)]
    # info.image_root: where the file_names are relative to (tools/misc/create_config.py reads it)
    info = dict(description='written by yolov7_mmdet', image_root=Path(image_root).as_posix())
    return dict(info=info, images=images, annotations=annotations, categories=categories)


def write_coco_json(data: DetectionData, out_file: Union[str, Path], *,
                    image_root: Union[str, Path]) -> Path:
    """Write :func:`to_coco_dict` to ``out_file`` (folders created); returns the path."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(to_coco_dict(data, image_root=image_root)))
    return out_file


def save_as_coco(data: DetectionData, out_file: Union[str, Path], *, name: str,
                 image_root: Optional[Union[str, Path]] = None) -> str:
    """Write ``data`` as COCO JSON and its issue report, log the warnings once, return a config line.

    The report (every file of every issue case, and the class warnings; see
    :func:`issues_report_path`) is written beside ``out_file`` when there is anything to report.

    Args:
        data (DetectionData): What a reader returned.
        out_file: The JSON file to write.
        name (str): Dataset name for the warning summary.
        image_root (optional): Folder ``file_name``s are relative to; default: the deepest folder
            holding every image.

    Returns:
        str: A ``dataset=dict(type='CocoJSONDataset', ...)`` snippet for a config.

    Raises:
        ValueError: When there is no usable image, no class name, or not a single box.
    """
    if not data.images:
        raise ValueError(f'{name}: no usable image; nothing to write ({data.issues.as_dict()})')
    if not data.classes:
        raise ValueError(f'{name}: no class names (no object found); give them with --classes')
    if data.num_boxes == 0:
        data.issues.log_summary(name)
        raise ValueError(f'{name}: {len(data.images)} images but not a single box of the classes '
                         f'{list(data.classes[:10])}; check --classes (data issues: '
                         f'{data.issues.as_dict()})')
    if image_root is None:
        image_root = os.path.commonpath([record.path.parent for record in data.images])
    out_file = write_coco_json(data, out_file, image_root=image_root)
    warnings = class_warnings(data)
    report = data.issues.report(name) + ''.join(f'\n{warning}' for warning in warnings)
    report_path = issues_report_path(out_file)
    if report:
        report_path.write_text(report + '\n', encoding='utf-8')
        data.issues.log_summary(f'{name} (every file: {report_path})')
    elif report_path.is_file():  # a stale report of an earlier run would mislead
        report_path.unlink()
    for warning in warnings:
        print_log(f'{name}: {warning}', logger='current', level=logging.WARNING)
    # data_root='' so that a base config's data_root (e.g. 'data/coco/') is not prefixed
    return (f"dataset=dict(type='CocoJSONDataset', data_root='', ann_file='{out_file}', "
            f"data_prefix=dict(img='{Path(image_root).as_posix()}/'))  "
            f'# {len(data.images)} images, {data.num_boxes} boxes, {len(data.classes)} '
            f'class{"es" if len(data.classes) != 1 else ""}: '
            f"{', '.join(data.classes[:10])}{', ...' if len(data.classes) > 10 else ''}")


def issues_report_path(out_file: Union[str, Path]) -> Path:
    """Where :func:`save_as_coco` writes the issue report of ``out_file``: ``x.json`` -> ``x.issues.txt``."""
    out_file = Path(out_file)
    return out_file.with_name(f'{out_file.stem}.issues.txt')


def class_warnings(data: DetectionData) -> List[str]:
    """Warnings about the class list: classes without a box, names equal but for case or spaces."""
    counts = np.bincount(np.concatenate([record.labels for record in data.images]).astype(np.int64),
                         minlength=len(data.classes))
    empty = [name for name, count in zip(data.classes, counts) if count == 0]
    warnings = [f'{len(empty)} of {len(data.classes)} classes have no box: {empty} (placeholder '
                'categories, or a wrong --classes?); the model still gets an output for each'] \
        if empty else []
    names_of_key = defaultdict(list)
    for class_name in data.classes:
        names_of_key[class_name.strip().casefold()].append(class_name)
    warnings += [f'class names {names} differ only in case or surrounding spaces: one class '
                 'split in two?' for names in names_of_key.values() if len(names) > 1]
    return warnings


def read_coco_json(ann_file: Union[str, Path], *, image_root: Union[str, Path],
                   classes: Optional[ClassesSource] = None, issues: Optional[DataIssues] = None,
                   decode: bool = True, drop_images_with_bad_boxes: bool = True) -> DetectionData:
    """Read a COCO detection file through the same checks as the other formats.

    Args:
        ann_file: The COCO JSON file.
        image_root: Folder the ``file_name``s are relative to.
        classes (optional): Keep only these classes (by name, any source of
            :func:`load_class_names`); default: every category, in id order.
        issues (DataIssues, optional): Counter to add to (a new one by default).
        decode (bool): Decode every image to catch corrupt files. Defaults to True.
        drop_images_with_bad_boxes (bool): Skip images whose every annotation was dropped (see
            :func:`build_record`). Defaults to True.

    Raises:
        ValueError: Naming ``ann_file``, when it is not JSON, not a COCO dict, or has no categories.
    """
    issues = issues if issues is not None else DataIssues()
    coco = load_coco_dict(Path(ann_file))
    categories = sorted(coco.get('categories') or [], key=lambda category: category['id'])
    if not categories and classes is None:
        raise ValueError(f'{ann_file}: no `categories`, so no class names; give them with --classes')
    names = load_class_names(classes if classes is not None else
                             [category['name'] for category in categories])
    label_of_category = {category['id']: names.index(category['name'])
                         for category in categories if category['name'] in names}

    anns_of_image = defaultdict(list)
    image_ids = {image['id'] for image in coco.get('images', [])}
    for ann in coco.get('annotations', []):
        if ann.get('image_id') in image_ids:
            anns_of_image[ann['image_id']].append(ann)
        else:
            issues.add('malformed_row', source=ann_file)

    records = []
    for image in coco.get('images', []):
        image_path = Path(image_root) / image['file_name']
        anns = anns_of_image[image['id']]
        boxed = [ann for ann in anns if len(ann.get('bbox') or ()) == 4]
        known = [ann for ann in boxed if ann.get('category_id') in label_of_category]
        issues.add('malformed_row', len(anns) - len(boxed), source=image_path)
        issues.add('unknown_class', len(boxed) - len(known), source=image_path)
        # (N, 4) x, y, w, h -> (N, 4) x1, y1, x2, y2
        xywh = np.array([ann['bbox'] for ann in known], dtype=np.float32).reshape(-1, 4)
        size = (image.get('width'), image.get('height'))
        record = build_record(
            image_path,
            bboxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
            labels=np.array([label_of_category[ann['category_id']] for ann in known], np.int64),
            ignore=np.array([bool(ann.get('iscrowd', 0)) for ann in known], dtype=bool),
            issues=issues, annotated_size=size if all(size) else None, decode=decode,
            dropped_before=len(anns) - len(known),
            drop_images_with_bad_boxes=drop_images_with_bad_boxes)
        if record is not None:
            records.append(record)
    return DetectionData(classes=names, images=records, issues=issues)


def load_coco_dict(ann_file: Union[str, Path]) -> dict:
    """The parsed JSON of a COCO file; errors (missing, empty, not JSON, not an object) name it."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f'COCO JSON not found: {ann_file}')
    text = ann_file.read_text(encoding='utf-8')
    if not text.strip():
        raise ValueError(f'{ann_file}: the file is empty')
    try:
        coco = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'{ann_file}: not valid JSON ({error})') from None
    if not isinstance(coco, dict):
        raise ValueError(f'{ann_file}: a COCO file is a JSON object with images, annotations and '
                         f'categories; got a {type(coco).__name__}')
    return coco
