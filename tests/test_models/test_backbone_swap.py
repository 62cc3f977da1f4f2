"""configs/backbone_swap: mmdet detectors on the YOLOv7 backbone build, train one step and predict."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config

from yolov7_mmdet.models.backbones import YOLOv7Backbone

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'backbone_swap'
NUM_CLASSES = 3


def _set_num_classes(model_cfg) -> None:
    heads = [model_cfg.get('bbox_head'), model_cfg.get('roi_head', {}).get('bbox_head')]
    for head in heads:
        if head is not None:
            head.num_classes = NUM_CLASSES


@pytest.mark.parametrize('name', [
    'faster-rcnn_yolov7-l_fpn_1x_coco.py',
    'retinanet_yolov7-l_fpn_1x_coco.py',
    'yolox_yolov7-tiny_8xb8-300e_coco.py',
])
def test_backbone_swap_trains_and_predicts(name):
    cfg = Config.fromfile(CONFIGS / name)
    model_cfg = cfg.model
    _set_num_classes(model_cfg)
    model_cfg.data_preprocessor.pop('batch_augments', None)  # YOLOX's 480-800 resizing: too slow here
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()

    # the neck is wired to what the backbone says it outputs
    backbone = model.backbone
    assert isinstance(backbone, YOLOv7Backbone)
    assert list(model_cfg.neck.in_channels) == list(backbone.out_channels)

    packed = demo_mm_inputs(batch_size=2, image_shapes=(3, 128, 128), num_items=[3, 2],
                            num_classes=NUM_CLASSES)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in backbone.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False), mode='predict')
    assert len(results) == 2
    for result in results:
        instances = result.pred_instances
        assert instances.bboxes.shape[-1] == 4
        assert len(instances.bboxes) == len(instances.scores) == len(instances.labels)
        if len(instances.labels):
            assert int(instances.labels.max()) < NUM_CLASSES
