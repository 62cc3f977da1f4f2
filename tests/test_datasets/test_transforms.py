"""Tests of YOLOv7's data transforms: shapes, box/content consistency, probabilities, official parity.

Box/content consistency: every synthetic image is a flat grey background with filled rectangles of
distinct colours, and each rectangle is annotated with its exact box. After a transform, the pixels
inside each output box must still be (mostly) that box's colour.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmdet.structures.bbox import HorizontalBoxes

from yolov7_mmdet.datasets.transforms import (YOLOv7HSVRandomAug, YOLOv7Letterbox, YOLOv7MixUp,
                                              YOLOv7Mosaic, YOLOv7RandomAffine)
from yolov7_mmdet.datasets.transforms.mosaic import nine_tile_corners

GOLDEN = Path(__file__).resolve().parents[1] / 'fixtures' / 'transforms_golden.npz'
BACKGROUND = 60


def make_results(height: int, width: int, boxes: list[list[int]], seed: int = 0) -> dict:
    """A loaded-image results dict: grey image, one filled rectangle per box, each its own colour."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    colours = rng.integers(100, 256, size=(len(boxes), 3)).astype(np.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes, colours):
        img[y1:y2, x1:x2] = colour
    return dict(img=img, img_shape=(height, width), ori_shape=(height, width),
                gt_bboxes=HorizontalBoxes(np.array(boxes, np.float32).reshape(-1, 4)),
                gt_bboxes_labels=np.arange(len(boxes), dtype=np.int64),
                gt_ignore_flags=np.zeros(len(boxes), bool), colours=colours)


