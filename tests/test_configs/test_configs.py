"""Every shipped YOLOv7 config loads, builds its model through mmdet's registry, and carries the
official recipe of its variant (image size, augmentation, schedule, loss gains, test settings)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIANT_CONFIGS = sorted((REPO_ROOT / 'configs' / 'yolov7').glob('yolov7_*_coco.py'))  # not *_custom.py
ARCHS = ('tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e')

# Official training-graph parameter counts (80 classes), from /work/shared/REFERENCE.md.
TRAINING_PARAMS = dict(tiny=6_228_762, l=37_622_682, x=71_347_394, w6=82_312_436, e6=111_898_292,
                       d6=154_709_364, e6e=166_408_884)

# (image size, translate, scale range = (1 - scale, 1.1 + scale), mixup, lrf, cls gain, obj gain)
RECIPES = dict(
    tiny=(640, 0.1, (0.5, 1.6), 0.05, 0.01, 0.5, 1.0),
    p5=(640, 0.2, (0.1, 2.0), 0.15, 0.1, 0.3, 0.7),
    p6=(1280, 0.2, (0.1, 2.0), 0.15, 0.2, 0.3, 0.7),
)
FAMILY = dict(tiny='tiny', l='p5', x='p5', w6='p6', e6='p6', d6='p6', e6e='p6')


def variant_config(arch: str) -> Path:
    return REPO_ROOT / 'configs' / 'yolov7' / f'yolov7_{arch}_8xb16-300e_coco.py'


def find(pipeline: list, type_name: str) -> dict:
    matches = [t for t in pipeline if t['type'] == type_name]
    assert len(matches) == 1, f'expected one {type_name} in {pipeline}'
    return matches[0]


def test_one_config_per_variant():
    assert [p.name for p in VARIANT_CONFIGS] == sorted(
        f'yolov7_{arch}_8xb16-300e_coco.py' for arch in ARCHS)


@pytest.mark.parametrize('arch', ARCHS)
def test_config_builds_the_official_model(arch):
    cfg = Config.fromfile(str(variant_config(arch)))
    init_default_scope(cfg.default_scope)
    with torch.device('meta'):  # counts parameters without allocating them
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == TRAINING_PARAMS[arch]


@pytest.mark.parametrize('arch', ARCHS)
def test_short_alias_is_the_variant_config(arch):
    alias = Config.fromfile(str(REPO_ROOT / 'configs' / f'yolov7_{arch}.py'))
    full = Config.fromfile(str(variant_config(arch)))
    assert alias.model == full.model and alias.train_dataloader == full.train_dataloader


@pytest.mark.parametrize('arch', ARCHS)
def test_config_carries_the_official_recipe(arch):
    cfg = Config.fromfile(str(variant_config(arch)))
    size, translate, scale_range, mixup, lrf, cls_gain, obj_gain = RECIPES[FAMILY[arch]]
    train = cfg.train_dataloader.dataset.pipeline
    mosaic, affine, mix = (find(train, name) for name in
                           ('YOLOv7Mosaic', 'YOLOv7RandomAffine', 'YOLOv7MixUp'))
    assert mosaic['img_scale'] == affine['img_scale'] == (size, size)
    assert (mosaic['prob'], mosaic['mosaic9_prob'], mosaic['pad_val']) == (1.0, 0.2, 114.0)
    assert affine['max_translate_ratio'] == translate
    assert tuple(affine['scaling_ratio_range']) == pytest.approx(scale_range)
    assert (mix['prob'], mix['alpha'], mix['beta']) == (mixup, 8.0, 8.0)
    assert [t['type'] for t in mix['pre_transform']] == ['YOLOv7Mosaic', 'YOLOv7RandomAffine']
    hsv = find(train, 'YOLOv7HSVRandomAug')
    assert (hsv['hue_gain'], hsv['saturation_gain'], hsv['value_gain']) == (0.015, 0.7, 0.4)
    assert find(train, 'RandomFlip')['prob'] == 0.5
    wrapper = cfg.train_dataloader.dataset  # fits on load to the mosaic's size, caches if it fits
    assert (wrapper.type, wrapper.cache_images) == ('YOLOv7MixDataset', 'auto')
    assert [t['type'] for t in wrapper.dataset.pipeline] == ['YOLOv7LoadImageAndAnnotations']

    letterbox = find(cfg.test_pipeline, 'YOLOv7Letterbox')  # the square protocol (export)
    assert letterbox['scale'] == (size, size) and letterbox['allow_scale_up'] is False
    # evaluation: the official test.py protocol (--img size --batch 32, stride max(strides, 32))
    assert find(cfg.val_dataloader.dataset.pipeline, 'YOLOv7ResizeLongSide')['scale'] == (size, size)
    assert 'pad_param' in find(cfg.val_dataloader.dataset.pipeline, 'PackDetInputs')['meta_keys']
    assert cfg.val_dataloader.batch_size == 32
    # test_dataloader: the square form, for DetInferencer, export and mmdet's tools (tools/test.py
    # evaluates with val_dataloader's protocol)
    assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline
    assert 'batch_sampler' not in cfg.test_dataloader and 'collate_fn' not in cfg.test_dataloader
    assert cfg.val_dataloader.batch_sampler.type == 'YOLOv7RectBatchSampler'
    assert cfg.val_dataloader.collate_fn == dict(type='yolov7_rect_collate', img_size=size,
                                                 stride=max(max(cfg.model.bbox_head.strides), 32))

    assert cfg.default_hooks.param_scheduler.final_lr_factor == lrf
    loss = cfg.model.bbox_head.loss
    assert (loss.box_gain, loss.cls_gain, loss.obj_gain, loss.img_size) == (0.05, cls_gain,
                                                                            obj_gain, size)
    test_cfg = cfg.model.test_cfg
    assert (test_cfg.score_thr, test_cfg.nms.iou_threshold, test_cfg.max_per_img) == (0.001, 0.65,
                                                                                      300)
    assert cfg.val_evaluator.type == 'CocoMetric' and cfg.val_evaluator.metric == 'bbox'
    assert cfg.default_hooks.checkpoint.save_best == 'coco/bbox_mAP'
    assert cfg.train_cfg.max_epochs == 300 and cfg.train_dataloader.batch_size == 16
    assert cfg.tta_model.type == 'DetTTAModel' and cfg.tta_pipeline


def test_demo_config_is_tiny_on_the_demo_classes():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'demo' / 'yolov7_tiny_demo.py'))
    assert cfg.model.backbone.arch == 'tiny'
    assert cfg.model.bbox_head.num_classes == len(cfg.classes) == 4
    size = cfg.img_scale[0]
    assert find(cfg.train_dataloader.dataset.pipeline, 'YOLOv7Mosaic')['img_scale'] == (size, size)
    assert find(cfg.val_dataloader.dataset.pipeline, 'YOLOv7Letterbox')['scale'] == (size, size)
    assert cfg.model.bbox_head.loss.img_size == size
    assert cfg.optim_wrapper.batch_size_per_gpu == cfg.train_dataloader.batch_size
