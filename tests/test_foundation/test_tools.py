"""tools/train.py and tools/test.py keep mmdet 3.3's flags and behaviour."""
import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = load_tool('train')
test = load_tool('test')


def test_train_flags_match_mmdet():
    args = train.parse_args(['cfg.py', '--work-dir', 'w', '--amp', '--auto-scale-lr', '--resume',
                             '--cfg-options', 'a.b=1', '--launcher', 'pytorch'])
    assert (args.work_dir, args.amp, args.auto_scale_lr, args.resume) == ('w', True, True, 'auto')
    assert args.cfg_options == {'a.b': 1} and args.launcher == 'pytorch'
    assert train.parse_args(['cfg.py', '--resume', 'x.pth']).resume == 'x.pth'
    assert train.parse_args(['cfg.py']).resume is None


def test_resume_and_amp_edit_the_config():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper'), load_from='w.pth'))
    train.apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None
    train.apply_resume(cfg, 'ckpt.pth')
    assert cfg.load_from == 'ckpt.pth'
    train.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.dtype == 'float16'
    bf16 = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    train.enable_amp(bf16, train.parse_args(['cfg.py', '--amp', '--amp-dtype', 'bfloat16']).amp_dtype)
    assert bf16.optim_wrapper.dtype == 'bfloat16'


def test_auto_scale_lr_needs_a_base_batch_size():
    with pytest.raises(RuntimeError, match='base_batch_size'):
        train.enable_auto_scale_lr(Config(dict()))
    cfg = Config(dict(auto_scale_lr=dict(enable=False, base_batch_size=64)))
    train.enable_auto_scale_lr(cfg)
    assert cfg.auto_scale_lr.enable is True


def test_test_flags_match_mmdet():
    args = test.parse_args(['cfg.py', 'ckpt.pth', '--out', 'r.pkl', '--show-dir', 'vis', '--tta'])
    assert (args.checkpoint, args.out, args.show_dir, args.tta) == ('ckpt.pth', 'r.pkl', 'vis', True)
    with pytest.raises(SystemExit):
        test.parse_args(['cfg.py', 'ckpt.pth', '--out', 'results.json'])


def test_tta_without_a_tta_config_is_a_clear_error():
    with pytest.raises(RuntimeError, match='tta_model and tta_pipeline'):
        test.wrap_for_tta(Config(dict(model=dict(type='YOLOv7'))))
