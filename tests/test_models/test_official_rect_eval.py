"""The COCO configs evaluate exactly as the official ``test.py`` (rectangular batches, see rect_eval.py).

Goldens (tests/fixtures/make_official_rect_eval.md), made by running the official code on coco128:

* ``official_rect_batches_coco128.json``: for ``--img 640 --batch 32`` (stride 32), ``--img 1280
  --batch 32`` (stride 64) and ``--img 640 --batch 7``, every image's batch, batch shape, resized size
  and letterbox padding from the official ``LoadImagesAndLabels(rect=True, pad=0.5)``;
* ``official_rect_eval_tiny96.npz``: ``test.py``'s loop (``--img 96 --batch 3``) on 7 coco128 images
  with an official yolov7-tiny whose weights are ``official_weight`` (detect layer changed by
  :func:`sparse_detections` so that a few hundred boxes per image pass 0.001), saved as
  ``strip_optimizer`` leaves it and loaded with ``attempt_load``: the uint8 input batches and the
  final detections per image (after NMS and ``scale_coords``, in original pixels).

Equal aspect ratios are ordered by ``np.argsort`` in both codes; where such ties straddle a batch
boundary another CPU's numpy may order them otherwise (in both codes alike), so the batch contents
are compared up to those ties. OpenCV's resize can differ by 1 in some pixels between CPUs: the
input batches are compared to the official ones within 1 grey level.
"""
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dataset import DefaultSampler
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from official_format import official_model, save_official, stripped_checkpoint
from test_official_checkpoint import official_state_with_anchors
from test_official_conversion import FIXTURES, load_converter_tool
from yolov7_builders import build_model

from yolov7_mmdet.datasets.rect_eval import (YOLOv7RectBatchSampler, eval_protocol_of, rect_batch_shape,
                                             set_eval_protocol, yolov7_rect_collate)
from yolov7_mmdet.datasets.sources.coco_json import write_coco_json
from yolov7_mmdet.datasets.sources.yolo_txt import read_yolo_txt

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
TINY_COCO = CONFIGS / 'yolov7' / 'yolov7_tiny_8xb16-300e_coco.py'
BATCH_GOLDENS = json.loads((FIXTURES / 'official_rect_batches_coco128.json').read_text())


def sparse_detections(key: str, tensor: torch.Tensor, *, obj_offset: float, cls_offset: float,
                      weight_gain: float) -> torch.Tensor:
    """The golden model's detect layer (official layer 77 of yolov7-tiny): ImplicitM around 1, 1x1
    convs scaled by ``weight_gain``, objectness / class biases shifted (as the script that made it)."""
    if not key.startswith('model.77.') or key.endswith(('anchors', 'anchor_grid')):
        return tensor
    if '.im.' in key:
        return tensor + 1
    if key.endswith('.weight'):
        return tensor * weight_gain
    if key.endswith('.bias') and '.m.' in key:
        tensor = tensor.view(3, 85).clone()  # (anchors, 5 + classes)
        tensor[:, 4] += obj_offset
        tensor[:, 5:] += cls_offset
        return tensor.view(-1)
    return tensor


@pytest.fixture(scope='module')
def coco128(shared_datasets, tmp_path_factory):
    """coco128 as COCO JSON (image sizes included): ``(ann_file, image_dir)``."""
    image_dir = shared_datasets / 'coco128' / 'images' / 'train'
    ann_file = write_coco_json(read_yolo_txt(image_dir, classes='coco'),
                               tmp_path_factory.mktemp('coco128') / 'coco128.json', image_root=image_dir)
    return ann_file, image_dir


def rect_loader(ann_file, image_dir, *, img_size: int, batch_size: int, stride: int):
    """The tiny COCO config's validation loader (the official protocol) on ``ann_file`` at ``img_size``."""
    init_default_scope('mmdet')
    loader = Config.fromfile(str(TINY_COCO)).val_dataloader
    loader.dataset.update(data_root='', ann_file=str(ann_file), data_prefix=dict(img=f'{image_dir}/'))
    loader.dataset.pipeline[1].scale = img_size
    loader.collate_fn.update(img_size=img_size, stride=stride)
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    return Runner.build_dataloader(loader.to_dict())


def golden_rows(key: str) -> dict:
    """Per image name: the official batch, batch shape, resized size, float padding and ``h / w``."""
    columns = ('batch', 'batch_h', 'batch_w', 'resized_h', 'resized_w', 'pad_w', 'pad_h', 'ori_h', 'ori_w')
    rows = {row[0]: dict(zip(columns, row[1:])) for row in BATCH_GOLDENS[key]}
    for row in rows.values():
        row['ratio'] = row['ori_h'] / row['ori_w']
    return rows


