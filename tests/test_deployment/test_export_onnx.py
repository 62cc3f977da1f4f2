"""ONNX export: onnxruntime reproduces the deployed PyTorch model, in all three forms, on real images too."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from deploy_helpers import assert_same_detections
from mmdet.apis import inference_detector
from mmengine.config import Config

from yolov7_mmdet.deployment.export import YOLOv7ExportModel, export_metadata, export_onnx
from yolov7_mmdet.deployment.runtime import ONNXRuntimeDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_models'))
from bn_stats import randomize_bn_  # noqa: E402
from yolov7_builders import build_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'yolov7_tiny_demo.py'


def random_model(arch: str, num_classes: int, *, seed: int = 0):
    """A random model in eval mode, with non-trivial BN statistics and well spread, confident scores.

    A freshly initialised head scores every box about the same (near its bias priors), which makes NMS
    a matter of ties; larger score weights and a higher objectness bias spread the scores (the box
    weights keep their initialisation: saturated, degenerate boxes would make IoUs ill-conditioned).
    """
    torch.manual_seed(seed)
    model = build_model(arch, **{'bbox_head.num_classes': num_classes})
    model.init_weights()
    randomize_bn_(model, seed=seed + 1)
    num_anchors = model.bbox_head.num_base_priors
    with torch.no_grad():
        for conv in model.bbox_head.lead_preds:
            conv.weight.view(num_anchors, -1, conv.in_channels)[:, 4:] *= 30  # (A*(5+C), c_in, 1, 1) -> (A, 5+C, c_in)
            conv.bias.view(num_anchors, -1)[:, 4] += 4  # (A*(5+C),) -> (A, 5+C)
    return model.eval()


@pytest.fixture(scope='module')
def models():
    """One random tiny and one random L model (3 classes), built once: L takes seconds to build."""
    return {'tiny': random_model('tiny', 3), 'l': random_model('l', 3)}


def run_onnx(path, images: np.ndarray) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider']).run(
        None, {'images': images})


@pytest.mark.parametrize('arch,size', [('tiny', (96, 128)), ('l', (64, 64))])
def test_raw_predictions_equal_the_deployed_model_at_any_batch(arch, size, models, tmp_path):
    model = models[arch]
    path = export_onnx(model, str(tmp_path / 'raw.onnx'), input_hw=size, dynamic_batch=True, nms='none')
    images = torch.rand(3, 3, *size)  # traced with batch 1
    with torch.no_grad():
        expected = YOLOv7ExportModel(model, nms='none')(images).numpy()
    (predictions,) = run_onnx(path, images.numpy())
    num_boxes = 3 * sum((size[0] // s) * (size[1] // s) for s in (8, 16, 32))
    assert predictions.shape == expected.shape == (3, num_boxes, 4 + 1 + 3)
    assert np.abs(predictions - expected).max() < 1e-4 * np.abs(expected).max()
    # the layout: xyxy boxes, then sigmoid objectness and class probabilities
    assert (predictions[..., 2:4] >= predictions[..., 0:2]).all()
    assert ((predictions[..., 4:] > 0) & (predictions[..., 4:] < 1)).all()


@pytest.mark.parametrize('arch,size', [('tiny', (96, 128)), ('l', (64, 64))])
def test_onnx_nms_gives_the_pytorch_postprocess_detections(arch, size, models, tmp_path):
    model = models[arch]
    test_cfg = dict(multi_label=True, nms_pre=30000, score_thr=0.2,
                    nms=dict(type='nms', iou_threshold=0.65, split_thr=10 ** 9), max_per_img=1000)
    path = export_onnx(model, str(tmp_path / 'nms.onnx'), input_hw=size, batch=2, nms='onnx',
                       score_thr=0.2, iou_thr=0.65, max_dets=1000)
    images = torch.rand(2, 3, *size)
    num_dets, boxes, scores, labels = run_onnx(path, images.numpy())
    num_pairs = 3 * 3 * sum((size[0] // s) * (size[1] // s) for s in (8, 16, 32))  # boxes x classes
    assert num_dets.dtype == labels.dtype == np.int32 and boxes.shape == (2, min(1000, num_pairs), 4)
    with torch.no_grad():
        lead_maps, _ = model._forward(images)
        expected = model.bbox_head.predict_by_feat(lead_maps, batch_img_metas=[{}, {}], cfg=test_cfg)
    for i, result in enumerate(expected):
        count = int(num_dets[i, 0])
        assert 0 < count < min(1000, num_pairs) and count == len(result)
        assert_same_detections((boxes[i, :count], scores[i, :count], labels[i, :count]),
                               (result.bboxes, result.scores, result.labels))
        assert (scores[i, count:] == 0).all() and (labels[i, count:] == -1).all()  # padding
        assert (np.diff(scores[i, :count]) <= 0).all()  # sorted by score


@pytest.mark.parametrize('arch', ['tiny', 'l'])
def test_trt_form_writes_an_efficient_nms_node(arch, models, tmp_path):
    path = export_onnx(models[arch], str(tmp_path / 'trt.onnx'), input_hw=(64, 96), dynamic_batch=True,
                       nms='trt', score_thr=0.25, iou_thr=0.45, max_dets=100)
    graph = onnx.load(path).graph
    (node,) = [node for node in graph.node if node.op_type == 'EfficientNMS_TRT']
    assert node.domain == 'TRT'
    attributes = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
    assert attributes == dict(background_class=-1, box_coding=0, iou_threshold=pytest.approx(0.45),
                              max_output_boxes=100, plugin_version=b'1', score_activation=0,
                              score_threshold=pytest.approx(0.25))
    # the plugin's inputs, computed by onnxruntime on the graph cut just before the node
    inferred = onnx.shape_inference.infer_shapes(onnx.load(path))  # value_info for the cut
    feeding_graph = onnx.utils.Extractor(inferred).extract_model(['images'], list(node.input))
    boxes, scores = onnxruntime.InferenceSession(feeding_graph.SerializeToString()).run(
        None, {'images': np.random.rand(2, 3, 64, 96).astype(np.float32)})
    num_boxes = 3 * (8 * 12 + 4 * 6 + 2 * 3)
    assert boxes.shape == (2, num_boxes, 4) and scores.shape == (2, num_boxes, 3)
    assert (boxes[..., 2:] >= boxes[..., :2]).all() and ((scores >= 0) & (scores <= 1)).all()
    outputs = {value.name: ([d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim],
                            value.type.tensor_type.elem_type) for value in graph.output}
    int32, float32 = onnx.TensorProto.INT32, onnx.TensorProto.FLOAT
    assert outputs == {'num_dets': (['batch', 1], int32), 'boxes': (['batch', 100, 4], float32),
                       'scores': (['batch', 100], float32), 'labels': (['batch', 100], int32)}
    assert list(node.output) == [value.name for value in graph.output]


def real_image_config(dataset_classes: tuple[str, ...], *, class_logit_bias: float | None = None):
    """The demo config for ``dataset_classes`` at 160 px, and a random model with its test_cfg."""
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.model.bbox_head.num_classes = len(dataset_classes)
    cfg.model.test_cfg.update(score_thr=0.5, max_per_img=1000)
    cfg.test_dataloader.dataset.metainfo = dict(classes=dataset_classes)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] in ('Resize', 'YOLOv7Letterbox'):
            step['scale'] = (160, 160)
    model = random_model('tiny', len(dataset_classes), seed=3)
    if class_logit_bias is not None:  # the class channel of an untrained one-class head
        with torch.no_grad():
            for conv in model.bbox_head.lead_preds:
                conv.bias.view(3, -1)[:, 5:] = class_logit_bias  # (A*(5+C),) -> (A, 5+C)
    model.cfg = cfg
    return cfg, model


@pytest.mark.parametrize('dataset,classes,class_logit_bias', [
    ('bccd', ('RBC', 'WBC', 'Platelets'), None),
    ('raccoon', ('raccoon',), -20.0),  # sigmoid(-20) * objectness would drop every box
])
def test_end2end_model_detects_on_real_images_as_pytorch(dataset, classes, class_logit_bias, shared_datasets,
                                                        tmp_path):
    image_dir = shared_datasets / dataset / ('JPEGImages' if dataset == 'bccd' else 'images')
    image_files = sorted(image_dir.glob('*.jpg'))[:2]
    cfg, model = real_image_config(classes, class_logit_bias=class_logit_bias)
    test_cfg = cfg.model.test_cfg
    metadata = export_metadata(cfg, input_hw=(160, 160), num_classes=len(classes), nms='onnx',
                               score_thr=test_cfg.score_thr, iou_thr=0.65, max_dets=test_cfg.max_per_img)
    model.bbox_head.test_cfg = test_cfg
    path = export_onnx(model, str(tmp_path / 'm.onnx'), input_hw=(160, 160), dynamic_batch=True,
                       score_thr=test_cfg.score_thr, iou_thr=0.65, max_dets=test_cfg.max_per_img,
                       metadata=metadata)
    detector = ONNXRuntimeDetector(path)
    assert detector.classes == list(classes) and json.loads(json.dumps(detector.input_hw)) == [160, 160]
    images = [cv2.imread(str(f)) for f in image_files]
    got = detector.detect(images)
    with torch.no_grad():
        expected = inference_detector(model, [str(f) for f in image_files])  # mmdet's API, test pipeline
    for result, sample in zip(got, expected):
        pred = sample.pred_instances
        assert len(result['scores']) > 0
        assert_same_detections((result['bboxes'], result['scores'], result['labels']),
                               (pred.bboxes, pred.scores, pred.labels), box_atol=2e-3)


@pytest.mark.parametrize('input_hw', [(160, 160), (96, 160), (160, 96)])
def test_runtime_letterbox_gives_the_test_pipeline_pixels(input_hw, shared_datasets):
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope

    from yolov7_mmdet.deployment.runtime import letterbox_image
    init_default_scope('mmdet')
    height, width = input_hw
    pipeline = Compose([dict(type='LoadImageFromNDArray'),
                        dict(type='Resize', scale=(width, height), keep_ratio=True),
                        dict(type='YOLOv7Letterbox', scale=(width, height), pad_val=114, allow_scale_up=False),
                        dict(type='PackDetInputs', meta_keys=('scale_factor', 'pad_param'))])
    for image_file in (shared_datasets / 'bccd' / 'JPEGImages' / 'BloodImage_00000.jpg',
                       sorted((shared_datasets / 'raccoon' / 'images').glob('*.jpg'))[0]):
        image = cv2.imread(str(image_file))
        expected = pipeline(dict(img=image))
        padded, params = letterbox_image(image, input_hw=input_hw, pad_val=114, keep_ratio_resize=True,
                                         allow_scale_up=False)
        np.testing.assert_array_equal(padded.transpose(2, 0, 1), expected['inputs'].numpy())  # (H, W, 3) -> (3, H, W)
        meta = expected['data_samples'].metainfo
        assert params.scale_factor == pytest.approx(meta['scale_factor'], rel=1e-6)
        assert params.pad_top_left == (meta['pad_param'][0], meta['pad_param'][2])