def random_results(seed: int, height: int = 48, max_width: int = 64) -> dict:
    """Three boxes on an image of the given height and a random width up to ``max_width``.

    With the defaults the image already fits a ``(64, 48)`` mosaic scale, so no resampling blurs it.
    """
    rng = np.random.default_rng(seed)
    width = int(rng.integers(max_width // 2, max_width + 1))
    boxes = []
    band = width // 3  # one box per vertical band, so that no rectangle hides another
    for i in range(3):
        w, h = int(rng.integers(6, band)), int(rng.integers(8, 20))
        x1, y1 = i * band + int(rng.integers(0, band - w + 1)), int(rng.integers(0, height - h))
        boxes.append([x1, y1, x1 + w, y1 + h])
    return make_results(height, width, boxes, seed)


class FakeDataset:
    """The part of ``MultiImageMixDataset.dataset`` that transforms use: ``len`` and ``[]``."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        item = self.items[index]
        return dict(item, gt_bboxes=item['gt_bboxes'].clone(), img=item['img'].copy())


def run_mix_transform(transform, dataset: FakeDataset, index: int = 0) -> dict:
    """What ``MultiImageMixDataset`` does: fetch ``get_indexes`` images, then call the transform."""
    results = dataset[index]
    results['mix_results'] = [dataset[i] for i in transform.get_indexes(dataset)]
    return transform(results)


def box_fill_fraction(img: np.ndarray, box: np.ndarray, colour: np.ndarray, tol: int = 6) -> float:
    """Fraction of the (integer-shrunk) box interior whose pixels are within ``tol`` of ``colour``."""
    x1, y1 = int(np.ceil(box[0])) + 1, int(np.ceil(box[1])) + 1
    x2, y2 = int(np.floor(box[2])) - 1, int(np.floor(box[3])) - 1
    if x2 <= x1 or y2 <= y1:
        return 1.0  # too thin to have an interior after shrinking
    patch = img[y1:y2, x1:x2].astype(int)
    return float((np.abs(patch - colour.astype(int)).max(axis=-1) <= tol).mean())


def colour_of(label: int, sources: list[dict]) -> np.ndarray:
    """Every synthetic source colours box ``i`` with ``colours[i]``; labels here are global ids."""
    return np.concatenate([s['colours'] for s in sources])[label]


def relabel(sources: list[dict]) -> list[dict]:
    """Give every box of every source a distinct label, so that outputs can be traced back."""
    start = 0
    for s in sources:
        n = len(s['gt_bboxes_labels'])
        s['gt_bboxes_labels'] = np.arange(start, start + n, dtype=np.int64)
        start += n
    return sources


def assert_boxes_over_content(results: dict, sources: list[dict], min_fraction: float = 0.9):
    img = results['img']
    boxes = results['gt_bboxes'].numpy()
    assert len(boxes) > 0, 'the test setup should keep some boxes'
    for box, label in zip(boxes, results['gt_bboxes_labels']):
        fraction = box_fill_fraction(img, box, colour_of(label, sources))
        assert fraction >= min_fraction, f'box {box} of label {label}: only {fraction:.2f} filled'


# ----------------------------------------------------------------------------------- letterbox

def test_letterbox_pads_evenly_with_114_and_records_metainfo():
    results = make_results(30, 60, [[10, 5, 30, 25]])
    out = YOLOv7Letterbox(scale=(64, 64))(results)
    # ratio = min(64/30, 64/60) = 64/60 -> 64 x 32 image, 32 rows of padding split 16 / 16
    assert out['img'].shape == (64, 64, 3) and out['img_shape'] == (64, 64)
    np.testing.assert_array_equal(out['pad_param'], [16, 16, 0, 0])
    assert out['pad_param'].dtype == np.float32
    assert out['scale_factor'] == pytest.approx((64 / 60, 32 / 30))
    assert (out['img'][:16] == 114).all() and (out['img'][-16:] == 114).all()
    np.testing.assert_allclose(out['gt_bboxes'].numpy(),
                               [[10 * 64 / 60, 5 * 32 / 30 + 16, 30 * 64 / 60, 25 * 32 / 30 + 16]],
                               rtol=1e-5)


def test_letterbox_odd_padding_goes_bottom_right_and_maps_back():
    results = make_results(21, 40, [[3, 4, 17, 15]])
    out = YOLOv7Letterbox(scale=(45, 30), allow_scale_up=False)(results)
    top, bottom, left, right = out['pad_param']
    assert (top, bottom, left, right) == (4, 5, 2, 3)
    assert out['scale_factor'] == (1.0, 1.0)  # not enlarged
    assert_boxes_over_content(out, [results])
    # the mapping the head uses: (box - [left, top, left, top]) / scale_factor
    back = (out['gt_bboxes'].numpy() - [left, top, left, top]) / np.tile(out['scale_factor'], 2)
    np.testing.assert_allclose(back, [[3, 4, 17, 15]], atol=1e-4)


def test_letterbox_scale_factor_composes_with_an_earlier_resize():
    results = make_results(100, 50, [[0, 0, 10, 10]])
    results['scale_factor'] = (0.5, 0.5)
    out = YOLOv7Letterbox(scale=200)(results)
    assert out['scale_factor'] == pytest.approx((0.5 * 2, 0.5 * 2))


def test_letterbox_without_boxes_and_bad_scale():
    results = make_results(10, 10, [])
    del results['gt_bboxes']
    assert YOLOv7Letterbox(scale=16)(results)['img'].shape == (16, 16, 3)
    with pytest.raises(ValueError, match='positive'):
        YOLOv7Letterbox(scale=(0, 16))


# --------------------------------------------------------------------------------------- mosaic

def test_mosaic_chooses_9_images_with_probability_0_2():
    mosaic = YOLOv7Mosaic(img_scale=(32, 32), mosaic9_prob=0.2)
    random.seed(0)
    counts = [len(mosaic.get_indexes(range(10))) for _ in range(5000)]
    assert set(counts) == {3, 8}
    share9 = counts.count(8) / len(counts)
    assert abs(share9 - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 5000)  # within 4 sigma
    assert all(0 <= i < 10 for _ in range(200) for i in mosaic.get_indexes(range(10)))


def test_mosaic_prob_zero_letterboxes_the_single_image():
    mosaic = YOLOv7Mosaic(img_scale=(48, 32), prob=0.0)
    dataset = FakeDataset([random_results(0)])
    assert mosaic.get_indexes(dataset) == []
    out = run_mix_transform(mosaic, dataset)
    assert out['img'].shape == (32, 48, 3) and 'pad_param' in out


@pytest.mark.parametrize('mosaic9_prob', [0.0, 1.0], ids=['4-image', '9-image'])
def test_mosaic_canvas_shape_and_boxes_over_content(mosaic9_prob):
    sources = relabel([random_results(seed) for seed in range(9)])
    dataset = FakeDataset(sources)
    mosaic = YOLOv7Mosaic(img_scale=(64, 48), mosaic9_prob=mosaic9_prob)
    kept = 0
    for seed in range(10):
        random.seed(seed)
        out = run_mix_transform(mosaic, dataset)
        assert out['img'].shape == (96, 128, 3) and out['img_shape'] == (96, 128)
        boxes = out['gt_bboxes'].numpy()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 96).all()
        assert len(boxes) == len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags'])
        kept += len(boxes)
        assert_boxes_over_content(out, sources, min_fraction=0.99)
    assert kept > 10


def test_nine_tiles_touch_and_never_overlap():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sizes = [tuple(int(v) for v in rng.integers(10, 65, size=2)) for _ in range(9)]
        corners = nine_tile_corners(sizes, 64, 64)
        rects = [(x, y, x + w, y + h) for (x, y), (h, w) in zip(corners, sizes)]
        assert rects[0] == (64, 64, 64 + sizes[0][1], 64 + sizes[0][0])
        for i in range(9):
            for j in range(i + 1, 9):
                a, b = rects[i], rects[j]
                overlap_w = min(a[2], b[2]) - max(a[0], b[0])
                overlap_h = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_w <= 0 or overlap_h <= 0, (i, j, a, b)
        # clockwise ring: the top tile sits on the centre, the right tile beside it
        assert rects[1][3] == rects[0][1] and rects[3][0] == rects[0][2]
        assert rects[5][1] == rects[0][3] and rects[7][2] == rects[0][0]
    with pytest.raises(ValueError, match='9 image sizes'):
        nine_tile_corners([(1, 1)] * 4, 8, 8)


def test_mosaic_rejects_unexpected_mix_results():
    results = random_results(0)
    results['mix_results'] = [random_results(1)] * 2
    with pytest.raises(ValueError, match='0, 3 or 8'):
        YOLOv7Mosaic(img_scale=(32, 32))(results)


# --------------------------------------------------------------------------------- random affine

def test_affine_identity_keeps_image_and_boxes():
    results = random_results(3)
    img = results['img'].copy()
    boxes = results['gt_bboxes'].numpy().copy()
    affine = YOLOv7RandomAffine(img_scale=None, max_translate_ratio=0.0, scaling_ratio_range=(1, 1))
    out = affine(results)
    np.testing.assert_array_equal(out['img'], img)
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), boxes)


def test_affine_without_scaling_crops_the_canvas_centre():
    results = make_results(64, 96, [[30, 20, 60, 40], [0, 0, 10, 10]])
    canvas = results['img'].copy()
    affine = YOLOv7RandomAffine(img_scale=(48, 32), max_translate_ratio=0.0, scaling_ratio_range=(1, 1))
    out = affine(results)
    np.testing.assert_array_equal(out['img'], canvas[16:48, 24:72])
    # the corner box falls outside the centre window and is dropped
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[6, 4, 36, 24]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0])


def test_affine_random_warps_keep_boxes_over_content():
    sources = [make_results(128, 128, [[10, 10, 50, 40], [70, 60, 120, 110], [20, 80, 45, 120]])]
    affine = YOLOv7RandomAffine(img_scale=(64, 64), max_translate_ratio=0.2,
                                scaling_ratio_range=(0.5, 1.5))
    for seed in range(10):
        random.seed(seed)
        data = dict(sources[0], img=sources[0]['img'].copy(), gt_bboxes=sources[0]['gt_bboxes'].clone())
        out = affine(data)
        assert out['img'].shape == (64, 64, 3)
        if len(out['gt_bboxes']):
            assert_boxes_over_content(out, sources, min_fraction=0.85)


def test_affine_drops_boxes_that_became_too_small_or_thin():
    affine = YOLOv7RandomAffine(img_scale=None)
    old = np.array([[10.0, 10], [10, 10], [10, 10], [30, 1]])
    new = np.array([[5.0, 5], [2, 10], [3, 3], [30, 1]])
    # scale 0.5: expected areas 25; ratios 1.0, 0.8, 0.36 (w/h 3 > 2 px), and a 30x1 line (h <= 2)
    np.testing.assert_array_equal(affine.keep_boxes(old, new, 0.5), [True, False, True, False])
    tiny = np.array([[10.0, 10]])
    assert not affine.keep_boxes(tiny, np.array([[3.0, 3.0]]), 1.0)  # 9% of the area left
    assert not affine.keep_boxes(np.array([[100.0, 4.2]]), np.array([[100.0, 4.2]]), 1.0)  # w/h > 20


def official_perspective_warp(canvas: np.ndarray, seed: int, *, out_size: int = 32,
                              translate: float = 0.2, scale: float = 0.9) -> np.ndarray:
    """The official ``random_perspective`` image (degrees = shear = perspective = 0), computed here.

    Its warp, ``M = T @ S @ R @ P @ C`` in float64 from the same ``random`` draws, is applied by this
    machine's ``cv2.warpAffine``, so the expectation never depends on the CPU that made a golden.
    """
    random.seed(seed)
    random.uniform(0, 0), random.uniform(0, 0)  # the two perspective terms (P = identity)
    angle = random.uniform(0, 0)
    zoom = random.uniform(1 - scale, 1.1 + scale)
    shear_x, shear_y = (math.tan(math.radians(random.uniform(0, 0))) for _ in range(2))
    move_x, move_y = (random.uniform(0.5 - translate, 0.5 + translate) * out_size for _ in range(2))
    centre = np.array([[1, 0, -canvas.shape[1] / 2], [0, 1, -canvas.shape[0] / 2], [0, 0, 1]])
    rotate = np.vstack([cv2.getRotationMatrix2D((0, 0), angle, zoom), [0, 0, 1]])
    shear = np.array([[1, shear_x, 0], [shear_y, 1, 0], [0, 0, 1]])
    move = np.array([[1, 0, move_x], [0, 1, move_y], [0, 0, 1]])
    warp = move @ shear @ rotate @ centre
    return cv2.warpAffine(canvas, warp[:2], dsize=(out_size, out_size), borderValue=(114, 114, 114))


def assert_off_by_one_at_most(image: np.ndarray, expected: np.ndarray, max_fraction: float) -> None:
    differs = np.abs(image.astype(int) - expected.astype(int))
    assert differs.max() <= 1 and (differs > 0).mean() <= max_fraction


def test_affine_matches_official_random_perspective():
    golden = np.load(GOLDEN)
    canvas = golden['persp_in']
    labels = golden['persp_labels_in']
    affine = YOLOv7RandomAffine(img_scale=(32, 32), max_translate_ratio=0.2,
                                scaling_ratio_range=(0.1, 2.0))
    for seed in range(5):
        results = dict(img=canvas.copy(), gt_bboxes=HorizontalBoxes(labels[:, 1:].astype(np.float32)),
                       gt_bboxes_labels=labels[:, 0].astype(np.int64),
                       gt_ignore_flags=np.zeros(len(labels), bool))
        random.seed(seed)
        random.random(), random.random()  # the official code first draws its 2 perspective terms
        out = affine(results)
        official = official_perspective_warp(canvas, seed)
        # the golden is the official code's own output on another CPU: it ties the warp above to it
        # (OpenCV's SIMD paths may round a pixel differently from CPU to CPU)
        assert_off_by_one_at_most(official, golden[f'persp_out_{seed}'], 0.01)
        # ours builds the warp in float32 (mmdet's matrices), the official in float64
        assert_off_by_one_at_most(out['img'], official, 0.01)
        expected = golden[f'persp_labels_out_{seed}']  # float64 box arithmetic: CPU-independent
        np.testing.assert_array_equal(out['gt_bboxes_labels'], expected[:, 0])
        np.testing.assert_allclose(out['gt_bboxes'].numpy(), expected[:, 1:], atol=1e-3)


# ------------------------------------------------------------------------------------------ HSV

def official_augment_hsv(img: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """The official ``augment_hsv`` result for gains ``(g_h, g_s, g_v)``, computed here: in OpenCV's
    8-bit HSV, ``H -> (H * g_h) mod 180`` and ``S, V -> clip(X * g, 0, 255)``, truncated to uint8."""
    hue, sat, val = np.moveaxis(cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16), -1, 0)
    hsv = np.stack([(hue * gains[0]) % 180, np.clip(sat * gains[1], 0, 255),
                    np.clip(val * gains[2], 0, 255)], -1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def test_hsv_matches_official_augment_hsv():
    """Exact against the official formula run on this machine's OpenCV, with the same draws.

    The stored golden (the official code's output on an AMD EPYC) is only compared to within 1:
    OpenCV's 8-bit HSV -> BGR conversion rounds through float SIMD code, and an Intel Xeon gives
    664 of these 2304 values 1 apart from it.
    """
    golden = np.load(GOLDEN)
    gains = np.array([0.015, 0.7, 0.4])
    aug = YOLOv7HSVRandomAug(hue_gain=gains[0], saturation_gain=gains[1], value_gain=gains[2])
    for seed in range(3):
        np.random.seed(seed)
        official = official_augment_hsv(golden['hsv_in'], 1 + np.random.uniform(-1, 1, 3) * gains)
        assert_off_by_one_at_most(official, golden[f'hsv_out_{seed}'], 0.5)
        np.random.seed(seed)
        out = aug(dict(img=golden['hsv_in'].copy()))
        np.testing.assert_array_equal(out['img'], official)


def test_hsv_rejects_float_images():
    with pytest.raises(ValueError, match='uint8'):
        YOLOv7HSVRandomAug()(dict(img=np.zeros((4, 4, 3), np.float32)))


# ---------------------------------------------------------------------------------------- mixup

def make_mixup(prob: float) -> YOLOv7MixUp:
    return YOLOv7MixUp(prob=prob, pre_transform=[
        dict(type='YOLOv7Mosaic', img_scale=(32, 32), mosaic9_prob=0.5),
        dict(type='YOLOv7RandomAffine', img_scale=(32, 32))])


def test_mixup_fetches_images_only_when_it_mixes():
    mixup = make_mixup(prob=0.15)
    random.seed(1)
    counts = [len(mixup.get_indexes(range(5))) for _ in range(4000)]
    assert set(counts) == {0, 4, 9}  # no mixup, or 1 + the second mosaic's 3 or 8 extras
    share = 1 - counts.count(0) / len(counts)
    assert abs(share - 0.15) < 4 * np.sqrt(0.15 * 0.85 / 4000)


def test_mixup_blends_at_a_beta_ratio_and_concatenates_boxes():
    first = make_results(32, 32, [[2, 2, 12, 12]])
    first['img'][:] = 200
    second = make_results(32, 32, [[4, 4, 30, 30]])
    second['img'][:] = 20
    dataset = FakeDataset([first, second])
    mixup = YOLOv7MixUp(prob=1.0, pre_transform=[
        dict(type='YOLOv7Mosaic', img_scale=(32, 32), prob=0.0),  # second image: plain letterbox
        dict(type='YOLOv7RandomAffine', img_scale=None, max_translate_ratio=0.0,
             scaling_ratio_range=(1, 1))])
    random.seed(0)
    indexes = mixup.get_indexes(dataset)
    results = dataset[0]
    results['mix_results'] = [dataset[1] for _ in indexes]
    np.random.seed(7)
    ratio = np.random.beta(8.0, 8.0)
    np.random.seed(7)
    out = mixup(results)
    assert (out['img'] == np.uint8(200 * ratio + 20 * (1 - ratio))).all()
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[2, 2, 12, 12], [4, 4, 30, 30]])
    assert len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags']) == 2


def test_mixup_without_indexes_is_a_no_op_and_checks_its_config():
    results = random_results(0)
    img = results['img'].copy()
    np.testing.assert_array_equal(make_mixup(prob=0.0)(dict(results, mix_results=[]))['img'], img)
    with pytest.raises(ValueError, match='get_indexes'):
        YOLOv7MixUp(pre_transform=[dict(type='YOLOv7RandomAffine')])
