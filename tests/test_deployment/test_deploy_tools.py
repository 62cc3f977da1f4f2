"""The deploy tools on a checkpoint: tools/test.py (--deploy), save_deployed + model.deploy, export_onnx,
test_onnx and mmdet's inference API give the same detections and COCO mAP; bad input is refused."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import mmengine.config.config as mmengine_config_module
import numpy as np
import pytest
import torch
from deploy_helpers import assert_same_detections, load_tool
from mmdet.apis import DetInferencer, inference_detector, init_detector
from mmengine.config import Config

from yolov7_mmdet.datasets.demo import make_demo_dataset
from yolov7_mmdet.deployment.runtime import ONNXRuntimeDetector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_export_onnx import DEMO_CONFIG, random_model  # noqa: E402

test_tool = load_tool('test.py')
export_tool = load_tool('deployment/export_onnx.py')
test_onnx_tool = load_tool('deployment/test_onnx.py')
save_deployed_tool = load_tool('deployment/save_deployed.py')

SIZE = 128


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A 6-image demo val split, a random 4-class tiny checkpoint and the ``--cfg-options`` to use them."""
    root = tmp_path_factory.mktemp('deploy_tools')
    make_demo_dataset(root / 'data', num_train=1, num_val=6, image_size=SIZE, seed=4)
    checkpoint = root / 'model.pth'
    model = random_model('tiny', 4, seed=5)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), checkpoint)
    data_root = f'{root}/data/'
    options = [f'test_dataloader.dataset.data_root={data_root}',
               f'test_evaluator.ann_file={data_root}annotations/val.json',
               'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
               'test_dataloader.batch_size=3', 'model.test_cfg.score_thr=0.5', 'model.test_cfg.max_per_img=1000']
    return root, checkpoint, options


@pytest.fixture(autouse=True)
def fast_config_text(monkeypatch):
    """Skip yapf's formatting of the whole config at every runner start (seconds of CPU)."""
    monkeypatch.setattr(mmengine_config_module, 'FormatCode', lambda text, **kwargs: (text, False))


def dumped(path) -> list[tuple]:
    """``(bboxes, scores, labels)`` per image of a ``--out`` pickle, in image-id order."""
    with open(path, 'rb') as file:
        results = sorted(pickle.load(file), key=lambda result: result['img_id'])
    return [tuple(result['pred_instances'][key].numpy() for key in ('bboxes', 'scores', 'labels'))
            for result in results]


def assert_same_dumps(actual_path, expected_path) -> None:
    actual, expected = dumped(actual_path), dumped(expected_path)
    assert len(actual) == len(expected) == 6
    assert sum(len(scores) for _, scores, _ in expected) > 0
    for got, want in zip(actual, expected):
        assert_same_detections(got, want, box_atol=2e-3)


@pytest.fixture(scope='module')
def pytorch_run(demo):
    """tools/test.py on the training graph: metrics and dumped predictions."""
    root, checkpoint, options = demo
    out = root / 'pytorch.pkl'
    metrics = test_tool.main([str(DEMO_CONFIG), str(checkpoint), '--work-dir', str(root / 'pt'), '--out', str(out),
                              '--cfg-options', *options])
    return metrics, out


def test_test_py_deploy_evaluates_the_inference_graph_with_the_same_results(demo, pytorch_run, tmp_path):
    root, checkpoint, options = demo
    out = tmp_path / 'deployed.pkl'
    metrics = test_tool.main([str(DEMO_CONFIG), str(checkpoint), '--deploy', '--work-dir', str(tmp_path),
                              '--out', str(out), '--show-dir', 'vis', '--cfg-options', *options])
    assert_same_dumps(out, pytorch_run[1])
    assert metrics['coco/bbox_mAP'] == pytest.approx(pytorch_run[0]['coco/bbox_mAP'], abs=1e-3)
    assert len(list(tmp_path.glob('*/vis/*.jpg'))) == 6  # --show-dir draws the deployed model's boxes


def test_a_saved_deployed_checkpoint_loads_with_model_deploy(demo, pytorch_run, tmp_path):
    root, checkpoint, options = demo
    deployed = save_deployed_tool.main([str(DEMO_CONFIG), str(checkpoint), '--out', str(tmp_path / 'd.pth')])
    out = tmp_path / 'reloaded.pkl'
    test_tool.main([str(DEMO_CONFIG), deployed, '--work-dir', str(tmp_path), '--out', str(out),
                    '--cfg-options', 'model.deploy=True', *options])
    assert_same_dumps(out, pytorch_run[1])
    with pytest.raises(ValueError, match='does not fit'):  # a training checkpoint into the deploy form
        test_tool.main([str(DEMO_CONFIG), str(checkpoint), '--work-dir', str(tmp_path),
                        '--cfg-options', 'model.deploy=True', *options])