def image_names(dataset, indices) -> list:
    return [Path(dataset.get_data_info(index)['img_path']).name for index in indices]


@pytest.mark.parametrize('key', sorted(BATCH_GOLDENS))
def test_batches_and_batch_shapes_are_the_official_ones(coco128, key):
    img_size, stride, batch_size = (int(part.lstrip('sb')) for part in key.split('_'))
    dataset = rect_loader(*coco128, img_size=img_size, batch_size=batch_size, stride=stride).dataset
    ours = [image_names(dataset, batch) for batch in
            YOLOv7RectBatchSampler(DefaultSampler(dataset, shuffle=False), batch_size)]
    golden = golden_rows(key)
    official = defaultdict(list)
    for name, row in golden.items():
        official[row['batch']].append(name)
    assert len(ours) == len(official) and sorted(sum(ours, [])) == sorted(golden)
    by_path = sorted(golden)  # the official sorts the image paths (one folder here)
    if [by_path[i] for i in np.argsort([golden[n]['ratio'] for n in by_path])] == list(golden):
        assert sum(ours, []) == list(golden)  # this numpy orders equal ratios as the golden's did
    ratio = {Path(info['img_path']).name: info['height'] / info['width'] for info in
             (dataset.get_data_info(i) for i in range(len(dataset)))}
    batches_of_ratio = defaultdict(set)
    for name, row in golden.items():
        batches_of_ratio[ratio[name]].add(row['batch'])
    for index, names in enumerate(ours):
        assert sorted(ratio[n] for n in names) == sorted(ratio[n] for n in official[index])
        # images move between batches only where equal ratios straddle a boundary (np.argsort ties)
        assert all(len(batches_of_ratio[ratio[n]]) > 1 for n in set(names) ^ set(official[index]))
        first = golden[official[index][0]]
        assert rect_batch_shape([ratio[n] for n in names], img_size=img_size, stride=stride) == (
            first['batch_h'], first['batch_w'])


def test_loader_pads_and_scales_every_image_as_the_official_one(coco128):
    """``--img 640 --batch 32`` on all of coco128: batch shape, resize, float padding, gain."""
    golden = golden_rows('640_s32_b32')
    shapes_of_ratio = defaultdict(set)  # more than one where equal ratios straddle batches (ties)
    for name, row in golden.items():
        shapes_of_ratio[row['ratio']].add((row['batch_h'], row['batch_w']))
    loader = rect_loader(*coco128, img_size=640, batch_size=32, stride=32)
    exact = 0
    for batch in loader:
        assert batch['inputs'].dtype == torch.uint8
        for sample in batch['data_samples']:
            row = golden[Path(sample.img_path).name]
            gain = row['resized_h'] / sample.ori_shape[0]
            assert sample.scale_factor == (gain, gain)
            shape = tuple(batch['inputs'].shape[2:])
            assert shape == sample.img_shape and shape in shapes_of_ratio[row['ratio']]
            if shape == (row['batch_h'], row['batch_w']):
                half_h, half_w = row['pad_h'], row['pad_w']
                np.testing.assert_array_equal(sample.pad_param, [half_h, half_h, half_w, half_w])
                exact += 1
    assert exact > 100


@pytest.fixture(scope='module')
def golden_model(tmp_path_factory):
    """The golden's seeded yolov7-tiny, written as an official stripped fp16 file and converted."""
    golden = np.load(FIXTURES / 'official_rect_eval_tiny96.npz')
    obj_offset, cls_offset, weight_gain = golden['detect_changes'].tolist()
    state = {key: sparse_detections(key, value, obj_offset=obj_offset, cls_offset=cls_offset,
                                    weight_gain=weight_gain)
             for key, value in official_state_with_anchors(build_model('tiny', device='meta')).items()}
    folder = tmp_path_factory.mktemp('rect_eval_model')
    save_official(stripped_checkpoint(official_model(state)), folder / 'yolov7-tiny.pt')
    load_converter_tool().main([str(folder / 'yolov7-tiny.pt'), str(folder / 'tiny.pth'), '--arch', 'tiny'])
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(str(TINY_COCO)).model)
    load_checkpoint(model, str(folder / 'tiny.pth'), map_location='cpu', strict=True, logger='silent')
    return model.eval()


def assert_same_detections(pred, expected: torch.Tensor) -> None:
    """Equal detections up to the order of near-equal scores (fused vs unfused convs round differently)."""
    assert len(pred.scores) == len(expected) > 100
    # each official detection's nearest of ours (same class): a one-to-one match within float tolerance
    distance = (pred.bboxes[None] - expected[:, None, :4]).abs().amax(-1)  # (official, ours)
    distance[expected[:, None, 5].long() != pred.labels[None]] = float('inf')
    match = distance.argmin(1)
    assert sorted(match.tolist()) == list(range(len(expected)))
    torch.testing.assert_close(pred.bboxes[match], expected[:, :4], rtol=1e-5, atol=2e-3)
    torch.testing.assert_close(pred.scores[match], expected[:, 4], rtol=1e-4, atol=1e-7)


