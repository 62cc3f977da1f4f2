"""COCO JSON in and out: the form mmdet's ``CocoDataset`` and ``CocoMetric`` read.

:func:`save_as_coco` (or :func:`save_split_as_coco`) is the last step of every converter;
:func:`read_coco_json` puts an existing COCO file through the same checks as the other formats (to
clean it before training). Conventions of the written file: category ids are ``label + 1`` in class
order, boxes are ``[x, y, w, h]`` pixels of the decoded image, ignored boxes (VOC ``difficult``)
are ``iscrowd: 1`` (mmdet then ignores them in training and COCO evaluation), ``file_name`` is
relative to the image root given (use it as ``data_prefix=dict(img=...)``), which
``info.image_root`` records. Every output (JSON files and issue report) is encoded in full before
anything is written, then written all together or not at all (:func:`write_all_or_nothing`).
"""
import json
import logging
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from .class_names import ClassesSource, load_class_names
from .issues import DataIssues
from .output_files import write_all_or_nothing
from .records import DetectionData, build_record, unique_images
from .split import box_counts, split_by_class, split_class_warnings
from .text_files import load_json, printable

SPLIT_FILES = ('train.json', 'val.json')  # what save_split_as_coco writes into its folder
SPLIT_REPORT = 'issues.txt'  # and the issue report of the whole dataset beside them


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


def coco_json_bytes(data: DetectionData, *, image_root: Union[str, Path]) -> bytes:
    """:func:`to_coco_dict` as JSON bytes; ASCII (``ensure_ascii``), so the bytes of a non-UTF-8
    file name are written as ``\\udcXX`` escapes, which Python reads back to the same name."""
    return json.dumps(to_coco_dict(data, image_root=image_root)).encode('ascii')


def write_coco_json(data: DetectionData, out_file: Union[str, Path], *,
                    image_root: Union[str, Path]) -> Path:
    """Write :func:`to_coco_dict` to ``out_file`` atomically (folders created), without the checks
    and the report of :func:`save_as_coco`; returns the path."""
    out_file = Path(out_file)
    write_all_or_nothing({out_file: coco_json_bytes(data, image_root=image_root)})
    return out_file


def save_as_coco(data: DetectionData, out_file: Union[str, Path], *, name: str,
                 image_root: Optional[Union[str, Path]] = None) -> str:
    """Write ``data`` as COCO JSON and its issue report, log the warnings once, return a config line.

    The report (every file of every issue case, and the class warnings; see
    :func:`issues_report_path`) is written beside ``out_file`` when there is anything to report;
    a report of an earlier run is deleted otherwise. Nothing is written when this raises.

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
        OSError: When writing fails (every earlier output is then unchanged).
    """
    out_file = Path(out_file)
    return _save({out_file: data}, issues_report_path(out_file), whole=data, name=name,
                 image_root=image_root)


def save_split_as_coco(data: DetectionData, out_dir: Union[str, Path], *, val_fraction: float,
                       seed: int = 0, name: str,
                       image_root: Optional[Union[str, Path]] = None) -> str:
    """Split ``data`` by class (:func:`split_by_class`) and write ``<out_dir>/train.json`` and
    ``<out_dir>/val.json``, with one issue report ``<out_dir>/issues.txt``; as :func:`save_as_coco`
    otherwise. Both files share one image root, and classes with boxes in train but none in val
    are a warning. Returns the config lines of both."""
    train, val = split_by_class(data, val_fraction=val_fraction, seed=seed)
    out_dir = Path(out_dir)
    return _save(dict(zip((out_dir / file for file in SPLIT_FILES), (train, val))),
                 out_dir / SPLIT_REPORT, whole=data, name=name, image_root=image_root)