def test_test_onnx_gives_the_pytorch_map(demo, pytorch_run, tmp_path):
    root, checkpoint, options = demo
    model_file = export_tool.main([str(DEMO_CONFIG), str(checkpoint), '--out', str(tmp_path / 'm.onnx'),
                                   '--dynamic-batch', '--cfg-options', *options])
    out = tmp_path / 'onnx.pkl'
    metrics = test_onnx_tool.main([str(DEMO_CONFIG), model_file, '--work-dir', str(tmp_path), '--out', str(out),
                                   '--cfg-options', *options])
    assert_same_dumps(out, pytorch_run[1])
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50'):
        assert abs(metrics[key] - pytorch_run[0][key]) <= 0.002, key
    with pytest.raises(ValueError, match='predicts 4 classes, the config has num_classes=80'):
        test_onnx_tool.main([str(DEMO_CONFIG), model_file, '--work-dir', str(tmp_path),
                             '--cfg-options', *options, 'model.bbox_head.num_classes=80'])


def test_the_mmdet_inference_api_on_our_config_and_checkpoint(demo, tmp_path):
    root, checkpoint, options = demo
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.merge_from_dict(dict(option.split('=', 1) for option in options[-2:]))
    cfg.model.test_cfg.score_thr, cfg.model.test_cfg.max_per_img = 0.5, 1000
    image = next((root / 'data' / 'images' / 'val').glob('*.jpg'))
    model = init_detector(cfg, str(checkpoint), device='cpu')
    expected = inference_detector(model, str(image)).pred_instances
    assert len(expected) > 0
    inferencer = DetInferencer(model=cfg, weights=str(checkpoint), device='cpu', show_progress=False)
    result = inferencer(str(image), out_dir=str(tmp_path), pred_score_thr=0.5, no_save_pred=False)
    pred = result['predictions'][0]
    assert_same_detections((pred['bboxes'], pred['scores'], pred['labels']),
                           (expected.bboxes, expected.scores, expected.labels), box_atol=1e-3, score_atol=1e-6)
    assert (tmp_path / 'vis' / image.name).is_file() and (tmp_path / 'preds' / f'{image.stem}.json').is_file()


def test_export_refuses_bad_input_and_leaves_nothing_behind(demo, tmp_path, monkeypatch):
    root, checkpoint, options = demo
    base = [str(DEMO_CONFIG), str(checkpoint)]
    with pytest.raises(FileNotFoundError, match='does not exist'):
        export_tool.main([*base, '--out', str(tmp_path / 'missing' / 'm.onnx')])
    with pytest.raises(ValueError, match='multiples of the model\'s largest stride 32'):
        export_tool.main([*base, '--out', str(tmp_path / 'm.onnx'), '--input-shape', '100', '128'])
    with pytest.raises(ValueError, match='Opset 10 is too old'):
        export_tool.main([*base, '--out', str(tmp_path / 'm.onnx'), '--opset', '10'])
    with pytest.raises(ValueError, match='does not fit'):  # a 4-class checkpoint, an 80-class config
        export_tool.main([*base, '--out', str(tmp_path / 'm.onnx'), '--cfg-options', 'model.bbox_head.num_classes=80'])
    import onnx

    def failing_check(model):
        raise onnx.checker.ValidationError('broken graph')

    monkeypatch.setattr(onnx.checker, 'check_model', failing_check)
    with pytest.raises(onnx.checker.ValidationError):
        export_tool.main([*base, '--out', str(tmp_path / 'm.onnx'), '--input-shape', '64', '64'])
    assert list(tmp_path.iterdir()) == []  # neither the model nor its temporary file


def test_export_metadata_describes_pre_and_postprocessing(demo, tmp_path):
    root, checkpoint, options = demo
    model_file = export_tool.main([str(DEMO_CONFIG), str(checkpoint), '--out', str(tmp_path / 'm.onnx'),
                                   '--input-shape', '96', '160', '--batch', '2', '--nms', 'none', '--simplify',
                                   '--cfg-options', *options])
    detector = ONNXRuntimeDetector(model_file)
    assert detector.meta['classes'] == ['circle', 'square', 'triangle', 'cross']
    assert detector.input_hw == (96, 160) and detector.fixed_batch == 2
    assert detector.meta['mean'] == [0., 0., 0.] and detector.meta['std'] == [255., 255., 255.]
    assert detector.meta['bgr_to_rgb'] is True
    assert detector.meta['letterbox'] == dict(keep_ratio_resize=True, pad_val=114., allow_scale_up=False)
    assert (detector.meta['score_thr'], detector.meta['iou_thr'], detector.meta['max_dets']) == (0.5, 0.65, 1000)
    assert detector.meta['output_layout'].startswith('predictions (N, B, 4 + 1 + C)')
    outputs = detector.run(np.zeros((3, 3, 96, 160), np.float32))  # 3 images through a batch-2 model
    assert outputs['predictions'].shape == (3, 3 * (12 * 20 + 6 * 10 + 3 * 5), 4 + 1 + 4)
    with pytest.raises(ValueError, match='--nms none'):
        detector.detect([np.zeros((50, 60, 3), np.uint8)])