def test_inputs_and_detections_equal_the_official_test_py(shared_datasets, golden_model, tmp_path):
    golden = np.load(FIXTURES / 'official_rect_eval_tiny96.npz')
    names = [str(name) for b in range(3) for name in golden[f'names_{b}']]
    image_dir = shared_datasets / 'coco128' / 'images' / 'train'
    listing = tmp_path / 'images.txt'
    listing.write_text(''.join(f'{image_dir / name}\n' for name in sorted(names)))
    ann_file = write_coco_json(read_yolo_txt(listing, classes='coco'), tmp_path / 'seven.json',
                               image_root=image_dir)
    loader = rect_loader(ann_file, image_dir, img_size=int(golden['img_size']),
                         batch_size=int(golden['batch_size']), stride=int(golden['stride']))
    batches = list(loader)
    assert len(batches) == 3
    for b, batch in enumerate(batches):
        samples = batch['data_samples']
        assert [Path(s.img_path).name for s in samples] == golden[f'names_{b}'].tolist()
        official = torch.from_numpy(golden[f'inputs_{b}'])  # (B, 3, H, W) uint8 RGB
        ours = batch['inputs'].flip(1)  # BGR -> RGB
        assert ours.shape == official.shape
        difference = (ours.int() - official.int()).abs()
        assert difference.max() <= 1 and (difference > 0).float().mean() < 0.05  # CPU-dependent resize
        # the official input through our model, NMS and rescale (with our loader's metadata)
        with torch.no_grad():
            results = golden_model.test_step(dict(inputs=official.flip(1), data_samples=samples))
        for i, result in enumerate(results):
            expected = torch.from_numpy(golden[f'dets_{b}_{i}'])  # x1 y1 x2 y2 score class
            assert_same_detections(result.pred_instances, expected)


def test_collate_refuses_images_the_official_resize_did_not_make():
    """A square letterbox (a config that kept its square pipeline) would fit a 672 x 672 batch."""
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_path='a.jpg', ori_shape=(480, 640)))
    letterboxed = torch.zeros(3, 640, 640, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r'a.jpg: a 640 x 640 image .* gives 480 x 640; the official'):
        yolov7_rect_collate([dict(inputs=letterboxed, data_samples=sample)], img_size=640, stride=32)


class _Sized:
    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def get_data_info(self, index):
        width, height = self.sizes[index]
        return dict(img_path=f'{index:03d}.jpg', width=width, height=height)


def test_ranks_take_whole_batches_and_every_image_once(monkeypatch):
    dataset = _Sized([(640, 480 + 7 * i) for i in range(23)])
    sampler = DefaultSampler(dataset, shuffle=False)
    single = list(YOLOv7RectBatchSampler(sampler, 4))
    per_rank = []
    for rank in range(3):
        monkeypatch.setattr('yolov7_mmdet.datasets.rect_eval.get_dist_info', lambda rank=rank: (rank, 3))
        per_rank.append(list(YOLOv7RectBatchSampler(sampler, 4)))
    assert [len(batches) for batches in per_rank] == [2, 2, 2]
    assert per_rank[1] == single[1::3] and sorted(sum(sum(per_rank, []), [])) == list(range(23))


def test_protocols_convert_both_ways():
    cfg = Config.fromfile(str(TINY_COCO))
    official = cfg.val_dataloader.to_dict()
    assert (eval_protocol_of(cfg.val_dataloader), eval_protocol_of(cfg.test_dataloader)) == (
        'official', 'square')  # test_dataloader: square for DetInferencer, export, mmdet's tools
    assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline
    set_eval_protocol(cfg, 'square')
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_pipeline  # the config's square letterbox
    assert 'batch_sampler' not in cfg.val_dataloader and 'collate_fn' not in cfg.val_dataloader
    set_eval_protocol(cfg, 'official')
    assert cfg.val_dataloader.to_dict() == official
    assert eval_protocol_of(cfg.test_dataloader) == 'official'
    p6 = Config.fromfile(str(CONFIGS / 'yolov7' / 'yolov7_w6_8xb16-300e_coco.py'))
    assert p6.val_dataloader.collate_fn == dict(type='yolov7_rect_collate', img_size=1280, stride=64)
    assert p6.test_dataloader.dataset.pipeline == p6.test_pipeline
    custom = Config.fromfile(str(CONFIGS / 'yolov7' / 'yolov7_tiny_custom.py'))
    assert eval_protocol_of(custom.val_dataloader) == 'square'  # custom configs stay square
    assert 'collate_fn' not in custom.test_dataloader and 'batch_sampler' not in custom.test_dataloader
    set_eval_protocol(custom, 'official')
    assert custom.test_dataloader.batch_size == 32 and custom.test_dataloader.collate_fn.stride == 32
    with pytest.raises(ValueError, match="'official' or 'square'"):
        set_eval_protocol(custom, 'rect')
    smaller = Config.fromfile(str(TINY_COCO))  # validating in rectangular batches of 16
    smaller.val_dataloader.batch_size = 16
    set_eval_protocol(smaller, 'official')  # as tools/test.py does: the test loader follows
    assert smaller.test_dataloader.batch_size == smaller.val_dataloader.batch_size == 16


