"""Small dataset files that the dataset-source tests build themselves (images, VOC XML, YOLO txt)."""
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from yolov7_mmdet.datasets.sources.image_probe import EXIF_ORIENTATION_TAG

BACKGROUND, FOREGROUND = 40, 255


def write_image(path: Path, *, size: Tuple[int, int] = (64, 48), fmt: str = 'JPEG',
                orientation: int = 1, white_box: Optional[Sequence[int]] = None) -> Path:
    """A dark ``size=(width, height)`` image in format ``fmt`` (whatever ``path``'s suffix says),
    with a white ``white_box=(x1, y1, x2, y2)`` drawn on the stored pixels and an EXIF orientation."""
    width, height = size
    pixels = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    if white_box is not None:
        x1, y1, x2, y2 = white_box
        pixels[y1:y2, x1:x2] = FOREGROUND
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = orientation
        extra['exif'] = exif.tobytes()
    if fmt == 'JPEG':
        extra['quality'] = 100
    Image.fromarray(pixels).save(path, fmt, **extra)
    return path


def write_voc_xml(path: Path, *, filename: str, objects: Iterable[tuple] = (),
                  size: Optional[Tuple[int, int]] = None) -> Path:
    """A VOC XML file; ``objects`` are ``(name, (xmin, ymin, xmax, ymax))`` or with a third
    ``difficult`` item; ``size=(width, height)`` writes ``<size>``."""
    parts = [f'<annotation><filename>{filename}</filename>']
    if size is not None:
        parts.append(f'<size><width>{size[0]}</width><height>{size[1]}</height>'
                     '<depth>3</depth></size>')
    for name, box, *difficult in objects:
        tags = ''.join(f'<{tag}>{value}</{tag}>'
                       for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box))
        parts.append(f'<object><name>{name}</name><difficult>{int(bool(difficult and difficult[0]))}'
                     f'</difficult><bndbox>{tags}</bndbox></object>')
    parts.append('</annotation>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(parts))
    return path


def write_yolo_labels(path: Path, rows: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{row}\n' for row in rows))
    return path


def white_region(image: np.ndarray) -> Tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` bounds of the bright pixels of an ``(H, W, 3)`` image."""
    ys, xs = np.nonzero(image.mean(axis=2) > (BACKGROUND + FOREGROUND) / 2)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
