"""Official checkpoints load into our models and give the official outputs (lead and aux maps).

``tests/fixtures/official_yolov7_<arch>.pt`` hold the raw head outputs of the *official* models
(github WongKinYiu/yolov7 a207844) whose every tensor was set by ``official_weights.official_weight``
from its official name (see tests/fixtures/make_official_yolov7_outputs.md). Here the same weights are
written under the official names, converted with ``convert_official_state_dict`` and loaded strictly,
for all seven variants, which checks the whole layer mapping: backbone, neck order and concatenations, SPPCSPC, RepConv
branches, E6E's stacked E-ELAN and its partial aux taps, the implicit vectors and both detect layers.
"""
import importlib.util
from pathlib import Path

import pytest
import torch
from official_weights import official_input, official_weight
from yolov7_builders import build_model

from yolov7_mmdet.models.detectors.official_layout import convert_official_state_dict, official_layout

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'


def official_style_state(model) -> dict:
    """Official-keyed weights (``model.{i}...``) for every tensor ``model`` holds, via the layout."""
    layout, _ = official_layout(model)
    officials_of = dict(layout)
    state = {}
    for key, value in model.state_dict().items():
        if key == 'bbox_head.anchors':  # the official anchor_grid: added by the tests that need it
            continue
        prefix, _, suffix = key.rpartition('.')
        while prefix not in officials_of:  # climb to the module the layout names
            assert prefix, f'{key} is not covered by the official layout'
            prefix, _, head = prefix.rpartition('.')
            suffix = f'{head}.{suffix}'
        officials = officials_of[prefix]
        for official in officials:  # E-ELAN: one official layer per group, stacked along dim 0
            shape = (value.shape[0] // len(officials), ) + tuple(value.shape[1:]) if value.dim() else ()
            official_key = f'model.{official}.{suffix}'
            state[official_key] = official_weight(official_key, shape)
    return state


def converted_model(arch):
    model = build_model(arch, device='meta')  # no random init: every tensor is assigned
    model.load_state_dict(convert_official_state_dict(official_style_state(model), model), strict=True,
                          assign=True)
    return model.eval()


def anchor_major(raw):
    batch, _, height, width = raw.shape
    return raw.view(batch, 3, 85, height, width).permute(0, 1, 3, 4, 2)  # official p[i] layout


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e'])
def test_converted_model_reproduces_the_official_outputs(arch):
    golden = torch.load(FIXTURES / f'official_yolov7_{arch}.pt', weights_only=True)
    model = converted_model(arch)
    with torch.no_grad():
        lead, aux = model._forward(official_input(64))
    assert len(lead) == len(golden['lead'])
    for ours, theirs in zip(lead, golden['lead']):
        torch.testing.assert_close(anchor_major(ours), theirs, rtol=1e-4, atol=1e-4)
    if golden['aux']:
        for ours, theirs in zip(aux, golden['aux']):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    else:
        assert aux is None


@pytest.mark.parametrize('arch', ['tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e'])
def test_layout_covers_every_parameter_once(arch):
    model = build_model(arch, device='meta')
    layout, _ = official_layout(model)
    prefixes = [prefix for prefix, _ in layout]
    assert len(prefixes) == len(set(prefixes))
    for name, _ in model.named_parameters():
        assert sum(name.startswith(prefix + '.') for prefix in prefixes) == 1, name


def test_conversion_rejects_foreign_or_incomplete_states():
    model = build_model('tiny', device='meta')
    state = official_style_state(model)
    with pytest.raises(KeyError, match='no place'):
        convert_official_state_dict({**state, 'model.999.conv.weight': torch.zeros(1)}, model)
    incomplete = {k: v for k, v in state.items() if not k.startswith('model.77.')}
    with pytest.raises(KeyError, match='model.77.'):
        convert_official_state_dict(incomplete, model)
    four_anchors = {**state, 'model.77.anchor_grid': torch.ones(3, 1, 4, 1, 1, 2)}
    with pytest.raises(ValueError, match=r'anchor_grid has shape \(3, 1, 4, 1, 1, 2\), this head \(3, 3, 2\)'):
        convert_official_state_dict(four_anchors, model)
    disagreeing = {**state, 'model.77.anchor_grid': torch.ones(3, 1, 3, 1, 1, 2),
                   'model.77.anchors': torch.ones(3, 3, 2)}  # grid units: x stride is not 1 pixel
    with pytest.raises(ValueError, match='anchors x stride .* differ from its anchor_grid'):
        convert_official_state_dict(disagreeing, model)


def test_conversion_takes_the_official_anchors():
    """anchor_grid (pixels) when present, else anchors (grid units) x stride, else the head's."""
    model = build_model('tiny', device='meta')
    state = official_style_state(model)
    strides = model.bbox_head.strides.view(3, 1, 1)
    pixels = torch.arange(1., 19.).view(3, 3, 2) * strides  # (L, A, 2)
    both = {**state, 'model.77.anchor_grid': pixels.view(3, 1, 3, 1, 1, 2), 'model.77.anchors': pixels / strides}
    assert torch.equal(convert_official_state_dict(both, model)['bbox_head.anchors'], pixels)
    grid_units_only = {**state, 'model.77.anchors': pixels / strides}
    assert torch.equal(convert_official_state_dict(grid_units_only, model)['bbox_head.anchors'], pixels)
    assert torch.equal(convert_official_state_dict(state, model)['bbox_head.anchors'], model.bbox_head.anchors)


def load_converter_tool():
    path = Path(__file__).resolve().parents[2] / 'tools' / 'model_converters' / 'yolov7_to_mmdet.py'
    spec = importlib.util.spec_from_file_location('yolov7_to_mmdet', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_converter_tool_reads_classes_and_writes_a_loadable_checkpoint(tmp_path):
    model = build_model('tiny', device='meta', **{'bbox_head.num_classes': 3})
    state = official_style_state(model)
    # the official detect layer's anchor grid (L, 1, A, 1, 1, 2) in pixels
    state['model.77.anchor_grid'] = model.bbox_head.anchors.view(3, 1, 3, 1, 1, 2).clone()
    torch.save(state, tmp_path / 'official.pt')
    load_converter_tool().main([str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth'), '--arch', 'tiny'])
    checkpoint = torch.load(tmp_path / 'ours.pth', weights_only=True)
    assert checkpoint['meta']['num_classes'] == 3
    expected = convert_official_state_dict(state, model)
    assert checkpoint['state_dict'].keys() == expected.keys() == model.state_dict().keys()
    for key, value in expected.items():
        assert torch.equal(checkpoint['state_dict'][key], value), key


def test_converter_tool_takes_deploy_graph_checkpoints_without_implicit(tmp_path):
    model = build_model('tiny', device='meta')
    state = {k: v for k, v in official_style_state(model).items() if '.ia.' not in k and '.im.' not in k}
    torch.save(state, tmp_path / 'official.pt')
    load_converter_tool().main([str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth'), '--arch', 'tiny'])
    converted = torch.load(tmp_path / 'ours.pth', weights_only=True)['state_dict']
    assert all((converted[f'bbox_head.lead_implicit_a.{i}.implicit'] == 0).all() for i in range(3))
    assert all((converted[f'bbox_head.lead_implicit_m.{i}.implicit'] == 1).all() for i in range(3))
    model.load_state_dict(converted, strict=True, assign=True)


@pytest.fixture
def official_tiny_file(tmp_path) -> Path:
    model = build_model('tiny', device='meta')
    path = tmp_path / 'official.pt'
    torch.save(official_style_state(model), path)
    return path


@pytest.mark.parametrize('dst', ['official.pt', './sub/../official.pt', 'link.pt'])
def test_converter_refuses_its_input_as_output(official_tiny_file, dst):
    folder = official_tiny_file.parent
    (folder / 'sub').mkdir()
    (folder / 'link.pt').symlink_to(official_tiny_file)
    before = official_tiny_file.read_bytes()
    with pytest.raises(ValueError, match='is an input of this run'):
        load_converter_tool().main([str(official_tiny_file), str(folder / dst), '--arch', 'tiny'])
    assert official_tiny_file.read_bytes() == before


def test_converter_write_failure_keeps_the_old_output(official_tiny_file, monkeypatch):
    """A full disk while writing: the existing output stays whole, no partial file is left."""
    out = official_tiny_file.parent / 'ours.pth'
    out.write_bytes(b'the previous conversion')

    def disk_full(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr('os.fsync', disk_full)
    with pytest.raises(OSError, match='No space left'):
        load_converter_tool().main([str(official_tiny_file), str(out), '--arch', 'tiny'])
    assert out.read_bytes() == b'the previous conversion'
    assert sorted(p.name for p in out.parent.iterdir()) == ['official.pt', 'ours.pth']
