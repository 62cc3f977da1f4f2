"""The YOLOv7 neck's widths differ per level; a ChannelMapper after it feeds one-width mmdet heads."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS

CONFIG = Path(__file__).resolve().parents[2] / 'configs/backbone_swap/retinanet_yolov7-tiny-pafpn_1x_coco.py'


@pytest.fixture(scope='module')
def cfg():
    init_default_scope('mmdet')
    return Config.fromfile(str(CONFIG))


def test_neck_widths_differ_per_level(cfg):
    neck = MODELS.build(cfg.model.neck[0])
    assert tuple(neck.out_channels) == (64, 128, 256)


def test_channel_mapper_config_runs_retinanet_head(cfg):
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        cls_scores, bbox_preds = model(torch.zeros(1, 3, 64, 64), mode='tensor')
    # 9 anchors per location: 80 class scores and 4 box deltas each, at strides 8, 16, 32
    assert [tuple(score.shape) for score in cls_scores] == [(1, 720, 8, 8), (1, 720, 4, 4),
                                                            (1, 720, 2, 2)]
    assert [tuple(pred.shape) for pred in bbox_preds] == [(1, 36, 8, 8), (1, 36, 4, 4), (1, 36, 2, 2)]


def test_without_the_channel_mapper_the_head_fails_on_channels(cfg):
    model_cfg = cfg.model.copy()
    model_cfg.neck = cfg.model.neck[0]
    model = MODELS.build(model_cfg).eval()
    with pytest.raises(RuntimeError, match='channels'):
        model(torch.zeros(1, 3, 64, 64), mode='tensor')