def _save(parts: Dict[Path, DetectionData], report_path: Path, *, whole: DetectionData,
          name: str, image_root: Optional[Union[str, Path]]) -> str:
    """Check ``whole``, encode every part and the report, write them all, log, return the lines."""
    _check_usable(whole, name)
    if image_root is None:
        image_root = os.path.commonpath([record.path.parent for record in whole.images])
    warnings = class_warnings(whole)
    if len(parts) > 1:
        warnings += split_class_warnings(whole.classes, {path.stem: box_counts(part)
                                                         for path, part in parts.items()})
    report = whole.issues.report(name) + ''.join(f'\n{warning}' for warning in warnings)
    contents = {path: coco_json_bytes(part, image_root=image_root) for path, part in parts.items()}
    if report:
        contents[report_path] = (report + '\n').encode('utf-8')
    write_all_or_nothing(contents, stale=[report_path])
    if report:
        whole.issues.log_summary(f'{name} (every file: {report_path})')
    for warning in warnings:
        print_log(f'{printable(name)}: {warning}', logger='current', level=logging.WARNING)
    return '\n'.join(config_line(path, part, image_root) for path, part in parts.items())


def _check_usable(data: DetectionData, name: str) -> None:
    """Raise ``ValueError`` when ``data`` has no image, no class name, or not a single box."""
    if not data.images:
        raise ValueError(f'{name}: no usable image; nothing to write ({data.issues.as_dict()})')
    if not data.classes:
        raise ValueError(f'{name}: no class names (no object found); give them with --classes')
    if data.num_boxes == 0:
        data.issues.log_summary(name)
        raise ValueError(f'{name}: {len(data.images)} images but not a single box of the classes '
                         f'{list(data.classes[:10])}; check --classes (data issues: '
                         f'{data.issues.as_dict()})')


def config_line(ann_file: Path, data: DetectionData, image_root: Union[str, Path]) -> str:
    """The ``dataset=dict(...)`` line of a written file: paths as Python literals (``repr``), so
    no file or folder name can break or inject into a config; class names escaped in the comment."""
    classes = ', '.join(printable(name) for name in data.classes[:10])
    # data_root='' so that a base config's data_root (e.g. 'data/coco/') is not prefixed
    return (f"dataset=dict(type='CocoJSONDataset', data_root='', ann_file={str(ann_file)!r}, "
            f"data_prefix=dict(img={Path(image_root).as_posix() + '/'!r}))  "
            f'# {len(data.images)} images, {data.num_boxes} boxes, {len(data.classes)} '
            f'class{"es" if len(data.classes) != 1 else ""}: '
            f"{classes}{', ...' if len(data.classes) > 10 else ''}")


def issues_report_path(out_file: Union[str, Path]) -> Path:
    """Where :func:`save_as_coco` writes the issue report of ``out_file``: ``x.json`` -> ``x.issues.txt``."""
    out_file = Path(out_file)
    return out_file.with_name(f'{out_file.stem}.issues.txt')


def class_warnings(data: DetectionData) -> List[str]:
    """Warnings about the class list: classes without a box, names equal but for case or spaces."""
    empty = [name for name, count in zip(data.classes, box_counts(data)) if count == 0]
    warnings = [f'{len(empty)} of {len(data.classes)} classes have no box: {empty} (placeholder '
                'categories, or a wrong --classes?); the model still gets an output for each'] \
        if empty else []
    names_of_key = defaultdict(list)
    for class_name in data.classes:
        names_of_key[class_name.strip().casefold()].append(class_name)
    warnings += [f'class names {names} differ only in case or surrounding spaces: one class '
                 'split in two?' for names in names_of_key.values() if len(names) > 1]
    return warnings


def coco_box_counts(coco: dict, ann_file: Union[str, Path]) -> np.ndarray:
    """``(C,)`` int64: the boxes of each category of ``coco`` (parsed from ``ann_file``, which
    errors name), categories in id order: the input of :func:`split_class_warnings` for the
    annotation files of several splits."""
    label_of = {category_id: label
                for label, category_id in enumerate(_categories(coco, Path(ann_file)))}
    labels = [label_of[ann['category_id']]
              for ann in _list_field(coco, 'annotations', Path(ann_file))
              if isinstance(ann, dict) and _is_id(ann.get('category_id'))
              and ann['category_id'] in label_of]
    return np.bincount(np.array(labels, np.int64), minlength=len(label_of)).astype(np.int64)


