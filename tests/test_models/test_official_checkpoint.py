"""Official-format ``.pt`` files are read without the official code, safely, and convert exactly.

The files are written as the official ``train.py`` / ``strip_optimizer`` write them (pickled
``models.yolo.Model`` trees, fp16 or fp32, with EMA and optimizer state; see ``official_format.py``),
from the deterministic official-keyed weights of ``official_weights.py``, so the converted models must
reproduce the official raw maps stored in ``tests/fixtures/official_yolov7_<arch>.pt``.
"""
import importlib.util
import os
import pickle
import subprocess
import types

import pytest
import torch
from official_format import official_model, save_official, stripped_checkpoint, train_py_checkpoint
from mmengine.runner import load_checkpoint
from official_weights import official_input
from test_official_conversion import (FIXTURES, anchor_major, load_converter_tool,
                                      official_style_state)
from yolov7_builders import build_model

from yolov7_mmdet.utils.launch import check_checkpoint_fits
from yolov7_mmdet.utils.official_checkpoint import (UnsafeCheckpointError, official_state_dict,
                                                    read_official_checkpoint)

LEAD_ONLY_P6 = {'neck.aux_taps': False, 'bbox_head.aux_in_channels': None, 'bbox_head.aux_feat_channels': None}


def official_state_with_anchors(model, anchors=None) -> dict:
    """Official-keyed weights with the detect layer's anchor buffers (``anchors``: pixels, default the head's)."""
    state = official_style_state(model)
    detect = max(int(key.split('.')[1]) for key in state if '.m.0.' in key)
    # the official detect layer's buffers: anchors (L, A, 2) in grid units, anchor_grid (L, 1, A, 1, 1, 2) px
    anchors = model.bbox_head.anchors if anchors is None else anchors
    state[f'model.{detect}.anchors'] = anchors / model.bbox_head.strides.view(-1, 1, 1)
    state[f'model.{detect}.anchor_grid'] = anchors.view(len(anchors), 1, -1, 1, 1, 2).clone()
    return state


def assert_official_code_not_importable():
    assert importlib.util.find_spec('models') is None


