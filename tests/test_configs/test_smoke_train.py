"""Smoke test: tiny, L and one P6 config train 2 iterations and validate through mmengine's Runner.

Each run uses the variant config as shipped, with only the data (a 4 + 2 image demo dataset made in
``tmp_path``), the input size (64; 128 for the stride-64 P6 model), the batch size and the length
overridden. It checks that the whole chain (YOLOv7MixDataset with mosaic / mixup, collate,
preprocessor, model, loss, optimizer wrapper and hooks, letterboxed validation, CocoMetric) runs and
produces finite losses and COCO metrics.
"""
from __future__ import annotations

import math
from pathlib import Path

import mmengine.config.config as mmengine_config_module
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from yolov7_mmdet.datasets.demo import CLASSES, make_demo_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]


def set_input_size(node, size: int) -> None:
    """Point every ``img_scale`` (mosaic, affine), resize / letterbox ``scale`` and the rectangular
    evaluation collate's ``img_size`` at ``size``."""
    if isinstance(node, (list, tuple)):
        for item in node:
            set_input_size(item, size)
    elif isinstance(node, dict):
        if 'img_scale' in node:
            node['img_scale'] = (size, size)
        if node.get('type') in ('Resize', 'YOLOv7Letterbox', 'YOLOv7ResizeLongSide'):
            node['scale'] = (size, size)
        if node.get('type') == 'yolov7_rect_collate':  # the official evaluation protocol
            node['img_size'] = size
        for value in node.values():
            set_input_size(value, size)


def smoke_config(arch: str, size: int, data_root: Path, work_dir: Path) -> Config:
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / f'yolov7_{arch}.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'tta_pipeline'):
        set_input_size(cfg[key], size)
    cfg.model.bbox_head.num_classes = len(CLASSES)
    cfg.model.bbox_head.loss.img_size = size
    split = dict(metainfo=dict(classes=CLASSES), data_root=str(data_root) + '/')
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.dataset.update(
        split, ann_file='annotations/train.json', data_prefix=dict(img='images/train/'))
    cfg.val_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.update(
        split, ann_file='annotations/val.json', data_prefix=dict(img='images/val/'))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.ann_file = str(data_root / 'annotations' / 'val.json')
    cfg.test_evaluator = cfg.val_evaluator
    cfg.optim_wrapper.batch_size_per_gpu = 2
    cfg.train_cfg.update(max_epochs=1, val_interval=1, dynamic_intervals=None)
    cfg.default_hooks.logger.interval = 1
    if arch != 'tiny':  # writing 0.3-1.3 GB of checkpoints would dominate the test's time
        cfg.default_hooks.checkpoint = None
    cfg.env_cfg.cudnn_benchmark = False
    cfg.sync_bn = None
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.fixture(scope='module')
def mini_coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('mini_coco')
    make_demo_dataset(root, num_train=4, num_val=2, image_size=64, seed=3)
    return root


@pytest.fixture
def fast_config_text(monkeypatch):
    """Skip yapf: mmengine formats the whole config with it at start-up and in every checkpoint
    (~1 s each on an idle 2-core CPU for these configs), more than the training steps themselves."""
    monkeypatch.setattr(mmengine_config_module, 'FormatCode', lambda text, **kwargs: (text, False))


@pytest.mark.parametrize('arch, size', [('tiny', 64), ('l', 64), ('w6', 128)])
def test_two_iterations_and_a_validation(arch, size, mini_coco, tmp_path, fast_config_text):
    runner = Runner.from_cfg(smoke_config(arch, size, mini_coco, tmp_path))
    runner.train()
    assert runner.iter == 2
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss', 'train/loss_box', 'train/loss_obj', 'train/loss_cls'):
        assert math.isfinite(scalars[key].current()), key
    if arch == 'w6':
        assert math.isfinite(scalars['train/loss_aux_box'].current())
    for key in ('val/coco/bbox_mAP', 'val/coco/bbox_mAP_50'):
        assert 0.0 <= scalars[key].current() <= 1.0, key
    if arch == 'tiny':
        assert (tmp_path / 'epoch_1.pth').is_file()
        assert list(tmp_path.glob('best_coco_bbox_mAP_epoch_1.pth'))
