"""The COCO recipe with instance polygons: tight boxes from warped polygons, and paste-in.

Official parity: ``tests/fixtures/polygons_golden.npz`` holds the official ``random_perspective``
(with segments), ``sample_segments`` and ``pastein`` outputs for fixed seeds
(``tests/fixtures/make_polygons_golden.md``); each test replays the same ``random`` draws.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import PolygonMasks
from mmengine.config import Config
from mmengine.registry import init_default_scope
from test_transforms import FakeDataset

from yolov7_mmdet.datasets.transforms import (YOLOv7LoadAnnotations, YOLOv7Mosaic, YOLOv7PasteIn,
                                              YOLOv7RandomAffine)
from yolov7_mmdet.datasets.transforms import paste_in as paste_in_module
from yolov7_mmdet.datasets.transforms import polygons
from yolov7_mmdet.datasets.transforms.paste_in import cut_out_objects, paste_in
from yolov7_mmdet.datasets.transforms.polygons import (flatten_polygons, polygon_boxes,
                                                       resample_polygons)

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN = REPO_ROOT / 'tests' / 'fixtures' / 'polygons_golden.npz'


def split_segments(golden, prefix: str) -> list[np.ndarray]:
    """The golden's concatenated ``(V, 2)`` segments, split by their vertex counts."""
    return np.split(golden[f'{prefix}_segments'], np.cumsum(golden[f'{prefix}_lengths'])[:-1])


def polygon_masks(segments: list[np.ndarray], height: int, width: int) -> PolygonMasks:
    """One single-part instance per ``(K, 2)`` segment."""
    return PolygonMasks([[s.astype(np.float64).reshape(-1)] for s in segments], height, width)


def instance_results(img: np.ndarray, labels: np.ndarray, segments=None) -> dict:
    """Results with ``[cls, x1, y1, x2, y2]`` rows as instances (and their polygons if given)."""
    results = dict(img=img, img_shape=img.shape[:2],
                   gt_bboxes=HorizontalBoxes(labels[:, 1:].astype(np.float32)),
                   gt_bboxes_labels=labels[:, 0].astype(np.int64),
                   gt_ignore_flags=np.zeros(len(labels), bool))
    if segments is not None:
        results['gt_masks'] = polygon_masks(segments, *img.shape[:2])
    return results


@pytest.fixture
def logged(monkeypatch) -> list[str]:
    """The messages ``log_once`` writes during the test (its memory starts empty)."""
    messages = []
    monkeypatch.setattr(polygons, '_LOGGED', set())
    monkeypatch.setattr(polygons, 'print_log', lambda message, logger: messages.append(message))
    return messages


# ------------------------------------------------------------------------------ polygon helpers

def test_resample_is_np_interp_along_the_closed_polygon():
    rng = np.random.default_rng(0)
    parts = [rng.uniform(-20, 120, size=(n, 2)) for n in (3, 7, 50)]
    points = resample_polygons(np.concatenate(parts), np.array([len(p) for p in parts]))
    assert points.shape == (3, 1000, 2)
    for part, resampled in zip(parts, points):
        closed = np.concatenate([part, part[:1]])
        at = np.linspace(0, len(part), 1000)
        expected = np.stack([np.interp(at, np.arange(len(closed)), closed[:, i]) for i in (0, 1)], 1)
        np.testing.assert_allclose(resampled, expected, rtol=0, atol=1e-12)


def test_polygon_boxes_keep_only_points_inside_and_join_parts():
    points = np.array([[[-5, 5], [10, 2], [12, 30]],     # one point outside (x < 0)
                       [[50, 50], [60, 70], [55, 45]],    # all outside a 40 x 40 image
                       [[30, 30], [35, 38], [31, 39]]], float)  # a second part of instance 1
    boxes = polygon_boxes(points, np.array([1, 2]), width=40, height=40)
    np.testing.assert_array_equal(boxes, [[10, 2, 12, 30], [30, 30, 35, 39]])
    assert polygon_boxes(points[1:2], np.array([1]), 40, 40).tolist() == [[0, 0, 0, 0]]


