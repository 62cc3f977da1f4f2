"""The one in-memory form every reader produces: images with clean boxes, and the class names.

``VOC XML``, ``YOLO txt`` and ``COCO JSON`` readers parse their files into raw boxes, then call
:func:`build_record`, which checks the image file and repairs or drops what is wrong (counting it),
so the three formats share the same dirty-data rules.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .box_cleaning import clean_boxes
from .image_probe import exif_to_decoded_frame, probe_image
from .issues import DataIssues


@dataclass
class ImageRecord:
    """One usable image and its boxes, in the pixel frame of the decoded image (EXIF applied).

    Attributes:
        path (Path): Image file.
        width (int): Decoded width in pixels.
        height (int): Decoded height in pixels.
        bboxes (np.ndarray): ``(N, 4)`` float32 ``x1, y1, x2, y2`` pixels, inside the image.
        labels (np.ndarray): ``(N,)`` int64 class indices into ``DetectionData.classes``.
        ignore (np.ndarray): ``(N,)`` bool, boxes to ignore (VOC ``difficult``, COCO ``iscrowd``).
    """

    path: Path
    width: int
    height: int
    bboxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray


@dataclass
class DetectionData:
    """A read dataset: class names, usable images, and the counts of what was skipped or repaired."""

    classes: Tuple[str, ...]
    images: List[ImageRecord]
    issues: DataIssues = field(default_factory=DataIssues)

    @property
    def num_boxes(self) -> int:
        return sum(len(record.bboxes) for record in self.images)


def build_record(image_path: Path, *, bboxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray,
                 issues: DataIssues, annotated_size: Optional[Tuple[int, int]] = None,
                 normalized: bool = False, decode: bool = True, dropped_before: int = 0,
                 drop_images_with_bad_boxes: bool = True) -> Optional[ImageRecord]:
    """Check one image file and bring its boxes into its decoded pixel frame; ``None`` to skip it.

    Args:
        image_path (Path): The image file.
        bboxes (np.ndarray): ``(N, 4)`` raw boxes ``x1, y1, x2, y2`` (pixels, or fractions of the
            decoded width/height when ``normalized``).
        labels (np.ndarray): ``(N,)`` class indices.
        ignore (np.ndarray): ``(N,)`` bool ignore flags.
        issues (DataIssues): Where skips and repairs are counted.
        annotated_size (tuple[int, int], optional): ``(width, height)`` the annotation file says the
            image has (VOC ``<size>``). It decides the frame of EXIF-oriented images: if it matches
            the stored pixels but not the decoded image, the boxes were drawn on the stored pixels
            and are moved (``exif_boxes_rotated``). Otherwise boxes are taken as decoded-frame.
        normalized (bool): Boxes are fractions of the decoded size (YOLO txt). Defaults to False.
        decode (bool): Decode all pixels to catch corrupt files (else read the header only).
        dropped_before (int): Annotations of this image the reader already dropped (malformed,
            unknown class); they count towards ``all_boxes_dropped``.
        drop_images_with_bad_boxes (bool): Skip an image whose every annotation was dropped
            (``all_boxes_dropped``) instead of keeping it as a background image, which would teach
            the model that its objects are not there. Defaults to True.

    Returns:
        ImageRecord | None: The record, or ``None`` when the image is missing, truncated or
        unreadable, or lost every annotation and ``drop_images_with_bad_boxes``.
    """
    image_path = Path(image_path)
    if not image_path.is_file():
        issues.add('missing_image', source=image_path)
        return None
    probe = probe_image(image_path, decode=decode)
    if probe is None or probe.truncated:
        issues.add('truncated_image' if probe else 'unreadable_image', source=image_path)
        return None
    issues.add('extension_mismatch', not probe.suffix_fits(image_path), source=image_path)
    issues.add('exif_oriented', probe.orientation != 1, source=image_path)

    width, height = probe.size
    bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    if normalized:
        bboxes = bboxes * np.array([width, height, width, height], dtype=np.float32)
    elif annotated_size and annotated_size != probe.size:
        if annotated_size == probe.stored_size:
            bboxes = exif_to_decoded_frame(bboxes, orientation=probe.orientation,
                                           stored_size=probe.stored_size)
            issues.add('exif_boxes_rotated', source=image_path)
        else:
            issues.add('size_mismatch', source=image_path)

    annotated = len(bboxes) + dropped_before
    bboxes, labels, ignore = clean_boxes(bboxes, labels, ignore, width=width, height=height,
                                         issues=issues, source=image_path)
    if annotated and not len(bboxes):
        issues.add('all_boxes_dropped', source=image_path)
        if drop_images_with_bad_boxes:
            return None
    issues.add('background_image', len(bboxes) == 0, source=image_path)
    return ImageRecord(path=image_path, width=width, height=height, bboxes=bboxes, labels=labels,
                       ignore=ignore)


def unique_images(records: List[ImageRecord], issues: DataIssues) -> List[ImageRecord]:
    """``records`` without repeats of an image file (two VOC XMLs or COCO entries naming one
    image, overlapping YOLO image lists): the first is kept, each repeat counted as
    ``duplicate_image``. Files are compared by their resolved path (symbolic links followed)."""
    seen = set()
    unique = []
    for record in records:
        key = record.path.resolve()
        issues.add('duplicate_image', key in seen, source=record.path)
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique
