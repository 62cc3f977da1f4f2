"""Bad and hostile input to the deploy tools and the onnxruntime runner: one clear error, nothing written,
nothing silently wrong; and a user's terminal shows what matters only."""
from __future__ import annotations

import errno
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from deploy_helpers import REPO_ROOT, load_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope

import yolov7_mmdet.engine.hooks.atomic_checkpoint_hook as atomic_module
from yolov7_mmdet.deployment.export import check_nms_args, export_metadata, export_onnx
from yolov7_mmdet.deployment.runtime import ONNXRuntimeDetector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_export_onnx import DEMO_CONFIG, random_model  # noqa: E402

export_tool = load_tool('deployment/export_onnx.py')
test_onnx_tool = load_tool('deployment/test_onnx.py')
save_deployed_tool = load_tool('deployment/save_deployed.py')

SIZE = 64


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A random 4-class tiny model exported end to end (``--nms onnx``) with the demo config's metadata,
    and the warnings the export raised."""
    folder = tmp_path_factory.mktemp('deploy_inputs')
    cfg = Config.fromfile(str(DEMO_CONFIG))
    init_default_scope('mmdet')  # the metadata reads the class names from the config's dataset
    metadata = export_metadata(cfg, input_hw=(SIZE, SIZE), num_classes=4, nms='onnx', score_thr=0.3,
                               iou_thr=0.65, max_dets=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        path = export_onnx(random_model('tiny', 4, seed=7), str(folder / 'm.onnx'), input_hw=(SIZE, SIZE),
                           dynamic_batch=True, score_thr=0.3, iou_thr=0.65, max_dets=100, metadata=metadata)
    return ONNXRuntimeDetector(path), [str(warning.message) for warning in caught]


@pytest.fixture
def disk_full(monkeypatch):
    """Every atomic write fails as on a full disk, after its bytes went to the temporary file."""
    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(atomic_module.os, 'fsync', no_space)


def image(seed: int = 0, shape=(50, 70, 3)) -> np.ndarray:
    """A random BGR image of shapes; blurred so that a random model finds something in it."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (5, 5), 0)


def same_detections(actual: dict, expected: dict) -> None:
    for key in ('bboxes', 'scores', 'labels'):
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-4)


# --- export_onnx.py ------------------------------------------------------------------------------

@pytest.mark.parametrize('flag,value,message', [
    ('--score-thr', 'nan', r'--score-thr must be in \[0, 1\), got nan'),
    ('--score-thr', 'inf', r'--score-thr must be in \[0, 1\), got inf'),
    ('--score-thr', '1.5', r'--score-thr must be in \[0, 1\), got 1.5'),
    ('--score-thr', '-0.1', r'--score-thr must be in \[0, 1\), got -0.1'),
    ('--iou-thr', 'nan', r'--iou-thr must be in \(0, 1\], got nan'),
    ('--iou-thr', '0', r'--iou-thr must be in \(0, 1\], got 0.0'),
    ('--max-dets', '0', '--max-dets must be a positive integer, got 0'),
])
def test_export_refuses_nms_settings_that_never_detect(flag, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):  # before the checkpoint is even read
        export_tool.main([str(DEMO_CONFIG), str(tmp_path / 'no.pth'), '--out', str(tmp_path / 'm.onnx'), flag, value])
    assert list(tmp_path.iterdir()) == []


def test_export_metadata_is_valid_json_or_refused():
    cfg = Config.fromfile(str(DEMO_CONFIG))
    with pytest.raises(ValueError, match='--score-thr'):
        export_metadata(cfg, input_hw=(SIZE, SIZE), num_classes=4, nms='onnx', score_thr=float('nan'),
                        iou_thr=0.65, max_dets=100)
    check_nms_args(score_thr=0, iou_thr=1, max_dets=1)  # the bounds themselves are valid


def test_export_refuses_an_existing_folder_as_out_before_exporting(tmp_path):
    (tmp_path / 'models').mkdir()
    with pytest.raises(IsADirectoryError, match='is a folder'):
        export_tool.main([str(DEMO_CONFIG), str(tmp_path / 'no.pth'), '--out', str(tmp_path / 'models')])
    assert list((tmp_path / 'models').iterdir()) == []


def test_export_on_a_full_disk_leaves_the_old_file_and_no_partial_one(disk_full, tmp_path):
    out = tmp_path / 'm.onnx'
    out.write_bytes(b'the previous model')
    with pytest.raises(OSError, match=r'Could not write .*m.onnx.* \(No space left on device\); nothing was written'):
        export_onnx(random_model('tiny', 2), str(out), input_hw=(SIZE, SIZE))
    assert [path.name for path in tmp_path.iterdir()] == ['m.onnx'] and out.read_bytes() == b'the previous model'


def test_export_graph_has_no_negative_index_alarm(exported):
    _, caught = exported
    assert not [message for message in caught if 'negative values' in message], caught