def test_flatten_keeps_parts_and_instances():
    masks = PolygonMasks([[np.arange(6.0), np.arange(8.0)], [np.arange(10.0)]], 20, 20)
    xy, vertices, parts = flatten_polygons(masks)
    assert xy.shape == (12, 2) and vertices.tolist() == [3, 4, 5] and parts.tolist() == [2, 1]


# ---------------------------------------------------------------------------- random affine

def test_affine_with_polygons_matches_official_random_perspective():
    golden = np.load(GOLDEN)
    segments = split_segments(golden, 'affine')
    labels = golden['affine_labels_in']
    canvas = np.full((64, 64, 3), 114, np.uint8)
    affine = YOLOv7RandomAffine(img_scale=(32, 32), max_translate_ratio=0.2,
                                scaling_ratio_range=(0.1, 2.0))
    for seed in range(8):
        results = instance_results(canvas.copy(), labels, segments)
        random.seed(seed)
        random.random(), random.random()  # the official code first draws its 2 perspective terms
        out = affine(results)
        expected = golden[f'affine_labels_out_{seed}']
        assert 'gt_masks' not in out
        np.testing.assert_array_equal(out['gt_bboxes_labels'], expected[:, 0])
        # float32 warp matrix (mmdet's) against the official float64 one
        np.testing.assert_allclose(out['gt_bboxes'].numpy(), expected[:, 1:], atol=2e-3)


def test_affine_polygon_boxes_are_tight_and_kept_above_1_percent():
    # no scaling, no shift: the output is the canvas window [16, 48) x [16, 48), shifted by -16
    affine = YOLOv7RandomAffine(img_scale=(32, 32), max_translate_ratio=0.0,
                                scaling_ratio_range=(1, 1))
    triangle = np.array([[0, 0], [40, 0], [0, 40]], float)  # box (0, 0, 40, 40)
    labels = np.array([[0, 0, 0, 40, 40]], float)

    def canvas():
        return np.full((64, 64, 3), 114, np.uint8)

    # box path: the box's clipped corners, loose (24 x 24, 36% of the area)
    boxes_only = affine(instance_results(canvas(), labels))
    np.testing.assert_allclose(boxes_only['gt_bboxes'].numpy(), [[0, 0, 24, 24]])
    # polygon path: only the hypotenuse x + y = 40 crosses the window, from (16, 24) to (24, 16):
    # a tight 8 x 8 box (resampled points lie ~0.17 px apart), 4% of the old area, kept above 1%
    out = affine(instance_results(canvas(), labels, [triangle]))
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[0, 0, 8, 8]], atol=0.2)
    assert out['gt_bboxes_labels'].tolist() == [0]
    strict = YOLOv7RandomAffine(img_scale=(32, 32), max_translate_ratio=0.0,
                                scaling_ratio_range=(1, 1), polygon_min_area_ratio=0.1)
    assert strict(instance_results(canvas(), labels, [triangle]))['gt_bboxes_labels'].tolist() == []
    # as the official segment2box: an object whose outline lies wholly outside the window has no box
    around = np.array([[0, 0], [64, 0], [64, 64], [0, 64]], float)
    out = affine(instance_results(canvas(), np.array([[1, 0, 0, 64, 64]], float), [around]))
    assert out['gt_bboxes_labels'].tolist() == []


def test_affine_without_polygons_says_so_once(logged):
    affine = YOLOv7RandomAffine(img_scale=(32, 32))
    labels = np.array([[0, 20, 20, 40, 40]], float)
    for _ in range(3):
        affine(instance_results(np.full((64, 64, 3), 114, np.uint8), labels))
    assert len(logged) == 1 and 'box-only' in logged[0]
    affine(instance_results(np.full((64, 64, 3), 114, np.uint8), labels,
                            [np.array([[20, 20], [40, 20], [40, 40]], float)]))
    assert len(logged) == 1


def test_affine_rejects_misaligned_polygons():
    results = instance_results(np.full((64, 64, 3), 114, np.uint8),
                               np.array([[0, 20, 20, 40, 40], [1, 0, 0, 9, 9]], float),
                               [np.array([[20, 20], [40, 20], [40, 40]], float)])
    with pytest.raises(ValueError, match='1 polygons'):
        YOLOv7RandomAffine(img_scale=(32, 32))(results)


