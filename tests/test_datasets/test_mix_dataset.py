"""``YOLOv7MixDataset`` + ``YOLOv7LoadImageAndAnnotations``: the same samples as mmdet's
``MultiImageMixDataset`` with the plain loaders, without copying images; fit on load as the official
``load_image``; the 4-image layout equal to mmdet's ``Mosaic``; masks carried through the mosaic."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmdet.datasets import MultiImageMixDataset
from mmdet.datasets.transforms import Mosaic
from mmdet.registry import DATASETS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import PolygonMasks
from mmengine.registry import DefaultScope

from yolov7_mmdet.datasets import YOLOv7MixDataset
from yolov7_mmdet.datasets.transforms import YOLOv7LoadImageAndAnnotations, YOLOv7Mosaic

sys.path.insert(0, str(Path(__file__).parent))
from test_transforms import FakeDataset, random_results, relabel  # noqa: E402

SCALE = (64, 64)
# (height, width): shrunk, enlarged, exact, and long sides 98 / 103 where int(L * 64 / L) == 63
SIZES = [(90, 120), (40, 30), (64, 48), (98, 70), (50, 103), (130, 130)]
LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]
MOSAIC_AFFINE = [
    dict(type='YOLOv7Mosaic', img_scale=SCALE, mosaic9_prob=0.5),
    dict(type='YOLOv7RandomAffine', img_scale=SCALE, max_translate_ratio=0.2,
         scaling_ratio_range=(0.5, 1.5)),
]
PIPELINE = [
    *MOSAIC_AFFINE,
    dict(type='YOLOv7MixUp', prob=0.5, pre_transform=MOSAIC_AFFINE),
    dict(type='YOLOv7HSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Configs name mmdet's and this package's types without a scope prefix."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def coco_folder(tmp_path_factory) -> Path:
    """PNG images of ``SIZES`` (noise plus three filled boxes each) and their COCO JSON."""
    folder = tmp_path_factory.mktemp('mix')
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id, (height, width) in enumerate(SIZES):
        img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for _ in range(3):
            w, h = int(rng.integers(4, width // 2)), int(rng.integers(4, height // 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            img[y:y + h, x:x + w] = rng.integers(0, 256, 3)
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=1,
                                    bbox=[x, y, w, h], area=w * h, iscrowd=0))
        cv2.imwrite(str(folder / f'{image_id}.png'), img)
        images.append(dict(id=image_id, file_name=f'{image_id}.png', height=height, width=width))
    categories = [dict(id=1, name='thing')]
    (folder / 'ann.json').write_text(json.dumps(dict(images=images, annotations=annotations,
                                                     categories=categories)))
    return folder


def inner(folder: Path, load_pipeline: list) -> dict:
    return dict(type='CocoJSONDataset', data_root='', ann_file=str(folder / 'ann.json'),
                data_prefix=dict(img=f'{folder}/'), filter_cfg=dict(filter_empty_gt=False),
                pipeline=load_pipeline)


def samples(dataset, seeds) -> list:
    out = []
    for seed in seeds:
        random.seed(seed)
        np.random.seed(seed)
        packed = dataset[seed % len(dataset)]
        out.append((packed['inputs'].numpy(), packed['data_samples'].gt_instances.bboxes.numpy(),
                    packed['data_samples'].gt_instances.labels.numpy(),
                    sorted(packed['data_samples'].metainfo)))
    return out


@pytest.mark.parametrize('cache_images', [False, 'ram', 'disk'])
def test_samples_equal_mmdet_wrapper_with_plain_loaders(coco_folder, tmp_path, cache_images):
    """Same seed, same sample, bit for bit: fitting on load (and caching) changes no pixel."""
    old = MultiImageMixDataset(DATASETS.build(inner(coco_folder, LOAD)), PIPELINE)
    new = YOLOv7MixDataset(inner(coco_folder, [dict(type='YOLOv7LoadImageAndAnnotations')]),
                           PIPELINE, cache_images=cache_images, cache_dir=str(tmp_path / 'cache'))
    assert (new.image_cache is None) == (cache_images is False)
    seeds = range(24)
    for (img_a, box_a, lab_a, meta_a), (img_b, box_b, lab_b, meta_b) in zip(samples(old, seeds),
                                                                            samples(new, seeds)):
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_array_equal(box_a, box_b)
        np.testing.assert_array_equal(lab_a, lab_b)
        assert meta_a == meta_b


def test_wrapper_sets_the_loader_scale_from_the_mosaic(coco_folder):
    dataset = YOLOv7MixDataset(inner(coco_folder, [dict(type='YOLOv7LoadImageAndAnnotations')]),
                               PIPELINE, cache_images=False)
    loader = dataset.dataset.pipeline.transforms[0]
    assert loader.img_scale == SCALE
    results = dataset.dataset[3]  # 98 x 70: int(98 * 64 / 98) == 63, kept as the official does
    assert results['img'].shape[:2] == (63, 45) and results['ori_shape'] == (98, 70)
    assert results['scale'] == SCALE and results['keep_ratio']


def test_wrapper_never_copies_images(coco_folder, monkeypatch):
    """No deepcopy at all, and the cached arrays reach the mosaic as they are (read-only)."""
    import copy
    dataset = YOLOv7MixDataset(inner(coco_folder, [dict(type='YOLOv7LoadImageAndAnnotations')]),
                               [dict(type='YOLOv7Mosaic', img_scale=SCALE, mosaic9_prob=0.0)],
                               cache_images='ram')
    calls = []
    monkeypatch.setattr(copy, 'deepcopy', lambda *a, **k: calls.append(a) or a[0])
    seen = []
    mosaic = dataset.pipeline[0]
    original = mosaic.transform
    monkeypatch.setattr(mosaic, 'transform', lambda r: seen.append(r['img']) or original(r))
    random.seed(0)
    dataset[0]
    assert not calls
    cached = dataset.image_cache.get(dataset.dataset.get_data_info(0)['img_path'])[0]
    assert seen[0] is cached and not cached.flags.writeable
    with pytest.raises(ValueError, match='read-only'):
        cached[0, 0] = 0


def test_retried_transform_starts_from_unchanged_boxes(coco_folder):
    """A transform that changes the boxes in place and returns None is retried on fresh copies."""
    from mmcv.transforms import BaseTransform

    class ShiftThenRetry(BaseTransform):
        calls = 0

        def transform(self, results):
            ShiftThenRetry.calls += 1
            results['gt_bboxes'].translate_((5, 5))
            return None if ShiftThenRetry.calls == 1 else results

    dataset = YOLOv7MixDataset(inner(coco_folder, [dict(type='YOLOv7LoadImageAndAnnotations')]),
                               [], cache_images=False)
    dataset.pipeline, dataset.pipeline_types = [ShiftThenRetry()], ['ShiftThenRetry']
    loaded = dataset.dataset[0]['gt_bboxes'].numpy()
    np.testing.assert_allclose(dataset[0]['gt_bboxes'].numpy(), loaded + 5)


def test_cache_needs_the_fitting_loader(coco_folder):
    with pytest.raises(ValueError, match='YOLOv7LoadImageAndAnnotations'):
        YOLOv7MixDataset(inner(coco_folder, LOAD), PIPELINE, cache_images='ram')
    assert YOLOv7MixDataset(inner(coco_folder, LOAD), PIPELINE).image_cache is None  # 'auto'
    with pytest.raises(ValueError, match='cache_images'):
        YOLOv7MixDataset(inner(coco_folder, LOAD), PIPELINE, cache_images='yes')


@pytest.mark.parametrize('shrink, cv2_flag', [('bilinear', cv2.INTER_LINEAR), ('area', cv2.INTER_AREA)])
def test_loader_fits_as_the_official_load_image(coco_folder, shrink, cv2_flag):
    """Official: ``r = img_size / max(h0, w0)``, ``cv2.resize(img, (int(w0 r), int(h0 r)))``, linear
    when enlarging or training (``augment``), area when shrinking otherwise; boxes scaled by r."""
    loader = YOLOv7LoadImageAndAnnotations(img_scale=SCALE, shrink_interpolation=shrink)
    dataset = DATASETS.build(inner(coco_folder, []))
    for index in range(len(SIZES)):
        info = dataset.get_data_info(index)
        original = cv2.imread(info['img_path'])
        h0, w0 = original.shape[:2]
        r = SCALE[0] / max(h0, w0)
        expected = original if r == 1 else cv2.resize(
            original, (int(w0 * r), int(h0 * r)), interpolation=cv2_flag if r < 1 else cv2.INTER_LINEAR)
        out = loader(dict(info))
        np.testing.assert_array_equal(out['img'], expected)
        boxes = np.array([inst['bbox'] for inst in info['instances']], np.float32)
        np.testing.assert_allclose(out['gt_bboxes'].numpy(), boxes * np.float32(r), rtol=1e-6)


def test_loader_resizes_masks_to_the_fitted_image(coco_folder):
    loader = YOLOv7LoadImageAndAnnotations(
        img_scale=SCALE, load_annotations=dict(type='LoadAnnotations', with_bbox=True,
                                               with_mask=True, poly2mask=False))
    info = DATASETS.build(inner(coco_folder, [])).get_data_info(0)  # 90 x 120 -> 48 x 64
    for inst in info['instances']:
        x1, y1, x2, y2 = inst['bbox']
        inst['mask'] = [[x1, y1, x2, y1, x2, y2, x1, y2]]
    out = loader(info)
    assert (out['gt_masks'].height, out['gt_masks'].width) == (48, 64)
    for poly, box in zip(out['gt_masks'].masks, out['gt_bboxes'].numpy()):
        np.testing.assert_allclose(poly[0][[0, 1, 4, 5]], box, atol=1e-4)


def test_four_image_layout_equals_mmdet_mosaic():
    """Same numpy draws, same canvas and boxes as mmdet's ``Mosaic`` (which it replaced), with tiles
    that need resizing."""
    dataset = FakeDataset(relabel([random_results(s, height=90, max_width=120) for s in range(4)]))
    ours = YOLOv7Mosaic(img_scale=(64, 48), mosaic9_prob=0.0)
    mmdet = Mosaic(img_scale=(64, 48), center_ratio_range=(0.5, 1.5), pad_val=114.0, prob=1.0)
    for seed in range(5):
        outputs = []
        for mosaic in (ours, mmdet):
            results = dataset[0]
            results['mix_results'] = [dataset[i] for i in (1, 2, 3)]
            np.random.seed(seed)
            outputs.append(mosaic.transform(results))
        np.testing.assert_array_equal(outputs[0]['img'], outputs[1]['img'])
        np.testing.assert_array_equal(outputs[0]['gt_bboxes'].numpy(), outputs[1]['gt_bboxes'].numpy())
        np.testing.assert_array_equal(outputs[0]['gt_bboxes_labels'], outputs[1]['gt_bboxes_labels'])


@pytest.mark.parametrize('mosaic9_prob', [0.0, 1.0], ids=['4-image', '9-image'])
def test_mosaic_carries_polygons_with_their_boxes(mosaic9_prob):
    """Rectangular polygons equal to their boxes stay equal to them: moved with their tile, clipped
    to the canvas, dropped with their box."""
    sources = relabel([random_results(s) for s in range(9)])
    for source in sources:
        source['gt_masks'] = PolygonMasks(
            [[box[[0, 1, 2, 1, 2, 3, 0, 3]].astype(np.float64)] for box in source['gt_bboxes'].numpy()],
            *source['img'].shape[:2])
    dataset = FakeDataset(sources)
    mosaic = YOLOv7Mosaic(img_scale=(64, 48), mosaic9_prob=mosaic9_prob)
    for seed in range(6):
        random.seed(seed)
        np.random.seed(seed)
        results = dataset[0]
        results['mix_results'] = [dataset[i] for i in mosaic.get_indexes(dataset)]
        out = mosaic(results)
        masks, boxes = out['gt_masks'], out['gt_bboxes'].numpy()
        assert (masks.height, masks.width) == out['img'].shape[:2] and len(masks) == len(boxes) > 0
        extents = np.array([[p[0][0::2].min(), p[0][1::2].min(), p[0][0::2].max(), p[0][1::2].max()]
                            for p in masks.masks])
        np.testing.assert_allclose(extents, boxes, atol=1e-4)


@pytest.mark.parametrize('mosaic9_prob', [0.0, 1.0], ids=['4-image', '9-image'])
def test_mosaic_leaves_the_images_it_reads_unchanged(mosaic9_prob):
    """Tiles that need resizing, passed without copies: their dicts, images and boxes stay as given."""
    sources = [random_results(s, height=90, max_width=120) for s in range(9)]
    before = [(dict(r), r['img'].copy(), r['gt_bboxes'].numpy().copy()) for r in sources]
    mosaic = YOLOv7Mosaic(img_scale=(64, 48), mosaic9_prob=mosaic9_prob)
    random.seed(0)
    count = len(mosaic.get_indexes(sources))
    mosaic(dict(sources[0], mix_results=sources[1:count + 1]))
    for source, (fields, img, boxes) in zip(sources, before):
        assert source.keys() == fields.keys() and all(source[k] is fields[k] for k in fields)
        np.testing.assert_array_equal(source['img'], img)
        np.testing.assert_array_equal(source['gt_bboxes'].numpy(), boxes)


def test_letterbox_path_drops_the_polygons():
    results = random_results(0)
    results['gt_masks'] = PolygonMasks([[np.zeros(8)]] * 3, *results['img'].shape[:2])
    out = YOLOv7Mosaic(img_scale=SCALE, prob=0.0)(dict(results, mix_results=[]))
    assert 'gt_masks' not in out and len(out['gt_bboxes']) == 3


def test_mosaic_does_not_resize_an_image_fitted_on_load():
    results = random_results(0, height=63, max_width=45)
    results['mix_results'] = [random_results(s, height=63, max_width=45) for s in (1, 2, 3)]
    for r in (results, *results['mix_results']):
        r.update(scale=SCALE, keep_ratio=True)
    shapes = [r['img'].shape for r in (results, *results['mix_results'])]
    mosaic = YOLOv7Mosaic(img_scale=SCALE, mosaic9_prob=0.0)
    tiles = [mosaic._fitted(r) for r in (results, *results['mix_results'])]
    assert [t['img'].shape for t in tiles] == shapes  # not enlarged to 64 high
    assert isinstance(tiles[0]['gt_bboxes'], HorizontalBoxes)


def test_dataloader_workers_use_the_cache_built_before_they_start(tmp_path, coco_folder):
    """The RAM cache is filled when the dataset is built; forked workers read it: with the image
    files gone, every sample still loads."""
    import shutil

    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    folder = tmp_path / 'copy'
    shutil.copytree(coco_folder, folder)
    dataset = YOLOv7MixDataset(inner(folder, [dict(type='YOLOv7LoadImageAndAnnotations')]),
                               PIPELINE, cache_images='ram')
    for png in folder.glob('*.png'):
        png.unlink()
    loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=pseudo_collate,
                        multiprocessing_context='fork')
    batches = list(loader)
    assert sum(len(batch['inputs']) for batch in batches) == len(SIZES)
    assert all(img.shape == (3, *SCALE) for batch in batches for img in batch['inputs'])
