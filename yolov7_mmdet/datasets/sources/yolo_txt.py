"""YOLO txt reader: the layout of the official YOLOv7 (and YOLOv5/8) datasets.

Images are listed by a folder, a ``.txt`` list of image paths, or the ``train``/``val``/``test``
entries of a data yaml (:func:`read_data_yaml`). Each image's labels are at the same path with the
last ``images`` folder replaced by ``labels`` and the suffix by ``.txt``; each row is
``class cx cy w h`` normalised to the image (or ``class x1 y1 x2 y2 x3 y3 ...``, a polygon, whose
bounds become the box). As in the official loader, the normalised coordinates refer to the image as
it decodes (EXIF orientation applied). A missing or empty label file makes a background image.
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .class_names import ClassesSource, load_class_names, names_from_data_yaml
from .image_probe import IMAGE_SUFFIXES
from .issues import DataIssues
from .records import DetectionData, build_record, unique_images
from .text_files import load_yaml, read_text

ImagesSource = Union[str, Path, Sequence[Union[str, Path]]]
_NOT_LABEL_FILES = frozenset({'classes.txt'})  # written into labels/ by labelImg's YOLO export


@dataclass
class YoloDataYaml:
    """A YOLO data yaml, paths resolved: image sources per split and the class names."""

    splits: dict
    names: Tuple[str, ...]


def read_data_yaml(path: Union[str, Path]) -> YoloDataYaml:
    """Read a YOLO data yaml (``train``/``val``/``test``, ``names``, optional ``nc`` and ``path``).

    Relative split paths are resolved against ``path`` when given (itself relative to the yaml's
    folder), else against the yaml's folder. A split path that does not exist (another machine's
    absolute path, or a ``../train/images`` of an export moved elsewhere) is looked for under the
    yaml's folder, by its trailing components, longest first (:func:`find_beside_yaml`).

    Raises:
        FileNotFoundError: If the yaml cannot be found.
        ValueError: Naming the yaml and the field, if the yaml is not a mapping, a field has the
            wrong type (``path`` not a string, a split not a path or list of paths) or its
            ``names`` / ``nc`` are wrong (:func:`names_from_data_yaml`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'data yaml not found: {path}')
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a YOLO data yaml must be a mapping (train/val/names), '
                         f'got {type(data).__name__}')
    names = names_from_data_yaml(data, str(path))
    root = path.parent / _path_entries(data, 'path', path)[0] if data.get('path') else path.parent
    splits = {split: [find_beside_yaml(root / item, path)
                      for item in _path_entries(data, split, path)]
              for split in ('train', 'val', 'test') if data.get(split)}
    return YoloDataYaml(splits=splits, names=names)


def _path_entries(data: dict, key: str, yaml_path: Path) -> List[str]:
    """``data[key]`` as a list of paths: a string, or (splits only) a list of strings."""
    entry = data[key]
    entries = entry if isinstance(entry, list) and key != 'path' else [entry]
    if not entries or not all(isinstance(item, str) and item for item in entries):
        what = 'a folder' if key == 'path' else 'an image folder, an image list or a list of them'
        raise ValueError(f'{yaml_path}: `{key}` must be {what} (a path), got {entry!r:.60}')
    return entries


def find_beside_yaml(split_path: Path, yaml_path: Path) -> Path:
    """``split_path`` if it exists, else the first existing ``<yaml folder>/<its last k parts>``
    for k from all parts down to 2 (1 for a one-part path; ``..`` and the root skipped), else
    ``split_path`` unchanged (reading it then fails with its name)."""
    if split_path.exists():
        return split_path
    parts = [part for part in split_path.parts if part not in ('..', '.', split_path.anchor)]
    shortest = min(2, len(parts))  # a lone `images` could be another split's folder
    tails = (yaml_path.parent.joinpath(*parts[start:])
             for start in range(len(parts) - shortest + 1))
    return next((tail for tail in tails if tail.exists()), split_path)