# ----------------------------------------------------------------------------------- mosaic

def rectangle_results(seed: int, height: int = 48, width: int = 64, with_masks: bool = True) -> dict:
    """Three random boxes, each with its own rectangle as a polygon (so polygon bounds = box)."""
    rng = np.random.default_rng(seed)
    x1, y1 = rng.integers(0, width - 10, 3), rng.integers(0, height - 10, 3)
    x2, y2 = x1 + rng.integers(4, 10, 3), y1 + rng.integers(4, 10, 3)
    labels = np.stack([np.arange(3) + 3 * seed, x1, y1, x2, y2], 1).astype(float)
    segments = [np.array([[a, b], [c, b], [c, d], [a, d]], float)
                for a, b, c, d in labels[:, 1:]]
    img = rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8)
    return instance_results(img, labels, segments if with_masks else None)


def polygon_bounds(masks: PolygonMasks) -> np.ndarray:
    return np.array([[p[0::2].min(), p[1::2].min(), p[0::2].max(), p[1::2].max()]
                     for instance in masks.masks for p in instance])


@pytest.mark.parametrize('mosaic9_prob', [0.0, 1.0], ids=['4-image', '9-image'])
def test_mosaic_carries_polygons_with_their_boxes(mosaic9_prob):
    mosaic = YOLOv7Mosaic(img_scale=(32, 24), mosaic9_prob=mosaic9_prob)
    sources = [rectangle_results(seed) for seed in range(9)]
    checked = 0
    for seed in range(12):
        random.seed(seed)
        count = len(mosaic.get_indexes(range(9)))
        results = dict(sources[seed % 9], mix_results=[sources[(seed + k) % 9] for k in
                                                       range(1, count + 1)])
        out = mosaic(results)
        masks, boxes = out['gt_masks'], out['gt_bboxes'].numpy()
        assert len(masks) == len(boxes) == len(out['gt_bboxes_labels'])
        assert (masks.height, masks.width) == out['img_shape'] == (48, 64)
        # polygons were scaled (0.5) and shifted with their tile and clipped to the canvas, as boxes
        np.testing.assert_allclose(polygon_bounds(masks).reshape(-1, 4), boxes, atol=1e-4)
        checked += len(boxes)
    assert checked > 20


def test_mosaic_drops_polygons_when_a_tile_has_none_or_without_mosaic():
    random.seed(0)
    with_masks = [rectangle_results(seed) for seed in range(3)]
    out = YOLOv7Mosaic(img_scale=(32, 24), mosaic9_prob=0.0)(
        dict(rectangle_results(3, with_masks=False), mix_results=with_masks))
    assert 'gt_masks' not in out and len(out['gt_bboxes'])
    out = YOLOv7Mosaic(img_scale=(32, 24), prob=0.0)(dict(rectangle_results(0), mix_results=[]))
    assert 'gt_masks' not in out  # the official passes no segments without a mosaic


# --------------------------------------------------------------------------------- paste-in

def golden_samples(golden, prefix: str, count: int) -> list[tuple[int, np.ndarray]]:
    """The official cut-outs; their "masks" are the cut-out images (one array, see paste_in.py)."""
    for k in range(count):
        np.testing.assert_array_equal(golden[f'{prefix}_{k}_mask'], golden[f'{prefix}_{k}_image'])
    return [(int(golden[f'{prefix}_{k}_label']), golden[f'{prefix}_{k}_image']) for k in range(count)]


def test_cut_out_objects_matches_official_sample_segments():
    golden = np.load(GOLDEN)
    img, labels = golden['sample_img'], golden['sample_labels_in']
    masks = polygon_masks(split_segments(golden, 'sample'), *img.shape[:2])
    seen = 0
    for seed in range(4):
        random.seed(seed)
        samples = cut_out_objects(img, labels[:, 1:], labels[:, 0].astype(np.int64),
                                  np.zeros(len(labels), bool), masks)
        expected = golden_samples(golden, f'sample_{seed}', int(golden[f'sample_count_{seed}']))
        assert [s[0] for s in samples] == [e[0] for e in expected]
        for (_, image), (_, expected_image) in zip(samples, expected):
            np.testing.assert_array_equal(image, expected_image)  # exact: drawing, no resampling
            seen += 1
    assert seen >= 10