def read_coco_json(ann_file: Union[str, Path], *, image_root: Union[str, Path],
                   classes: Optional[ClassesSource] = None, issues: Optional[DataIssues] = None,
                   decode: bool = True, drop_images_with_bad_boxes: bool = True) -> DetectionData:
    """Read a COCO detection file through the same checks as the other formats.

    Malformed entries are dropped and counted (``malformed_row``): an image without a string or
    integer ``id`` or a string ``file_name``; an annotation whose ``image_id`` names no image, whose
    ``bbox`` is not four numbers or whose ``iscrowd`` is not 0/1. Images that share an ``id``
    (whose annotations cannot be told apart) are skipped (``duplicate_image_id``), entries naming
    one image file twice give one image (``duplicate_image``).

    Args:
        ann_file: The COCO JSON file.
        image_root: Folder the ``file_name``s are relative to.
        classes (optional): Keep only these classes (by name, any source of
            :func:`load_class_names`); default: every category, in id order, but a Roboflow
            export's placeholder (:func:`roboflow_placeholder`).
        issues (DataIssues, optional): Counter to add to (a new one by default).
        decode (bool): Decode every image to catch corrupt files. Defaults to True.
        drop_images_with_bad_boxes (bool): Skip images whose every annotation was dropped (see
            :func:`build_record`). Defaults to True.

    Raises:
        ValueError: Naming ``ann_file`` and the field, when it is not JSON, not a COCO dict, has
            ``images`` / ``annotations`` / ``categories`` that are not lists, a category without
            an integer ``id`` and a string ``name``, or no categories.
    """
    issues = issues if issues is not None else DataIssues()
    ann_file = Path(ann_file)
    coco = load_coco_dict(ann_file)
    categories = _categories(coco, ann_file)
    if not categories and classes is None:
        raise ValueError(f'{ann_file}: no `categories`, so no class names; give them with --classes')
    placeholder = roboflow_placeholder(coco) if classes is None else None
    if placeholder is not None:
        print_log(f'{printable(str(ann_file))}: category {placeholder} '
                  f'{printable(categories.pop(placeholder))!r} is the supercategory of every other '
                  "category and has no box (a Roboflow export's placeholder): not a class "
                  '(--classes chooses the classes)', logger='current', level=logging.INFO)
    names = load_class_names(classes if classes is not None else list(categories.values()))
    label_of_category = {category_id: names.index(name)
                         for category_id, name in categories.items() if name in names}
    images, ambiguous_ids = _images(coco, ann_file, Path(image_root), issues)
    anns_of_image = defaultdict(list)
    for ann in _list_field(coco, 'annotations', ann_file):
        image_id = ann.get('image_id') if isinstance(ann, dict) else None
        if _is_id(image_id) and image_id in images:
            anns_of_image[image_id].append(ann)
        elif not _is_id(image_id) or image_id not in ambiguous_ids:
            issues.add('malformed_row', source=ann_file)

    records = []
    for image_id, (image_path, size) in images.items():
        anns = anns_of_image[image_id]
        usable = [ann for ann in anns
                  if _is_box(ann.get('bbox')) and ann.get('iscrowd', 0) in (0, 1)]
        known = [ann for ann in usable
                 if _is_id(ann.get('category_id')) and ann['category_id'] in label_of_category]
        issues.add('malformed_row', len(anns) - len(usable), source=image_path)
        issues.add('unknown_class', len(usable) - len(known), source=image_path)
        # (N, 4) x, y, w, h -> (N, 4) x1, y1, x2, y2
        xywh = np.array([ann['bbox'] for ann in known], dtype=np.float32).reshape(-1, 4)
        record = build_record(
            image_path,
            bboxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
            labels=np.array([label_of_category[ann['category_id']] for ann in known], np.int64),
            ignore=np.array([ann.get('iscrowd', 0) == 1 for ann in known], dtype=bool),
            issues=issues, annotated_size=size, decode=decode,
            dropped_before=len(anns) - len(known),
            drop_images_with_bad_boxes=drop_images_with_bad_boxes)
        if record is not None:
            records.append(record)
    return DetectionData(classes=names, images=unique_images(records, issues), issues=issues)