def test_a_bad_tool_input_is_one_line_without_warnings_or_traceback(tmp_path):
    """The command as a user runs it: no pkg_resources deprecation, no traceback, one error line."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'deployment' / 'export_onnx.py'),
                             str(DEMO_CONFIG), str(tmp_path / 'no.pth'), '--out', str(tmp_path / 'm.onnx'),
                             '--score-thr', 'nan'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        'export_onnx.py: error: --score-thr must be in [0, 1), got nan.'], result.stderr


# --- test_onnx.py and save_deployed.py ----------------------------------------------------------

def test_test_onnx_refuses_a_file_that_is_not_onnx(tmp_path):
    not_onnx = tmp_path / 'model.onnx'
    not_onnx.write_bytes(b'PK\x03\x04 a zip, or a checkpoint renamed')
    with pytest.raises(ValueError, match=r"model.onnx' is not an ONNX model that onnxruntime can load"):
        test_onnx_tool.main([str(DEMO_CONFIG), str(not_onnx)])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        test_onnx_tool.main([str(DEMO_CONFIG), str(tmp_path / 'missing.onnx')])


def test_test_onnx_dump_on_a_full_disk_leaves_no_partial_file(disk_full, tmp_path):
    dump = test_onnx_tool.AtomicDumpDetResults(out_file_path=str(tmp_path / 'results.pkl'))
    with pytest.raises(OSError, match='results.pkl.*nothing was written'):
        dump.compute_metrics([dict(img_id=0)])
    assert list(tmp_path.iterdir()) == []


def test_save_deployed_on_a_full_disk_or_into_a_folder_writes_nothing(disk_full, tmp_path):
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=random_model('tiny', 4).state_dict()), checkpoint)
    base = [str(DEMO_CONFIG), str(checkpoint)]
    with pytest.raises(IsADirectoryError, match='is a folder'):
        save_deployed_tool.main([*base, '--out', str(tmp_path)])
    with pytest.raises(OSError, match='deployed.pth.*No space left on device'):
        save_deployed_tool.main([*base, '--out', str(tmp_path / 'deployed.pth')])
    assert [path.name for path in tmp_path.iterdir()] == ['model.pth']


# --- ONNXRuntimeDetector.detect --------------------------------------------------------------------

@pytest.mark.parametrize('bad,error,message', [
    ([None], TypeError, r'Image 0 is NoneType \(cv2.imread gives None'),
    ([image().astype(np.float32) / 255], TypeError, r'Image 0 has dtype float32; .* \(image \* 255\)'),
    ([image(), image().astype(np.uint16)], TypeError, 'Image 1 has dtype uint16'),
    ([image(shape=(50, 70, 2))], ValueError, r'Image 0 has shape \(50, 70, 2\)'),
    ([np.zeros((0, 70, 3), np.uint8)], ValueError, r'Image 0 has shape \(0, 70, 3\)'),
    ([[[0, 0, 0]]], TypeError, 'Image 0 is list'),
    (image(), TypeError, r'takes a list of images, got ndarray; for one image: detect\(\[image\]\)'),
    (None, TypeError, 'takes a list of images, got NoneType'),
])
def test_detect_refuses_what_is_not_a_uint8_image(bad, error, message, exported):
    detector, _ = exported
    with pytest.raises(error, match=message):
        detector.detect(bad)


def test_detect_reads_grayscale_and_bgra_as_a_user_expects(exported):
    detector, _ = exported
    gray = image(1, shape=(60, 40))
    bgr = image(2)
    expected_gray, expected_bgr = detector.detect([np.repeat(gray[..., None], 3, axis=2), bgr])
    assert len(expected_gray['scores']) > 0 and len(expected_bgr['scores']) > 0
    bgra = np.concatenate([bgr, np.full((*bgr.shape[:2], 1), 7, np.uint8)], axis=2)
    got = detector.detect([gray, gray[..., None], bgra])
    for result, expected in zip(got, [expected_gray, expected_gray, expected_bgr]):
        same_detections(result, expected)
    assert detector.detect([]) == []


# --- the inference API's terminal ------------------------------------------------------------------

INFERENCER_SCRIPT = '''
import sys
import yolov7_mmdet
from mmdet.apis import DetInferencer
config, checkpoint, image, out_dir = sys.argv[1:]
inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu', show_progress=False)
result = inferencer(image, out_dir=out_dir, pred_score_thr=0.5)
print('detections:', len(result['predictions'][0]['scores']))
'''


def test_det_inferencer_prints_no_false_alarms(tmp_path):
    """mmdet's DetInferencer on our config: no "Failed to search registry ... function", no "Failed to add
    LocalVisBackend", no pkg_resources deprecation; it still draws."""
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=random_model('tiny', 4).state_dict()), checkpoint)
    image_file = tmp_path / 'image.jpg'
    cv2.imwrite(str(image_file), image(3, shape=(96, 128, 3)))
    result = subprocess.run([sys.executable, '-c', INFERENCER_SCRIPT, str(DEMO_CONFIG), str(checkpoint),
                             str(image_file), str(tmp_path / 'out')], capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and 'detections:' in result.stdout, output
    for alarm in ('Failed to search registry', 'Failed to add', 'pkg_resources'):
        assert alarm not in output, output
    assert (tmp_path / 'out' / 'vis' / 'image.jpg').is_file()


def test_deploy_tools_refuse_an_output_that_is_one_of_their_inputs(tmp_path):
    """--out naming the checkpoint (or a link to it) would replace the training checkpoint."""
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'the training checkpoint')
    (tmp_path / 'link.pth').symlink_to(checkpoint)
    for tool, out in ((save_deployed_tool, checkpoint), (export_tool, tmp_path / 'link.pth')):
        with pytest.raises(ValueError, match='is an input of this run'):
            tool.main([str(DEMO_CONFIG), str(checkpoint), '--out', str(out)])
    assert checkpoint.read_bytes() == b'the training checkpoint'
