"""Pascal VOC XML reader for the layouts found in the wild.

- VOC devkit: ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/<split>.txt`` (bccd);
- split lists beside separate folders: ``annotations/`` + ``images/`` + ``splits/<split>.txt``
  (raccoon);
- XML beside each image, one folder per split: ``images/train/*.{xml,JPG}`` (cards).

:func:`voc_annotation_files` lists the XML files of a split; :func:`read_voc` parses them. Class
names are given (any source of :func:`load_class_names`), or else are the sorted distinct object
names of the files read. Coordinates are taken as written (continuous pixels, no ``-1``), as mmdet's
``XMLDataset`` does; ``difficult`` objects become ignored boxes.
"""
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .class_names import ClassesSource, load_class_names
from .image_probe import IMAGE_SUFFIXES
from .issues import DataIssues
from .records import DetectionData, build_record, unique_images
from .text_files import read_text

_BOX_TAGS = ('xmin', 'ymin', 'xmax', 'ymax')


@dataclass
class _VocObject:
    name: str
    bbox: Tuple[float, float, float, float]
    difficult: bool


@dataclass
class _VocFile:
    xml_path: Path
    filename: str
    size: Optional[Tuple[int, int]]
    objects: List[_VocObject]
    malformed: int  # objects dropped as unparsable


def voc_annotation_files(ann_dir: Path, split_file: Optional[Path] = None) -> List[Path]:
    """The XML files of a split: ``<ann_dir>/<id>.xml`` per line of ``split_file``, else all.

    Split lines may carry extra columns (VOC ``ImageSets/Main/<class>_train.txt``); the first is the id.
    """
    ann_dir = Path(ann_dir)
    if split_file is None:
        return sorted(ann_dir.glob('*.xml'))
    text = read_text(split_file, what='split file')
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    return [ann_dir / f'{image_id}.xml' for image_id in ids]


def read_voc(xml_files: Iterable[Path], *, image_dir: Optional[Path] = None,
             classes: Optional[ClassesSource] = None, issues: Optional[DataIssues] = None,
             decode: bool = True, drop_images_with_bad_boxes: bool = True) -> DetectionData:
    """Read VOC XML files into :class:`DetectionData`.

    Args:
        xml_files (Iterable[Path]): Annotation files (see :func:`voc_annotation_files`).
        image_dir (Path, optional): Folder of the images; defaults to each XML file's own folder.
            The image is ``<image_dir>/<filename>`` from the XML, or else the file with the XML's
            stem and an image suffix. A ``<filename>`` that is absolute or leads out of the
            folder (``../``) is not followed (``filename_outside_image_dir``); two XML files
            naming one image give one image (``duplicate_image``, the first file's).
        classes (optional): Class names (see :func:`load_class_names`); objects of other classes
            are dropped and counted. ``None``: the sorted distinct object names found.
        issues (DataIssues, optional): Counter to add to (a new one by default).
        decode (bool): Decode every image to catch corrupt files. Defaults to True.
        drop_images_with_bad_boxes (bool): Skip images whose every object was dropped (see
            :func:`build_record`). Defaults to True.

    Returns:
        DetectionData: Classes, usable images and the counts of what was skipped or repaired.
    """
    issues = issues if issues is not None else DataIssues()
    parsed = [voc for voc in (_parse_xml(Path(path), issues) for path in xml_files) if voc]
    names = load_class_names(classes) if classes is not None else tuple(
        sorted({obj.name for voc in parsed for obj in voc.objects}))
    label_of = {name: label for label, name in enumerate(names)}

    images = []
    for voc in parsed:
        known = [obj for obj in voc.objects if obj.name in label_of]
        unknown = len(voc.objects) - len(known)
        issues.add('unknown_class', unknown, source=voc.xml_path)
        record = build_record(
            _find_image(voc, image_dir, issues),
            bboxes=np.array([obj.bbox for obj in known], dtype=np.float32).reshape(-1, 4),
            labels=np.array([label_of[obj.name] for obj in known], dtype=np.int64),
            ignore=np.array([obj.difficult for obj in known], dtype=bool),
            issues=issues, annotated_size=voc.size, decode=decode,
            dropped_before=unknown + voc.malformed, drop_images_with_bad_boxes=drop_images_with_bad_boxes)
        if record is not None:
            images.append(record)
    return DetectionData(classes=names, images=unique_images(images, issues), issues=issues)


def _parse_xml(xml_path: Path, issues: DataIssues) -> Optional[_VocFile]:
    """One XML file; a missing or unparsable file is a ``missing_image``/``malformed_row``."""
    if not xml_path.is_file():
        issues.add('missing_image', source=xml_path)
        return None
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        issues.add('malformed_row', source=xml_path)
        return None
    parsed = [_parse_object(element) for element in root.iter('object')]
    objects = [obj for obj in parsed if obj is not None]
    issues.add('malformed_row', len(parsed) - len(objects), source=xml_path)
    return _VocFile(xml_path=xml_path, filename=(root.findtext('filename') or '').strip(),
                    size=_parse_size(root.find('size')), objects=objects,
                    malformed=len(parsed) - len(objects))


def _parse_object(element: ET.Element) -> Optional[_VocObject]:
    name = (element.findtext('name') or '').strip()
    box = element.find('bndbox')
    if not name or box is None:
        return None
    try:
        bbox = tuple(float(box.findtext(tag)) for tag in _BOX_TAGS)
        difficult = bool(int(float(element.findtext('difficult') or 0)))
    except (TypeError, ValueError):  # missing tag (None) or text that is not a number
        return None
    return _VocObject(name=name, bbox=bbox, difficult=difficult)


def _parse_size(size: Optional[ET.Element]) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of ``<size>``; ``None`` when absent, unparsable or zero."""
    if size is None:
        return None
    try:
        width, height = int(float(size.findtext('width'))), int(float(size.findtext('height')))
    except (TypeError, ValueError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _find_image(voc: _VocFile, image_dir: Optional[Path], issues: DataIssues) -> Path:
    """``<image_dir>/<filename>``, else a file named like the XML with an image suffix."""
    folder = Path(image_dir) if image_dir is not None else voc.xml_path.parent
    filename = voc.filename
    if filename and _leaves_folder(filename):
        issues.add('filename_outside_image_dir', source=voc.xml_path)
        filename = ''
    named = folder / filename
    if filename and named.is_file():
        return named
    stem = voc.xml_path.stem
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f'{stem}{suffix}', folder / f'{stem}{suffix.upper()}'):
            if candidate.is_file():
                return candidate
    return named


def _leaves_folder(filename: str) -> bool:
    """Whether a relative file name written on any system is absolute or has a ``..`` part."""
    return any(path.is_absolute() or path.anchor or '..' in path.parts
               for path in (PurePosixPath(filename), PureWindowsPath(filename)))