def test_cut_out_objects_skips_crowds():
    golden = np.load(GOLDEN)
    img, labels = golden['sample_img'], golden['sample_labels_in']
    masks = polygon_masks(split_segments(golden, 'sample'), *img.shape[:2])
    ignore = np.ones(len(labels), bool)
    ignore[2] = False
    random.seed(0)
    samples = cut_out_objects(img, labels[:, 1:], labels[:, 0].astype(np.int64), ignore, masks)
    assert samples == []  # one candidate: round(0.5 * 1) = 0 cut-outs (banker's rounding)
    ignore[3] = False
    samples = cut_out_objects(img, labels[:, 1:], labels[:, 0].astype(np.int64), ignore, masks)
    assert len(samples) == 1 and samples[0][0] in (12, 13)


def test_paste_in_matches_official_pastein():
    golden = np.load(GOLDEN)
    pool = golden_samples(golden, 'paste_pool', int(golden['paste_pool_count']))
    labels_in = golden['paste_labels_in']
    pasted = 0
    for seed in range(6):
        img = golden['paste_img_in'].copy()
        random.seed(seed)
        boxes, labels = paste_in(img, labels_in[:, 1:], pool)
        expected = golden[f'paste_labels_out_{seed}']
        np.testing.assert_array_equal(boxes, expected[:, 1:])
        assert labels == expected[len(labels_in):, 0].astype(int).tolist()
        # cv2.resize of the cut-outs may differ by 1 between CPUs (SIMD paths); a mask pixel that
        # flips at an object's outline moves a whole pixel value, so allow a few of those
        differs = np.abs(img.astype(int) - golden[f'paste_img_out_{seed}'].astype(int))
        assert (differs > 1).mean() < 0.002, (differs > 1).sum()
        pasted += len(labels)
    assert pasted >= 6


class PolygonDataset(FakeDataset):
    """Also ``get_data_info``, whose instance counts ``YOLOv7PasteIn.get_indexes`` reads."""

    def get_data_info(self, index):
        item = self.items[index]
        mask = {'mask': [[0.0] * 6]} if 'gt_masks' in item else {}
        return dict(instances=[dict(ignore_flag=0, **mask) for _ in item['gt_bboxes_labels']])


def test_paste_in_fetches_4_image_groups_until_enough_objects():
    dataset = PolygonDataset([rectangle_results(seed) for seed in range(5)])  # 3 objects each
    paste = YOLOv7PasteIn(prob=1.0, img_scale=(32, 24), min_samples=30)
    random.seed(0)
    # each group of 4 images: 12 objects -> round(6) cut-outs expected; 30 needs 5 groups
    assert len(paste.get_indexes(dataset)) == 20
    assert len(YOLOv7PasteIn(prob=1.0, min_samples=30, max_mosaics=2).get_indexes(dataset)) == 8
    assert YOLOv7PasteIn(prob=0.0).get_indexes(dataset) == []
    random.seed(1)
    counts = [len(YOLOv7PasteIn(prob=0.15, min_samples=6).get_indexes(dataset)) for _ in range(2000)]
    assert set(counts) == {0, 4}
    assert abs(counts.count(4) / 2000 - 0.15) < 4 * np.sqrt(0.15 * 0.85 / 2000)


def test_paste_in_on_box_only_data_fetches_nothing_and_says_so(logged):
    dataset = PolygonDataset([rectangle_results(seed, with_masks=False) for seed in range(5)])
    assert YOLOv7PasteIn(prob=1.0).get_indexes(dataset) == []
    assert len(logged) == 1 and 'nothing is pasted' in logged[0]
    # images fetched for it without gt_masks (e.g. LoadAnnotations without masks): a no-op
    results = rectangle_results(9, with_masks=False)
    img = results['img'].copy()
    out = YOLOv7PasteIn(prob=1.0, img_scale=(32, 24))(
        dict(results, mix_results=[dataset[i] for i in range(4)]))
    np.testing.assert_array_equal(out['img'], img)
    assert len(out['gt_bboxes']) == 3 and len(logged) == 1