@pytest.mark.parametrize('arch', ['tiny', 'l', 'w6'])
def test_train_py_checkpoint_reproduces_the_official_outputs(arch, tmp_path):
    """fp32 ``last.pt`` form (model, EMA, optimizer state, numpy best_fitness), the arch inferred for tiny."""
    model = build_model(arch, device='meta')
    save_official(train_py_checkpoint(official_model(official_state_with_anchors(model)), half=False),
                  tmp_path / 'last.pt')
    assert_official_code_not_importable()
    arch_args = [] if arch == 'tiny' else ['--arch', arch]
    load_converter_tool().main([str(tmp_path / 'last.pt'), str(tmp_path / 'ours.pth'), *arch_args])
    checkpoint = torch.load(tmp_path / 'ours.pth', weights_only=True)
    assert checkpoint['meta']['arch'] == arch and checkpoint['meta']['aux_head'] == (arch == 'w6')
    model.load_state_dict(checkpoint['state_dict'], strict=True, assign=True)
    golden = torch.load(FIXTURES / f'official_yolov7_{arch}.pt', weights_only=True)
    with torch.no_grad():
        lead, aux = model.eval()._forward(official_input(64))
    for ours, theirs in zip(lead, golden['lead'], strict=True):
        torch.testing.assert_close(anchor_major(ours), theirs, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(aux or [], golden['aux'], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('arch, overrides', [('tiny', {}), ('w6', LEAD_ONLY_P6)])
def test_stripped_fp16_checkpoint_reads_as_the_rounded_weights(arch, overrides, tmp_path):
    """``strip_optimizer`` form (fp16 EMA as model); W6 lead-only with a plain ``Detect`` (cfg/deploy)."""
    model = build_model(arch, device='meta', **overrides)
    state = official_state_with_anchors(model)
    if overrides:
        state = {key: value for key, value in state.items() if '.ia.' not in key and '.im.' not in key}
    save_official(stripped_checkpoint(official_model(state)), tmp_path / f'yolov7-{arch}.pt')
    allowed_before = set(torch.serialization.get_safe_globals())
    read = official_state_dict(tmp_path / f'yolov7-{arch}.pt')
    assert set(torch.serialization.get_safe_globals()) == allowed_before  # nothing left allowed or removed
    assert read.keys() == state.keys()
    for key, value in state.items():
        expected = value.half().float() if value.is_floating_point() else value
        assert read[key].dtype == expected.dtype and torch.equal(read[key], expected), key
    load_converter_tool().main([str(tmp_path / f'yolov7-{arch}.pt'), str(tmp_path / 'ours.pth'), '--arch', arch])
    meta = torch.load(tmp_path / 'ours.pth', weights_only=True)['meta']
    assert meta['aux_head'] is False and meta['num_classes'] == 80  # tiny has none, W6 lead-only
    check_checkpoint_fits(model, str(tmp_path / 'ours.pth'))  # tools/test.py takes it with the lead-only model
    if overrides:  # ... and refuses it with the training config's aux head (docs/pretrained.md)
        with pytest.raises(ValueError, match='missing: bbox_head.aux_convs.0'):
            check_checkpoint_fits(build_model(arch, device='meta'), str(tmp_path / 'ours.pth'))


def auto_anchored(anchors):
    """Anchors as the official ``check_anchors`` writes them after k-means: other, non-integer pixels."""
    offsets = torch.linspace(0.1, 0.9, anchors.numel() // 2).view(*anchors.shape[:2], 1)  # (L*A,) -> (L, A, 1)
    return anchors * torch.tensor([1.31, 0.77]) + offsets


def official_decode(lead, anchor_grid, strides):
    """The official ``IDetect.forward`` in eval mode: ``(B, N, 5+C)`` xywh pixels and sigmoids.

    Args:
        lead: Raw maps ``(B, A, H, W, 5+C)`` per level; anchor_grid: ``(L, A, 2)`` pixels.
    """
    decoded = []
    for raw, anchors, stride in zip(lead, anchor_grid, strides):
        y = raw.sigmoid()
        batch, _, height, width, outputs = y.shape
        grid_y, grid_x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
        grid = torch.stack((grid_x, grid_y), -1).view(1, 1, height, width, 2)  # (H, W, 2) -> (1, 1, H, W, 2)
        xy = (y[..., :2] * 2 - 0.5 + grid) * stride
        wh = (y[..., 2:4] * 2) ** 2 * anchors.view(1, -1, 1, 1, 2)  # (A, 2) -> (1, A, 1, 1, 2)
        decoded.append(torch.cat((xy, wh, y[..., 4:]), -1).view(batch, -1, outputs))  # -> (B, A*H*W, 5+C)
    return torch.cat(decoded, 1)


def test_official_decode_helper_is_the_official_code():
    golden = torch.load(FIXTURES / 'yolov7_head_nms_golden.pt', weights_only=True)
    maps = [m.view(2, 3, 8, m.shape[2], m.shape[3]).permute(0, 1, 3, 4, 2) for m in golden['nc3']['maps']]
    torch.testing.assert_close(official_decode(maps, golden['anchors'], golden['strides']),
                               golden['nc3']['decoded'], rtol=0, atol=1e-4)


def test_auto_anchored_checkpoint_converts_with_its_anchors(tmp_path, capsys):
    """Anchors changed by the official auto-anchor are saved, loaded by load_from / tools/test.py and
    decode as the official model with those anchors; the raw maps are unchanged."""
    model = build_model('tiny', device='meta')
    anchors = auto_anchored(model.bbox_head.anchors)
    save_official(train_py_checkpoint(official_model(official_state_with_anchors(model, anchors)), half=False),
                  tmp_path / 'last.pt')
    load_converter_tool().main([str(tmp_path / 'last.pt'), str(tmp_path / 'ours.pth'), '--arch', 'tiny'])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith('anchors: the file\'s [[[13.2, 10.11], [21.16, 23.3]') and \
        "differ from the config's [[[10.0, 13.0]" in lines[0], lines
    assert torch.equal(torch.load(tmp_path / 'ours.pth', weights_only=True)['state_dict']['bbox_head.anchors'],
                       anchors)
    ours = build_model('tiny').eval()  # config anchors until the checkpoint is loaded
    check_checkpoint_fits(ours, str(tmp_path / 'ours.pth'))  # tools/test.py's check, then mmengine's load
    load_checkpoint(ours, str(tmp_path / 'ours.pth'), map_location='cpu', strict=True, logger='silent')
    assert torch.equal(ours.bbox_head.anchors, anchors)
    golden = torch.load(FIXTURES / 'official_yolov7_tiny.pt', weights_only=True)
    with torch.no_grad():
        lead, _ = ours._forward(official_input(64))
        boxes, scores = ours.bbox_head.decode(lead)
    for raw, theirs in zip(lead, golden['lead'], strict=True):
        torch.testing.assert_close(anchor_major(raw), theirs, rtol=1e-4, atol=1e-4)
    decoded = official_decode(golden['lead'], anchors, ours.bbox_head.strides)
    xy, wh = decoded[..., :2], decoded[..., 2:4]
    torch.testing.assert_close(boxes, torch.cat([xy - wh / 2, xy + wh / 2], -1), rtol=0, atol=1e-3)
    torch.testing.assert_close(scores, decoded[..., 4:5] * decoded[..., 5:], rtol=1e-4, atol=1e-6)


def test_fp16_auto_anchored_checkpoint_keeps_the_rounded_anchor_grid(tmp_path, capsys):
    """fp16 rounds ``anchors`` (grid units) and ``anchor_grid`` (pixels) apart: the grid is taken."""
    model = build_model('tiny', device='meta')
    anchors = auto_anchored(model.bbox_head.anchors)
    save_official(stripped_checkpoint(official_model(official_state_with_anchors(model, anchors))),
                  tmp_path / 'best.pt')
    load_converter_tool().main([str(tmp_path / 'best.pt'), str(tmp_path / 'ours.pth'), '--arch', 'tiny'])
    assert 'differ from the config' in capsys.readouterr().out
    converted = torch.load(tmp_path / 'ours.pth', weights_only=True)['state_dict']['bbox_head.anchors']
    assert torch.equal(converted, anchors.half().float())


def test_use_ema_takes_the_ema_model(tmp_path):
    model = build_model('tiny', device='meta')
    state = official_style_state(model)
    checkpoint = train_py_checkpoint(official_model(state), half=False)
    checkpoint['ema'] = official_model({key: value + 1 if value.is_floating_point() else value
                                        for key, value in state.items()})
    save_official(checkpoint, tmp_path / 'last.pt')
    key = 'model.0.conv.weight'
    assert torch.equal(official_state_dict(tmp_path / 'last.pt')[key], state[key])
    assert torch.equal(official_state_dict(tmp_path / 'last.pt', use_ema=True)[key], state[key] + 1)


class SideEffect:
    """Unpickling calls ``func(*args)``: each would create ``marker`` if it ran."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def malicious_payloads(marker):
    return {
        'posix.system': SideEffect(os.system, f'touch {marker}'),
        'builtins.eval': SideEffect(eval, f'open({str(marker)!r}, "w")'),
        'subprocess.Popen': SideEffect(subprocess.Popen, ['touch', str(marker)]),
    }


@pytest.mark.parametrize('protocol', [2, 4])
@pytest.mark.parametrize('name', ['posix.system', 'builtins.eval', 'subprocess.Popen'])
def test_malicious_pickles_are_refused_before_anything_runs(name, protocol, tmp_path):
    marker = tmp_path / 'pwned'
    payload = malicious_payloads(marker)[name]
    model = official_model(official_style_state(build_model('tiny', device='meta')))
    model.model._modules['3'].hidden = payload  # deep inside an otherwise valid official tree
    save_official({'model': model, 'epoch': -1}, tmp_path / 'evil.pt', pickle_protocol=protocol)
    with pytest.raises(UnsafeCheckpointError, match=f'refusing global {name}.*nothing was unpickled'):
        read_official_checkpoint(tmp_path / 'evil.pt')
    with pytest.raises(UnsafeCheckpointError):
        load_converter_tool().main([str(tmp_path / 'evil.pt'), str(tmp_path / 'ours.pth')])
    assert not marker.exists()


def test_unallowed_official_layer_names_a_yolov5_or_yolor_file(tmp_path):
    model = official_model(official_style_state(build_model('tiny', device='meta')),
                           model_class='models.yolo.DetectionModel')  # YOLOv5 v7.0's model class
    save_official({'model': model}, tmp_path / 'yolov5s.pt')
    with pytest.raises(UnsafeCheckpointError, match=r'models.yolo.DetectionModel is not a layer of the '
                       r'official YOLOv7 graphs: a YOLOv5, YOLOR'):
        official_state_dict(tmp_path / 'yolov5s.pt')


def test_truncated_missing_and_foreign_files_give_one_clear_line(tmp_path):
    model = build_model('tiny', device='meta')
    save_official(stripped_checkpoint(official_model(official_state_with_anchors(model))), tmp_path / 'ok.pt')
    data = (tmp_path / 'ok.pt').read_bytes()
    (tmp_path / 'cut.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'cut.pt: not a readable torch checkpoint \(truncated or corrupt'):
        official_state_dict(tmp_path / 'cut.pt')
    with pytest.raises(FileNotFoundError, match='absent.pt: no such file'):
        official_state_dict(tmp_path / 'absent.pt')
    torch.save({'state_dict': {'backbone.stem.0.conv.weight': torch.zeros(1)}}, tmp_path / 'mmdet.pth')
    with pytest.raises(ValueError, match='holds no official YOLOv7 state dict'):
        official_state_dict(tmp_path / 'mmdet.pth')
    (tmp_path / 'plain.pkl').write_bytes(pickle.dumps({'model': 1}))
    with pytest.raises(ValueError, match='not a readable torch checkpoint'):
        official_state_dict(tmp_path / 'plain.pkl')


def test_wrong_arch_is_refused_naming_the_fitting_one(tmp_path):
    model = build_model('tiny', device='meta')
    save_official(stripped_checkpoint(official_model(official_state_with_anchors(model))), tmp_path / 'tiny.pt')
    with pytest.raises(ValueError, match=r'tiny.pt is not a yolov7-l checkpoint \(.*\); it fits --arch tiny'):
        load_converter_tool().main([str(tmp_path / 'tiny.pt'), str(tmp_path / 'ours.pth'), '--arch', 'l'])


def fuseforward(self, x):
    """Named as the official ``Conv.fuseforward``, which ``Model.fuse()`` binds as ``forward``; never runs."""
    raise AssertionError('unpickling must not resolve the bound method')


def test_fused_checkpoint_is_refused_as_fused(tmp_path):
    """After ``Model.fuse()`` every Conv's ``forward`` is a bound method, pickled as ``builtins.getattr``."""
    model = official_model(official_state_with_anchors(build_model('tiny', device='meta')))
    conv = model.model._modules['0']
    conv.forward = types.MethodType(fuseforward, conv)  # Model.fuse(): m.forward = m.fuseforward
    save_official({'model': model.half(), 'optimizer': None, 'epoch': -1}, tmp_path / 'fused.pt')
    with pytest.raises(ValueError, match=r'fused.pt: saved after the official Model.fuse\(\).*nothing was unpickled'):
        official_state_dict(tmp_path / 'fused.pt')
    model.model._modules['0'].hidden = getattr  # builtins.getattr without a fused forward stays refused as such
    del conv.forward
    save_official({'model': model}, tmp_path / 'getattr.pt')
    with pytest.raises(UnsafeCheckpointError, match='refusing global builtins.getattr'):
        official_state_dict(tmp_path / 'getattr.pt')


def test_crafted_module_trees_give_one_clear_line(tmp_path):
    """Allowed classes holding wrong things, or containing themselves: a ValueError naming the file."""
    model = official_model(official_style_state(build_model('tiny', device='meta')))
    model.model._modules['0']._modules['conv']._parameters['weight'] = 'not a tensor'
    save_official({'model': model}, tmp_path / 'odd.pt')
    with pytest.raises(ValueError, match=r'odd.pt: model.0.conv.weight of torch.nn.modules.conv.Conv2d is a str'):
        official_state_dict(tmp_path / 'odd.pt')
    model = official_model(official_style_state(build_model('tiny', device='meta')))
    model.model._modules['1']._modules['loop'] = model.model
    save_official({'model': model}, tmp_path / 'cycle.pt')
    with pytest.raises(ValueError, match='cycle.pt: .*contains itself'):
        official_state_dict(tmp_path / 'cycle.pt')
