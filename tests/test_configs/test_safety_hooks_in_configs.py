"""Every config we ship trains with the safety hooks: atomic checkpoints, the data checks, NaN stop."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdet.registry import MODELS
from yolov7_mmdet.engine.hooks import check_num_classes

REPO_ROOT = Path(__file__).resolve().parents[2]
# The swap and demo configs, and one config per YOLOv7 schedule base (P5, P6, tiny): every variant
# config inherits its hooks from configs/_base_/yolov7_runtime.py through one of these schedules.
SHIPPED = [*sorted((REPO_ROOT / 'configs' / 'backbone_swap').glob('*.py')),
           REPO_ROOT / 'configs/demo/yolov7_tiny_demo.py',
           *(REPO_ROOT / 'configs/yolov7' / f'yolov7_{arch}_8xb16-300e_coco.py'
             for arch in ('l', 'w6', 'tiny'))]
SAFETY_CUSTOM_HOOKS = {'CheckpointLoadCheckHook', 'DatasetClassesCheckHook', 'StopOnNonFiniteLossHook'}


@pytest.mark.parametrize('path', SHIPPED, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_config_has_the_safety_hooks(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert SAFETY_CUSTOM_HOOKS <= {hook['type'] for hook in cfg.get('custom_hooks', [])}


def test_swap_configs_keep_the_yolox_hooks():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/backbone_swap/yolox_yolov7-tiny_8xb8-300e_coco.py'))
    types = [hook['type'] for hook in cfg.custom_hooks]
    assert types[:3] == ['YOLOXModeSwitchHook', 'SyncNormHook', 'EMAHook']


def test_wrong_num_classes_in_faster_rcnn_swap_is_a_clear_error():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/backbone_swap/faster-rcnn_yolov7-l_fpn_1x_coco.py'))
    cfg.model.backbone.arch = 'tiny'  # the same head check, a smaller backbone to build
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    dataset = type('OneClass', (), dict(metainfo=dict(classes=('raccoon',))))()
    with pytest.raises(ValueError, match=r'model\.roi_head\.bbox_head\.num_classes=80.*has 1 class'):
        check_num_classes(model, dataset, 'train')