def load_coco_dict(ann_file: Union[str, Path]) -> dict:
    """The parsed JSON of a COCO file; errors (missing, empty, not JSON, too deep, not an object)
    name it."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f'COCO JSON not found: {ann_file}')
    coco = load_json(ann_file)
    if not isinstance(coco, dict):
        raise ValueError(f'{ann_file}: a COCO file is a JSON object with images, annotations and '
                         f'categories; got a {type(coco).__name__}')
    return coco


def _images(coco: dict, ann_file: Path, image_root: Path,
            issues: DataIssues) -> Tuple[Dict[object, tuple], frozenset]:
    """``(image id -> (image path, annotated (width, height) or None), ambiguous ids)``: the
    usable image entries, and the ids that several entries share (skipped: their annotations
    cannot be told apart)."""
    listed = _list_field(coco, 'images', ann_file)
    entries = [image for image in listed
               if isinstance(image, dict) and _is_id(image.get('id'))
               and isinstance(image.get('file_name'), str) and image['file_name']]
    issues.add('malformed_row', len(listed) - len(entries), source=ann_file)
    id_counts = Counter(image['id'] for image in entries)
    ambiguous = frozenset(image_id for image_id, count in id_counts.items() if count > 1)
    images = {}
    for image in entries:
        image_path = image_root / image['file_name']
        if image['id'] in ambiguous:
            issues.add('duplicate_image_id', source=image_path)
            continue
        size = (image.get('width'), image.get('height'))
        images[image['id']] = (image_path, size if all(map(_is_count, size)) else None)
    return images, ambiguous


def _categories(coco: dict, ann_file: Path) -> Dict[int, str]:
    """``category id -> name`` in id order; a malformed category is an error naming it."""
    categories = {}
    for index, category in enumerate(_list_field(coco, 'categories', ann_file)):
        category_id = category.get('id') if isinstance(category, dict) else None
        if not _is_count(category_id, minimum=0) or not isinstance(category.get('name'), str):
            raise ValueError(f'{ann_file}: `categories[{index}]` needs an integer `id` and a '
                             f'string `name`, got {category!r:.80}')
        if category_id in categories:
            raise ValueError(f'{ann_file}: `categories` has the id {category_id} twice')
        categories[category_id] = category['name']
    return dict(sorted(categories.items()))


def roboflow_placeholder(coco: dict) -> Optional[int]:
    """The id of the category that a Roboflow COCO export adds before the real classes, or None.

    Roboflow writes the project's name as category 0 (supercategory ``'none'``) and makes it the
    ``supercategory`` of every real class; no annotation uses it. Only a category that is all of
    that (and only with at least one other category) is taken for the placeholder.
    """
    categories = [category for category in coco.get('categories') or []
                  if isinstance(category, dict)]
    used = {ann['category_id'] for ann in coco.get('annotations') or []
            if isinstance(ann, dict) and _is_id(ann.get('category_id'))}
    for category in categories:
        others = [other for other in categories if other is not category]
        if others and category['id'] not in used and all(
                other.get('supercategory') == category['name'] for other in others):
            return category['id']
    return None


def _list_field(coco: dict, key: str, ann_file: Path) -> list:
    value = coco.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f'{ann_file}: `{key}` must be a list, got {type(value).__name__} '
                         f'{value!r:.60}')
    return value


def _is_id(value) -> bool:
    """An image or category id: an integer (not a bool) or a string."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_count(value, *, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_box(value) -> bool:
    """A COCO ``bbox``: a list of four numbers (not strings, not bools)."""
    return (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
