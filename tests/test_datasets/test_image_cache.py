"""The image cache: RAM and disk entries, keys that follow the file and the size, atomic files outside
the dataset folder, the 'auto' decision, and damaged files falling back to decoding."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov7_mmdet.datasets import image_cache
from yolov7_mmdet.datasets.image_cache import build_image_cache, choose_mode, fit_image


@pytest.fixture
def images(tmp_path) -> list[str]:
    folder = tmp_path / 'dataset'
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(90, 120, 3), (30, 40, 3), (64, 64, 3)]):
        path = folder / f'{i}.png'
        cv2.imwrite(str(path), rng.integers(0, 256, shape, dtype=np.uint8))
        paths.append(str(path))
    return paths


class CountingLoader:
    """``path -> (fitted image, original hw)`` that counts its decodes."""

    def __init__(self, img_scale=(64, 64)):
        self.img_scale, self.decoded = img_scale, []

    def __call__(self, path):
        self.decoded.append(path)
        img = cv2.imread(path)
        return fit_image(img, self.img_scale)[0], img.shape[:2]


def test_ram_cache_holds_read_only_fitted_images(images):
    load = CountingLoader()
    cache = build_image_cache(images + images[:1], mode='ram', load=load, params='64')
    assert len(cache) == 3 and len(load.decoded) == 3  # a duplicate path is decoded once
    for path in images:
        img, ori_hw = cache.get(path)
        expected, expected_hw = CountingLoader()(path)
        np.testing.assert_array_equal(img, expected)
        assert ori_hw == expected_hw and not img.flags.writeable
    assert cache.get('elsewhere.png') is None


def test_disk_cache_is_written_once_outside_the_dataset_and_reused(images, tmp_path):
    cache_dir = tmp_path / 'cache'
    first = CountingLoader()
    cache = build_image_cache(images, mode='disk', load=first, params='64', cache_dir=str(cache_dir))
    files = sorted(os.listdir(cache_dir))
    assert len(files) == 3 and all(name.endswith('.npy') for name in files)  # no temporary left
    assert sorted(os.listdir(Path(images[0]).parent)) == ['0.png', '1.png', '2.png']
    img, ori_hw = cache.get(images[0])
    assert ori_hw == (90, 120) and img.shape == (48, 64, 3) and not img.flags.writeable
    np.testing.assert_array_equal(img, CountingLoader()(images[0])[0])

    again = CountingLoader()
    cache = build_image_cache(images, mode='disk', load=again, params='64', cache_dir=str(cache_dir))
    assert again.decoded == [] and sorted(os.listdir(cache_dir)) == files
    np.testing.assert_array_equal(cache.get(images[1])[0], CountingLoader()(images[1])[0])


def test_disk_keys_follow_the_image_file_and_the_fitting(images, tmp_path):
    cache_dir = str(tmp_path / 'cache')
    build_image_cache(images, mode='disk', load=CountingLoader(), params='64', cache_dir=cache_dir)
    other_size = CountingLoader((32, 32))
    build_image_cache(images, mode='disk', load=other_size, params='32', cache_dir=cache_dir)
    assert len(other_size.decoded) == 3 and len(os.listdir(cache_dir)) == 6

    cv2.imwrite(images[2], np.zeros((20, 10, 3), np.uint8))  # the image changes (size, mtime)
    os.utime(images[2], ns=(1, 1))
    changed = CountingLoader()
    cache = build_image_cache(images, mode='disk', load=changed, params='64', cache_dir=cache_dir)
    assert changed.decoded == [images[2]]
    assert cache.get(images[2])[1] == (20, 10)


def test_a_damaged_disk_file_falls_back_to_decoding(images, tmp_path):
    cache_dir = tmp_path / 'cache'
    cache = build_image_cache(images, mode='disk', load=CountingLoader(), params='64',
                              cache_dir=str(cache_dir))
    npy = cache.entries[images[0]].npy_path
    Path(npy).write_bytes(Path(npy).read_bytes()[:200])  # truncated
    assert cache.get(images[0]) is None


def test_unreadable_images_are_left_to_the_loader(images, tmp_path):
    broken = Path(images[0]).with_name('broken.png')
    broken.write_bytes(b'not an image')

    def load(path):
        img = cv2.imread(path)
        assert img is not None, f'failed to load image: {path}'
        return img, img.shape[:2]

    cache = build_image_cache(images + [str(broken)], mode='ram', load=load, params='full')
    assert len(cache) == 3 and cache.get(str(broken)) is None


def test_auto_caches_in_ram_only_when_it_fits(monkeypatch):
    class Memory:
        available = 10 * 2**30

    monkeypatch.setattr(image_cache.psutil, 'virtual_memory', lambda: Memory)
    options = dict(ram_share=0.3, cache_dir='/tmp/x')
    assert choose_mode('auto', needed_bytes=2 * 2**30, **options) == 'ram'
    assert choose_mode('auto', needed_bytes=4 * 2**30, **options) is None  # 30% of 10 GiB is 3
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')  # two ranks on this machine share the budget
    assert choose_mode('auto', needed_bytes=2 * 2**30, **options) is None
    assert choose_mode('disk', needed_bytes=2**50, **options) == 'disk'
    assert choose_mode(False, needed_bytes=0, **options) is None
    with pytest.raises(ValueError, match='cache_images'):
        choose_mode('memory', needed_bytes=0, **options)


def test_an_unusable_cache_dir_is_one_clear_error(images, tmp_path):
    not_a_folder = tmp_path / 'file'
    not_a_folder.write_text('')
    with pytest.raises(OSError, match=r'image cache: cannot use .*file.*cache_dir'):
        build_image_cache(images, mode='disk', load=CountingLoader(), params='64',
                          cache_dir=str(not_a_folder))


def test_a_missing_image_is_left_out_of_the_disk_cache(images, tmp_path):
    """As in RAM: the image is reported when the pipeline loads it, the others are cached."""
    os.remove(images[0])
    cache = build_image_cache(images, mode='disk', load=CountingLoader(), params='64',
                              cache_dir=str(tmp_path / 'cache'))
    assert images[0] not in cache.entries and all(path in cache.entries for path in images[1:])