def yolo_label_path(image_path: Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (the last ``images`` folder is swapped)."""
    parts = list(Path(image_path).parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == 'images':
            parts[index] = 'labels'
            break
    return Path(*parts).with_suffix('.txt')


def list_yolo_images(source: ImagesSource) -> List[Path]:
    """Image paths from a folder (recursive), a ``.txt`` list (relative lines are relative to the
    list's folder), or a sequence of those."""
    if not isinstance(source, (str, Path)):
        return [image for item in source for image in list_yolo_images(item)]
    source = Path(source)
    if source.is_dir():
        return sorted(path for path in source.rglob('*') if path.suffix.lower() in IMAGE_SUFFIXES)
    if source.is_file() and source.suffix == '.txt':
        text = read_text(source, what='image list')
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return [source.parent / line for line in lines]
    raise FileNotFoundError(f'no image folder or image list at {source}')


def read_yolo_txt(images: ImagesSource, *, classes: ClassesSource,
                  issues: Optional[DataIssues] = None, decode: bool = True,
                  drop_images_with_bad_boxes: bool = True) -> DetectionData:
    """Read a YOLO txt dataset into :class:`DetectionData`.

    Args:
        images: A folder, a ``.txt`` image list, or a sequence of those (see
            :func:`list_yolo_images`); e.g. one split entry of :func:`read_data_yaml`.
        classes: Class names (see :func:`load_class_names`), e.g. ``read_data_yaml(p).names``;
            rows with a class id outside ``0..len(classes)-1`` are dropped and counted.
        issues (DataIssues, optional): Counter to add to (a new one by default).
        decode (bool): Decode every image to catch corrupt files. Defaults to True.
        drop_images_with_bad_boxes (bool): Skip images whose every row was dropped (see
            :func:`build_record`). Defaults to True.

    Returns:
        DetectionData: Classes, usable images and the counts of what was skipped or repaired.
    """
    issues = issues if issues is not None else DataIssues()
    names = load_class_names(classes)
    image_paths = list_yolo_images(images)
    records = []
    for image_path in image_paths:
        bboxes, labels, dropped = _read_label_file(yolo_label_path(image_path), len(names), issues)
        record = build_record(image_path, bboxes=bboxes, labels=labels,
                              ignore=np.zeros(len(labels), dtype=bool), issues=issues,
                              normalized=True, decode=decode, dropped_before=dropped,
                              drop_images_with_bad_boxes=drop_images_with_bad_boxes)
        if record is not None:
            records.append(record)
    for orphan in _orphan_label_files(images, image_paths):
        issues.add('orphan_label_file', source=orphan)
    return DetectionData(classes=names, images=unique_images(records, issues), issues=issues)


def _read_label_file(label_path: Path, num_classes: int,
                     issues: DataIssues) -> Tuple[np.ndarray, np.ndarray, int]:
    """``(N, 4)`` normalised ``x1, y1, x2, y2``, ``(N,)`` labels and the number of rows dropped.

    Bytes that are not UTF-8 make their row unparsable (``malformed_row``), not the file.
    """
    boxes, labels, dropped = [], [], 0
    if label_path.is_file():
        for line in label_path.read_bytes().decode('utf-8', errors='replace').splitlines():
            row = _parse_row(line)
            if row is None:
                issues.add('malformed_row', bool(line.strip()), source=label_path)
                dropped += bool(line.strip())
            elif not 0 <= row[0] < num_classes:
                issues.add('unknown_class', source=label_path)
                dropped += 1
            else:
                labels.append(row[0])
                boxes.append(row[1])
    return (np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64),
            dropped)


def _parse_row(line: str) -> Optional[Tuple[int, Tuple[float, float, float, float]]]:
    """``(class, (x1, y1, x2, y2))`` of a box row or a polygon row; ``None`` if malformed."""
    try:
        values = [float(value) for value in line.split()]
    except ValueError:
        return None
    if not values or not math.isfinite(values[0]) or values[0] != int(values[0]):
        return None
    coords = values[1:]
    if len(coords) == 4:
        cx, cy, w, h = coords
        return int(values[0]), (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if len(coords) >= 6 and len(coords) % 2 == 0:  # polygon x1 y1 x2 y2 ... -> its bounds
        xs, ys = coords[0::2], coords[1::2]
        return int(values[0]), (min(xs), min(ys), max(xs), max(ys))
    return None


def _orphan_label_files(images: ImagesSource, image_paths: Iterable[Path]) -> List[Path]:
    """Label files under the ``labels`` twin of each image *folder* given, matching no image.

    Image *lists* are not checked: their label folders may be shared with other splits.
    """
    folders = [images] if isinstance(images, (str, Path)) else list(images)
    claimed = {yolo_label_path(path) for path in image_paths}
    orphans = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        labels_dir = yolo_label_path(folder / 'x').parent
        if labels_dir == folder:  # labels beside the images: every .txt is a label file
            candidates = folder.rglob('*.txt')
        else:
            candidates = labels_dir.rglob('*.txt') if labels_dir.is_dir() else ()
        orphans += [path for path in sorted(candidates)
                    if path.name not in _NOT_LABEL_FILES and path not in claimed]
    return orphans
