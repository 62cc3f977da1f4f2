"""COCO JSON in and out: the form mmdet's ``CocoDataset`` and ``CocoMetric`` read.

:func:`write_coco_json` is the last step of every converter; :func:`read_coco_json` puts an existing
COCO file through the same checks as the other formats (to clean it before training).
Conventions of the written file: category ids are ``label + 1`` in class order, boxes are
``[x, y, w, h]`` pixels of the decoded image, ignored boxes (VOC ``difficult``) are ``iscrowd: 1``
(mmdet then ignores them in training and COCO evaluation), ``file_name`` is relative to the image
root given (use it as ``data_prefix=dict(img=...)``).
"""
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Optional, Union

import numpy as np

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
    return dict(images=images, annotations=annotations, categories=categories)


def write_coco_json(data: DetectionData, out_file: Union[str, Path], *,
                    image_root: Union[str, Path]) -> Path:
    """Write :func:`to_coco_dict` to ``out_file`` (folders created); returns the path."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(to_coco_dict(data, image_root=image_root)))
    return out_file


def save_as_coco(data: DetectionData, out_file: Union[str, Path], *, name: str,
                 image_root: Optional[Union[str, Path]] = None) -> str:
    """Write ``data`` as COCO JSON, log its issue summary once, and return a dataset config.

    Args:
        data (DetectionData): What a reader returned.
        out_file: The JSON file to write.
        name (str): Dataset name for the warning summary.
        image_root (optional): Folder ``file_name``s are relative to; default: the deepest folder
            holding every image.

    Returns:
        str: A ``dataset=dict(type='CocoJSONDataset', ...)`` snippet for a config.
    """
    if not data.images:
        raise ValueError(f'{name}: no usable image; nothing to write ({data.issues.as_dict()})')
    if not data.classes:
        raise ValueError(f'{name}: no class names (no object found); give them with --classes')
    if image_root is None:
        image_root = os.path.commonpath([record.path.parent for record in data.images])
    out_file = write_coco_json(data, out_file, image_root=image_root)
    data.issues.log_summary(name)
    # data_root='' so that a base config's data_root (e.g. 'data/coco/') is not prefixed
    return (f"dataset=dict(type='CocoJSONDataset', data_root='', ann_file='{out_file}', "
            f"data_prefix=dict(img='{Path(image_root).as_posix()}/'))  "
            f'# {len(data.images)} images, {data.num_boxes} boxes, {len(data.classes)} '
            f'class{"es" if len(data.classes) != 1 else ""}: '
            f"{', '.join(data.classes[:10])}{', ...' if len(data.classes) > 10 else ''}")


def read_coco_json(ann_file: Union[str, Path], *, image_root: Union[str, Path],
                   classes: Optional[ClassesSource] = None, issues: Optional[DataIssues] = None,
                   decode: bool = True) -> DetectionData:
    """Read a COCO detection file through the same checks as the other formats.

    Args:
        ann_file: The COCO JSON file.
        image_root: Folder the ``file_name``s are relative to.
        classes (optional): Keep only these classes (by name, any source of
            :func:`load_class_names`); default: every category, in id order.
        issues (DataIssues, optional): Counter to add to (a new one by default).
        decode (bool): Decode every image to catch corrupt files. Defaults to True.
    """
    issues = issues if issues is not None else DataIssues()
    coco = json.loads(Path(ann_file).read_text())
    categories = sorted(coco.get('categories', []), key=lambda category: category['id'])
    names = load_class_names(classes if classes is not None else
                             [category['name'] for category in categories])
    label_of_category = {category['id']: names.index(category['name'])
                         for category in categories if category['name'] in names}

    anns_of_image = defaultdict(list)
    image_ids = {image['id'] for image in coco.get('images', [])}
    for ann in coco.get('annotations', []):
        if ann.get('image_id') in image_ids and len(ann.get('bbox') or ()) == 4:
            anns_of_image[ann['image_id']].append(ann)
        else:
            issues.add('malformed_row')

    records = []
    for image in coco.get('images', []):
        anns = anns_of_image[image['id']]
        known = [ann for ann in anns if ann.get('category_id') in label_of_category]
        issues.add('unknown_class', len(anns) - len(known))
        # (N, 4) x, y, w, h -> (N, 4) x1, y1, x2, y2
        xywh = np.array([ann['bbox'] for ann in known], dtype=np.float32).reshape(-1, 4)
        size = (image.get('width'), image.get('height'))
        record = build_record(
            Path(image_root) / image['file_name'],
            bboxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
            labels=np.array([label_of_category[ann['category_id']] for ann in known], np.int64),
            ignore=np.array([bool(ann.get('iscrowd', 0)) for ann in known], dtype=bool),
            issues=issues, annotated_size=size if all(size) else None, decode=decode)
        if record is not None:
            records.append(record)
    return DetectionData(classes=names, images=records, issues=issues)
