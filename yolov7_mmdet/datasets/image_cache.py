"""Training images fitted to the input size once, kept in RAM or on disk (official ``--cache-images``).

The official loader resizes every image on load so that its long side equals the input size
(``load_image``), and with ``--cache-images`` keeps the resized images in RAM (or, with ``disk``, as
``.npy`` files beside the image folder). Here:

* :func:`fit_image` is that resize;
* :class:`ImageCache` maps an image path to its fitted image and original ``(height, width)``:
  ``'ram'`` holds read-only arrays, ``'disk'`` holds ``.npy`` files read by memory mapping;
* :func:`build_image_cache` decodes and fits every image once (threads), decides ``'auto'``, and
  reuses or writes the disk files.

The cache is built in the process that builds the dataset, before the DataLoader starts its
workers. With the ``fork`` start method (Linux, mmengine's default) the workers share the RAM cache's
pages copy-on-write (the arrays are never written, so the pages stay shared): one copy per training
process, not one per worker. With ``spawn`` every worker receives a pickled copy: use ``'disk'``
there (its memory-mapped files are shared through the OS page cache). Each distributed rank builds
its own cache, so ``'auto'`` divides its memory share among the ranks of the machine.

Disk files are named by a hash of the image's absolute path, size and modification time and of
the fitting parameters, so a changed image or input size is simply a different file; they are
written atomically (a whole file or none) into ``cache_dir``, never into the dataset's folder unless
``cache_dir`` points there.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Tuple

import mmcv
import numpy as np
import psutil
from mmengine.logging import print_log

from ..utils.atomic import atomic_write_bytes

#: ``cache_images`` values: decide from the memory, RAM, disk, or no cache.
CACHE_MODES = ('auto', 'ram', 'disk', False)
#: ``'auto'`` caches in RAM when the fitted images need at most this share of the available memory.
DEFAULT_RAM_SHARE = 0.3
#: Where ``'disk'`` writes when no ``cache_dir`` is given.
DEFAULT_CACHE_DIR = osp.join(os.environ.get('XDG_CACHE_HOME', osp.expanduser('~/.cache')),
                             'yolov7_mmdet', 'images')
_FORMAT_VERSION = 1  # part of every disk key: bump when the stored content changes meaning

HW = Tuple[int, int]
LoadFn = Callable[[str], Tuple[np.ndarray, HW]]


def fitted_size(height: int, width: int, img_scale: Sequence[int]) -> Tuple[float, HW]:
    """The ratio that fits ``(height, width)`` into ``img_scale = (w, h)`` and the resulting ``(h, w)``.

    The official ``load_image``: ``r = img_size / max(h0, w0)``, new size ``(int(w0 r), int(h0 r))``
    (truncated, as mmdet's ``Mosaic`` does too); for a non-square ``img_scale`` the smaller ratio.
    """
    scale_w, scale_h = img_scale
    ratio = min(scale_h / height, scale_w / width)
    return ratio, (int(height * ratio), int(width * ratio))


def fit_image(img: np.ndarray, img_scale: Sequence[int], *,
              shrink_interpolation: str = 'bilinear') -> Tuple[np.ndarray, float]:
    """Resize ``img`` keeping its ratio so that it fits ``img_scale`` (official ``load_image``).

    Args:
        img: ``(H, W[, C])`` image.
        img_scale: ``(width, height)`` to fit into.
        shrink_interpolation: Interpolation when the image shrinks (mmcv's names). The official
            training loader uses bilinear always (``augment=True``), its test loader ``'area'``.
            Enlarging is always bilinear.

    Returns:
        The fitted image (``img`` itself when the size does not change) and the ratio.
    """
    ratio, (new_h, new_w) = fitted_size(*img.shape[:2], img_scale)
    if (new_h, new_w) == img.shape[:2]:
        return img, ratio  # what cv2.resize to the same size would return: an equal copy
    interpolation = shrink_interpolation if ratio < 1 else 'bilinear'
    return mmcv.imresize(img, (new_w, new_h), interpolation=interpolation), ratio


@dataclass(frozen=True)
class CachedImage:
    """One cached image: in RAM (``img``) or on disk (``npy_path``), and its original size."""
    ori_hw: HW
    img: Optional[np.ndarray] = None
    npy_path: Optional[str] = None


class ImageCache:
    """Fitted images by path. Every image it returns is read-only: transforms must not write into
    ``results['img']`` in place (see ``YOLOv7MixDataset``).

    Args:
        entries: ``{img_path: CachedImage}`` (in RAM or on disk, per entry).
    """

    def __init__(self, entries: dict) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> Optional[Tuple[np.ndarray, HW]]:
        """The fitted image and original ``(h, w)`` of ``path``, or None (not cached, or its file
        has gone or is damaged: the caller decodes the image instead)."""
        entry = self.entries.get(path)
        if entry is None:
            return None
        if entry.img is not None:
            return entry.img, entry.ori_hw
        try:  # memory-mapped, read-only; the OS page cache shares it between processes
            img = np.asarray(np.load(entry.npy_path, mmap_mode='r', allow_pickle=False))
        except (OSError, ValueError):
            return None
        return (img, entry.ori_hw) if img.dtype == np.uint8 else None


def disk_key(path: str, params: str) -> str:
    """Name of the disk entry of ``path``: changes with the file's path, size and mtime and with
    the fitting ``params``."""
    stat = os.stat(path)
    text = f'{osp.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{params}|v{_FORMAT_VERSION}'
    return hashlib.sha1(text.encode('utf-8')).hexdigest()


def _npy_name(key: str, ori_hw: HW) -> str:
    return f'{key}-{ori_hw[0]}x{ori_hw[1]}.npy'


def _existing_disk_entries(cache_dir: str) -> dict:
    """``{key: (file name, ori_hw)}`` of the ``.npy`` files already in ``cache_dir``."""
    found = {}
    for name in os.listdir(cache_dir):
        stem, dot, ext = name.rpartition('.')
        key, dash, size = stem.rpartition('-')
        height, cross, width = size.partition('x')
        if ext == 'npy' and dash and cross and height.isdigit() and width.isdigit():
            found[key] = (name, (int(height), int(width)))
    return found


def _write_npy(path: str, img: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(img), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def _read_only(img: np.ndarray) -> np.ndarray:
    img.flags.writeable = False
    return img


def choose_mode(mode, *, needed_bytes: int, ram_share: float, cache_dir: str) -> Optional[str]:
    """``'ram'``, ``'disk'`` or None for the requested ``mode``; ``'auto'`` is RAM when
    ``needed_bytes`` fits in ``ram_share`` of the available memory (shared among the ranks of this
    machine), else no cache. One log line says what was decided and why."""
    if mode not in CACHE_MODES:
        raise ValueError(f'cache_images must be one of {CACHE_MODES}, got {mode!r}')
    if mode != 'auto':
        return mode or None
    ranks_here = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
    budget = ram_share * psutil.virtual_memory().available / ranks_here
    if needed_bytes <= budget:
        return 'ram'
    print_log(f'image cache off: the fitted images need {needed_bytes / 2**30:.1f} GiB, more than '
              f'{ram_share:.0%} of the available memory ({budget / 2**30:.1f} GiB per process); '
              f"cache_images='disk' keeps them in {cache_dir} instead", logger='current')
    return None


def build_image_cache(paths: Iterable[str], *, mode: str, load: LoadFn, params: str,
                      cache_dir: Optional[str] = None, threads: Optional[int] = None) -> ImageCache:
    """Decode and fit every image once (or find its disk file) and return the cache.

    Args:
        paths: Image paths (duplicates are cached once).
        mode: ``'ram'`` or ``'disk'``.
        load: ``path -> (fitted image, original (h, w))``: the loading transform's own decoding.
        params: The fitting parameters, part of every disk key (e.g. ``'640x640|bilinear|color'``).
        cache_dir: Folder of the disk files (``DEFAULT_CACHE_DIR`` by default).
        threads: Decoding threads (OpenCV releases the GIL); default ``min(8, cpu count)``.

    Images that fail to load are left out (their loading error is raised, with its message, when
    the pipeline reaches them); a warning names the first.
    """
    paths = list(dict.fromkeys(paths))
    cache_dir = cache_dir or DEFAULT_CACHE_DIR
    if mode == 'disk':
        try:
            os.makedirs(cache_dir, exist_ok=True)
            existing = _existing_disk_entries(cache_dir)
        except OSError as error:
            raise OSError(f"image cache: cannot use {cache_dir} ({error.strerror}); set cache_dir to "
                          "a writable folder, or cache_images to 'ram' or False") from None

    def cache_one(path: str) -> Optional[CachedImage]:
        if mode == 'disk':
            try:
                key = disk_key(path, params)
            except OSError:  # a missing or unreadable image: reported when the pipeline loads it
                return None
            if key in existing:
                name, ori_hw = existing[key]
                return CachedImage(ori_hw, npy_path=osp.join(cache_dir, name))
        try:
            img, ori_hw = load(path)
        except Exception:  # noqa: BLE001  (reported when the pipeline loads the image itself)
            return None
        if mode == 'ram':
            return CachedImage(ori_hw, img=_read_only(img))
        npy_path = osp.join(cache_dir, _npy_name(key, ori_hw))
        _write_npy(npy_path, img)
        return CachedImage(ori_hw, npy_path=npy_path)

    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        cached = list(pool.map(cache_one, paths))
    entries = {path: entry for path, entry in zip(paths, cached) if entry is not None}
    failed = [path for path, entry in zip(paths, cached) if entry is None]
    if failed:
        print_log(f'image cache: {len(failed)} image(s) could not be loaded and are not cached, '
                  f'e.g. {failed[0]}', logger='current', level=logging.WARNING)
    held = sum(entry.img.nbytes for entry in entries.values() if entry.img is not None)
    where = f'{held / 2**30:.2f} GiB of RAM' if mode == 'ram' else cache_dir
    print_log(f'image cache ({mode}): {len(entries)} images fitted once, in {where}', logger='current')
    return ImageCache(entries)