def test_paste_in_transform_adds_pasted_objects_without_touching_its_input():
    sources = [rectangle_results(seed, height=96, width=128) for seed in range(8)]
    results = rectangle_results(20, height=160, width=160, with_masks=False)
    original = results['img'].copy()
    paste = YOLOv7PasteIn(prob=1.0, img_scale=(64, 48))
    added = 0
    for seed in range(5):
        random.seed(seed)
        out = paste(dict(results, mix_results=[sources[i] for i in range(8)]))
        n = len(out['gt_bboxes'])
        assert n == len(out['gt_bboxes_labels']) == len(out['gt_ignore_flags'])
        assert not out['gt_ignore_flags'].any()
        boxes = out['gt_bboxes'].numpy()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 160).all()
        assert set(out['gt_bboxes_labels'][3:]) <= set(range(24))  # the sources' labels
        added += n - 3
    np.testing.assert_array_equal(results['img'], original)
    assert added > 0
    with pytest.raises(ValueError, match='groups of 4'):
        paste(dict(results, mix_results=sources[:3]))
    with pytest.raises(ValueError, match='after YOLOv7RandomAffine'):
        paste(dict(rectangle_results(0), mix_results=sources[:4]))


# ------------------------------------------------------------------ the COCO config, end to end

def write_coco(root: Path, with_polygons: bool) -> None:
    """Four 64 x 80 images with two filled polygons each (and a crowd), as a COCO JSON."""
    (root / 'images').mkdir(parents=True)
    shapes = [np.array([[6, 6], [40, 10], [14, 44]]), np.array([[44, 30], [76, 28], [70, 60],
                                                                  [58, 50], [46, 58]])]
    images, annotations = [], []
    for i in range(4):
        img = np.full((64, 80, 3), 40, np.uint8)
        for k, shape in enumerate(shapes):
            polygon = shape + [i * 2, i]
            cv2.fillPoly(img, [polygon.astype(np.int32)], (60 + 80 * k, 200 - 60 * k, 90 + 40 * i))
            x1, y1 = polygon.min(0)
            x2, y2 = polygon.max(0)
            annotation = dict(id=len(annotations) + 1, image_id=i + 1, category_id=k + 1,
                              bbox=[int(x1), int(y1), int(x2 - x1), int(y2 - y1)], iscrowd=0,
                              area=float((x2 - x1) * (y2 - y1)))
            if with_polygons:
                annotation['segmentation'] = [polygon.reshape(-1).astype(float).tolist()]
            annotations.append(annotation)
        crowd = dict(id=len(annotations) + 1, image_id=i + 1, category_id=1, iscrowd=1,
                     bbox=[60, 2, 16, 12], area=192.0)
        if with_polygons:  # a crowd's RLE: mmdet makes it an ignored dummy polygon
            crowd['segmentation'] = dict(counts=[64 * 60 + 2, 12, 52], size=[64, 80])
        annotations.append(crowd)
        cv2.imwrite(str(root / 'images' / f'{i}.png'), img)
        images.append(dict(id=i + 1, file_name=f'{i}.png', height=64, width=80))
    categories = [dict(id=1, name='triangle'), dict(id=2, name='pentagon')]
    (root / 'train.json').write_text(json.dumps(dict(images=images, annotations=annotations,
                                                     categories=categories)))


def coco_train_dataset(root: Path):
    """The shipped tiny COCO config's training set on ``root``, with mixup and paste-in forced on."""
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_tiny_8xb16-300e_coco.py'))
    init_default_scope('mmdet')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.dataset.update(data_root=str(root) + '/', ann_file='train.json',
                               data_prefix=dict(img='images/'),
                               metainfo=dict(classes=('triangle', 'pentagon')))
    for transform in dataset_cfg.pipeline:
        if transform['type'] in ('YOLOv7MixUp', 'YOLOv7PasteIn'):
            transform['prob'] = 1.0
    return DATASETS.build(dataset_cfg)