def test_export_describes_the_square_protocol_of_an_official_config():
    from yolov7_mmdet.deployment.export import default_input_hw
    assert default_input_hw(Config.fromfile(str(TINY_COCO))) == (640, 640)
    assert default_input_hw(Config.fromfile(str(CONFIGS / 'yolov7' / 'yolov7_w6_8xb16-300e_coco.py'))) == (
        1280, 1280)


def test_test_tool_evaluates_either_protocol(tmp_path):
    """tools/test.py --eval-protocol official / square on the demo config (square by default)."""
    import importlib.util
    import pickle

    from yolov7_mmdet.datasets.demo import make_demo_dataset
    spec = importlib.util.spec_from_file_location('test_tool', CONFIGS.parent / 'tools' / 'test.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    make_demo_dataset(tmp_path / 'data', num_train=1, num_val=6, image_size=128, seed=4)
    init_default_scope('mmdet')
    demo = Config.fromfile(str(CONFIGS / 'demo' / 'yolov7_tiny_demo.py'))
    torch.manual_seed(0)
    model = MODELS.build(demo.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'model.pth')
    options = [f'test_dataloader.dataset.data_root={tmp_path}/data/',
               f'test_evaluator.ann_file={tmp_path}/data/annotations/val.json', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False', 'test_dataloader.batch_size=4']
    results = {}
    for protocol in ('official', 'square'):
        tool.main([str(CONFIGS / 'demo' / 'yolov7_tiny_demo.py'), str(tmp_path / 'model.pth'), '--eval-protocol',
                   protocol, '--work-dir', str(tmp_path / protocol), '--out', str(tmp_path / f'{protocol}.pkl'),
                   '--cfg-options', *options])
        with open(tmp_path / f'{protocol}.pkl', 'rb') as file:
            results[protocol] = {r['img_id']: r['pred_instances'] for r in pickle.load(file)}
    assert sorted(results['official']) == sorted(results['square']) == list(range(6))
    assert any(len(p['scores']) for p in results['official'].values())
    assert any(len(results['official'][i]['scores']) != len(results['square'][i]['scores']) or
               not torch.allclose(results['official'][i]['bboxes'], results['square'][i]['bboxes'])
               for i in range(6))  # the inputs differ: 128 x 160 batches, not 128 x 128 images
    with pytest.raises(SystemExit):
        tool.parse_args(['cfg.py', 'ckpt.pth', '--tta', '--eval-protocol', 'official'])


@pytest.mark.parametrize('hw, scale, expected_hw, interpolation', [
    ((333, 500), 96, (63, 96), 'INTER_AREA'),  # floored: 333 * 96 / 500 = 63.9 (mmdet's Resize: 64)
    ((150, 200), 320, (240, 320), 'INTER_LINEAR'),  # enlarged (the official load_image does too)
    ((96, 64), 96, (96, 64), None),  # already the size: untouched
])
def test_resize_long_side_is_the_official_load_image(hw, scale, expected_hw, interpolation):
    import cv2
    from mmcv.transforms import Compose

    from yolov7_mmdet.datasets.transforms import YOLOv7ResizeLongSide
    image = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    results = Compose([YOLOv7ResizeLongSide(scale=scale)])(dict(img=image.copy()))
    assert results['img'].shape[:2] == results['img_shape'] == expected_hw
    expected = image if interpolation is None else cv2.resize(
        image, expected_hw[::-1], interpolation=getattr(cv2, interpolation))
    np.testing.assert_array_equal(results['img'], expected)
    gain = expected_hw[0] / hw[0]  # the official scale_coords divides both axes by the height ratio
    assert results['scale_factor'] == (gain, gain)
    with pytest.raises(ValueError, match='square scale'):
        YOLOv7ResizeLongSide(scale=(640, 480))
