"""What an image file really is: its format by content, its size, its EXIF orientation.

The frame rule of this package: **box coordinates live in the image as it decodes**, i.e. with the
EXIF orientation applied. That is what mmcv's ``LoadImageFromFile`` gives (both its cv2 and pillow
back-ends rotate by EXIF), what the official YOLOv7 loader gives (``cv2.imread``), and what web
browsers and most annotation tools show. :func:`exif_to_decoded_frame` moves boxes that were drawn on
the stored (un-rotated) pixels into that frame; the readers decide when to call it (``docs/datasets.md``).

Whether an image is usable is decided by the decoder training uses: mmcv's ``imfrombytes`` with
OpenCV (``LoadImageFromFile``'s default), not Pillow, which accepts PNGs that OpenCV cannot read.
A file whose data stops early is *truncated*: a JPEG that does not reach its end-of-image marker
(OpenCV decodes such a file, grey where the data is missing) or a PNG without its ``IEND`` chunk.
"""
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import mmcv
import numpy as np
from PIL import Image

EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientations 5..8 transpose the image: the decoded width is the stored height.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})

# A JPEG marker: 0xFF then a code that is not 0x00 (a stuffed 0xFF data byte), 0xD0-0xD7 (restart
# markers, part of the scan data) or 0xFF (fill).
_JPEG_MARKER = re.compile(rb'\xff[\x01-\xcf\xd8-\xfe]')
_JPEG_STANDALONE_MARKERS = frozenset({0x01, 0xD8})  # TEM, SOI: no length field follows
_JPEG_EOI = 0xD9
_PNG_END = b'IEND\xaeB`\x82'  # the IEND chunk type and its CRC

# Image suffixes the readers pick up (the official YOLOv7 list), and which suffixes fit a format.
IMAGE_SUFFIXES = ('.bmp', '.jpg', '.jpeg', '.png', '.tif', '.tiff', '.dng', '.webp', '.mpo')
_JPEG_SUFFIXES = frozenset({'.jpg', '.jpeg', '.jpe', '.jfif'})
_SUFFIXES_BY_FORMAT = {
    'JPEG': _JPEG_SUFFIXES,
    'MPO': _JPEG_SUFFIXES | {'.mpo'},  # multi-picture JPEG written by many cameras
    'PNG': frozenset({'.png'}),
    'BMP': frozenset({'.bmp'}),
    'TIFF': frozenset({'.tif', '.tiff', '.dng'}),
    'WEBP': frozenset({'.webp'}),
}


@dataclass(frozen=True)
class ImageProbe:
    """An image file as it decodes.

    Attributes:
        format (str): Format found from the content (PIL's name: ``'JPEG'``, ``'PNG'``, ...).
        stored_size (tuple[int, int]): ``(width, height)`` of the stored pixels.
        orientation (int): EXIF orientation, 1 (none) to 8; invalid values read as 1.
        truncated (bool): The file's data stops early (only checked when decoding).
    """

    format: str
    stored_size: tuple
    orientation: int = 1
    truncated: bool = False

    @property
    def size(self) -> tuple:
        """``(width, height)`` after the EXIF orientation is applied (what the loaders return)."""
        width, height = self.stored_size
        return (height, width) if self.orientation in _TRANSPOSING_ORIENTATIONS else (width, height)

    def suffix_fits(self, path: Path) -> bool:
        """Whether ``path``'s suffix names this format (unknown formats always fit)."""
        suffixes = _SUFFIXES_BY_FORMAT.get(self.format)
        return suffixes is None or Path(path).suffix.lower() in suffixes


def probe_image(path: Path, *, decode: bool = True) -> Optional[ImageProbe]:
    """Open ``path`` by content and (if ``decode``) check that training can decode all of it.

    Decoding catches truncated or corrupt files that have a valid header; it costs a few ms per
    photo, which is why the readers run once, offline (the converters), not on every training start.

    Returns:
        ImageProbe | None: The probe (``truncated`` set for a file whose data stops early), or
        ``None`` when the file is not an image or OpenCV cannot decode it.
    """
    try:
        content = Path(path).read_bytes() if decode else None
        with Image.open(io.BytesIO(content) if decode else path) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
            probe = ImageProbe(format=image.format or '', stored_size=image.size,
                               orientation=orientation if orientation in range(1, 9) else 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        # PIL raises OSError (incl. UnidentifiedImageError) for unknown/truncated content, and
        # SyntaxError/ValueError from some plugins on broken headers.
        return None
    if not decode:
        return probe
    if not data_reaches_end(content, probe.format):
        return ImageProbe(probe.format, probe.stored_size, probe.orientation, truncated=True)
    try:
        decoded = mmcv.imfrombytes(content, flag='color', backend='cv2')
    except cv2.error:
        decoded = None
    return probe if decoded is not None else None


def data_reaches_end(content: bytes, image_format: str) -> bool:
    """Whether a JPEG reaches its end-of-image marker and a PNG its ``IEND`` chunk (other formats:
    True). JPEG segments are skipped by their length, so the end marker of an EXIF thumbnail does
    not count, and data after the end (a camera's trailer, a motion photo's video) is allowed."""
    if image_format == 'PNG':
        return content.find(_PNG_END, 8) >= 0
    if image_format not in ('JPEG', 'MPO'):
        return True
    position = 2  # after the start-of-image marker
    while True:
        marker = _JPEG_MARKER.search(content, position)
        if marker is None:
            return False
        code = content[marker.start() + 1]
        if code == _JPEG_EOI:
            return True
        position = marker.end()
        if code not in _JPEG_STANDALONE_MARKERS:
            position += int.from_bytes(content[position:position + 2], 'big')  # segment length
            if position > len(content):
                return False


def exif_to_decoded_frame(bboxes: np.ndarray, *, orientation: int, stored_size: tuple) -> np.ndarray:
    """Move boxes drawn on the stored pixels into the frame the image decodes to.

    Args:
        bboxes (np.ndarray): ``(N, 4)`` boxes ``x1, y1, x2, y2`` in stored-pixel coordinates.
        orientation (int): EXIF orientation 1..8 (as in the TIFF/EXIF spec; 6 = rotate 90 deg
            clockwise to display, 8 = rotate 90 deg counter-clockwise, 3 = 180 deg, 2/4/5/7 mirror).
        stored_size (tuple[int, int]): ``(width, height)`` of the stored pixels.

    Returns:
        np.ndarray: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in decoded-image coordinates.
    """
    width, height = stored_size
    x1, y1, x2, y2 = bboxes.T
    # Each orientation maps a stored point (x, y) to a decoded point; applied to both corners.
    mapping = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (width - x, y),
        3: lambda x, y: (width - x, height - y),
        4: lambda x, y: (x, height - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (height - y, x),
        7: lambda x, y: (height - y, width - x),
        8: lambda x, y: (y, width - x),
    }[orientation]
    ax, ay = mapping(x1, y1)
    bx, by = mapping(x2, y2)
    # (4, N) corner coordinates -> (N, 4) boxes with min/max re-ordered after mirroring.
    return np.stack([np.minimum(ax, bx), np.minimum(ay, by),
                     np.maximum(ax, bx), np.maximum(ay, by)], axis=1).astype(bboxes.dtype)