def test_coco_config_loads_polygons_and_uses_paste_in():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_tiny_8xb16-300e_coco.py'))
    assert cfg.train_dataloader.dataset.dataset.pipeline[0]['load_annotations']['type'] == 'YOLOv7LoadAnnotations'
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert types.index('YOLOv7HSVRandomAug') + 1 == types.index('YOLOv7PasteIn') \
        == types.index('RandomFlip') - 1  # after the colour jitter, before the flip, as official
    for name, prob in (('yolov7_tiny', 0.05), ('yolov7_l', 0.15), ('yolov7_w6', 0.15)):
        cfg = Config.fromfile(str(REPO_ROOT / 'configs' / f'{name}.py'))
        paste = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'YOLOv7PasteIn']
        mosaic = [t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'YOLOv7Mosaic']
        assert paste[0]['prob'] == prob and paste[0]['img_scale'] == mosaic[0]['img_scale']


def test_loader_reads_polygons_only_where_every_instance_has_one(tmp_path):
    loader = YOLOv7LoadAnnotations()
    box = dict(bbox=[1, 2, 5, 6], bbox_label=0, ignore_flag=0)
    both = dict(ori_shape=(20, 20), instances=[dict(box, mask=[[1, 2, 5, 2, 5, 6]])])
    assert len(loader(both)['gt_masks']) == 1
    mixed = dict(ori_shape=(20, 20), instances=[dict(box, mask=[[1, 2, 5, 2, 5, 6]]), dict(box)])
    out = loader(mixed)
    assert 'gt_masks' not in out and len(out['gt_bboxes']) == 2


@pytest.mark.parametrize('with_polygons', [True, False], ids=['polygons', 'box-only'])
def test_coco_pipeline_end_to_end(with_polygons, tmp_path, logged, monkeypatch):
    write_coco(tmp_path, with_polygons)
    pasted = []

    def recording_paste_in(*args):
        boxes, labels = paste_in(*args)
        pasted.append(len(labels))
        return boxes, labels

    monkeypatch.setattr(paste_in_module, 'paste_in', recording_paste_in)
    dataset = coco_train_dataset(tmp_path)
    for index in range(4):
        random.seed(index)
        np.random.seed(index)
        sample = dataset[index]
        assert tuple(sample['inputs'].shape) == (3, 640, 640)
        instances = sample['data_samples'].gt_instances
        boxes = instances.bboxes.tensor.numpy() if hasattr(instances.bboxes, 'tensor') \
            else instances.bboxes.numpy()
        assert len(boxes) > 0
        assert (boxes >= 0).all() and (boxes <= 640).all()
        assert (boxes[:, 2:] - boxes[:, :2] > 2).all()  # box_candidates' 2 px (pasted: 10 px)
        assert set(instances.labels.tolist()) <= {0, 1}
        assert 'masks' not in instances  # the polygons end at the affine, as the official
    box_only_logged = any('box-only' in message for message in logged)
    if with_polygons:
        assert not box_only_logged and sum(pasted) > 0
    else:
        assert box_only_logged and pasted == []
        assert any('nothing is pasted' in message for message in logged)


def test_vectorised_scale_and_translate_equal_mmdets_loops_bit_for_bit():
    """The loader's and the mosaic's polygon steps give exactly mmdet's resize / two translates."""
    from yolov7_mmdet.datasets.transforms.polygons import scale_polygons, translate_polygons
    rng = np.random.default_rng(0)
    masks = PolygonMasks([[rng.uniform(-20, 500, 2 * n) for n in counts]
                          for counts in ([3, 5], [4], [7, 3, 6])], 480, 500)
    ours, theirs = scale_polygons(masks, (317, 331)), masks.resize((317, 331))
    moved = translate_polygons(ours, (-37, 120), (640, 640))
    expected = theirs.translate((640, 640), -37, direction='horizontal').translate(
        (640, 640), 120, direction='vertical')
    for got, want in ((ours, theirs), (moved, expected)):
        assert (got.height, got.width) == (want.height, want.width)
        assert [len(obj) for obj in got.masks] == [len(obj) for obj in want.masks]
        for got_obj, want_obj in zip(got.masks, want.masks):
            for got_part, want_part in zip(got_obj, want_obj):
                np.testing.assert_array_equal(got_part, want_part)
    assert len(translate_polygons(PolygonMasks([], 8, 8), (1, 1), (16, 16))) == 0
