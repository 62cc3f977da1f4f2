"""One input size per config: every pipeline (TTA included) and the loss follow ``img_scale``.

Issue #10 ("one knob") and #15 item 1 (``--tta`` on the demo config evaluated at the base's 640 px
instead of the demo's 128 px and scored 0 mAP). ``create_config.py`` writes configs whose sizes,
batch and schedule all derive from the variables at the top; ``InputSizeCheckHook`` refuses a config
whose sizes disagree, ``--tta`` included.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmdet.registry import MODELS
from test_smoke_train import fast_config_text  # noqa: F401  (fixture)
from yolov7_mmdet.engine.hooks.input_size_check_hook import (check_runner_input_sizes,
                                                            sized_transforms)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(str(path.relative_to(REPO_ROOT)) for path in [
    *REPO_ROOT.glob('configs/yolov7/*.py'), *REPO_ROOT.glob('configs/demo/*.py')])
SECTIONS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'tta_pipeline')


def load_tool(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_sizes(cfg) -> set:
    """Every transform size of the config's pipelines, and the loss's img_size as a square."""
    sizes = {size for section in SECTIONS
             for _, _, size in sized_transforms(cfg.get(section), section)}
    img_size = cfg.model.bbox_head.get('loss', {}).get('img_size', 640)
    return sizes | {(img_size, img_size)}


@pytest.mark.parametrize('config', SHIPPED)
def test_every_size_of_a_shipped_config_is_its_img_scale(config):
    cfg = Config.fromfile(str(REPO_ROOT / config))
    assert config_sizes(cfg) == {tuple(cfg.img_scale)}, config
    assert dict(type='InputSizeCheckHook') in cfg.custom_hooks


def fake_runner(cfg):
    """What InputSizeCheckHook reads of a runner: its config and its (built) model."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        return SimpleNamespace(cfg=cfg, model=MODELS.build(cfg.model))


def test_tta_at_another_size_than_the_model_is_an_error():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/demo/yolov7_tiny_demo.py'))
    load_tool('tools/test.py').wrap_for_tta(cfg)
    runner = fake_runner(cfg)
    check_runner_input_sizes(runner, ('test_dataloader',))  # the demo's own TTA: 128 px
    cfg.test_dataloader.dataset.pipeline = Config.fromfile(
        str(REPO_ROOT / 'configs/yolov7/yolov7_tiny_8xb16-300e_coco.py')).tta_pipeline  # 640 px
    with pytest.raises(ValueError, match=r'transforms\[1\]\[0\]: Resize scale=\(640, 640\), not \(128, 128'):
        check_runner_input_sizes(runner, ('test_dataloader',))


def test_a_child_config_that_changes_only_img_scale_is_refused(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = '{REPO_ROOT}/configs/yolov7/yolov7_tiny_custom.py'\n"
                     'img_scale = (256, 256)\n'
                     'model = dict(bbox_head=dict(loss=dict(img_size=256)))\n')
    cfg = Config.fromfile(str(child))
    with pytest.raises(ValueError, match=r'train_dataloader.*YOLOv7Mosaic img_scale=\(320, 320\)'):
        check_runner_input_sizes(fake_runner(cfg), ('train_dataloader', 'val_dataloader'))


def test_a_loader_fitting_to_another_size_is_refused():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/demo/yolov7_tiny_demo.py'))
    runner = fake_runner(cfg)
    check_runner_input_sizes(runner, ('train_dataloader',))  # img_scale None: the mosaic's size
    cfg.train_dataloader.dataset.dataset.pipeline[0]['img_scale'] = (640, 640)
    with pytest.raises(ValueError, match=r'YOLOv7LoadImageAndAnnotations img_scale=\(640, 640\)'):
        check_runner_input_sizes(runner, ('train_dataloader',))


def test_paste_in_cutting_from_another_size_is_refused():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/yolov7/yolov7_tiny_8xb16-300e_coco.py'))
    runner = fake_runner(cfg)
    check_runner_input_sizes(runner, ('train_dataloader',))
    paste_in = [transform for transform in cfg.train_dataloader.dataset.pipeline
                if transform['type'] == 'YOLOv7PasteIn']
    assert len(paste_in) == 1
    paste_in[0]['img_scale'] = (320, 320)
    with pytest.raises(ValueError, match=r'YOLOv7PasteIn img_scale=\(320, 320\), not \(640, 640'):
        check_runner_input_sizes(runner, ('train_dataloader',))


def test_sizes_must_be_multiples_of_the_largest_stride():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/yolov7/yolov7_tiny_custom.py'))
    runner = fake_runner(cfg)
    runner.model.bbox_head.loss_module.img_size = 336  # 10.5 strides of 32
    cfg.test_dataloader.dataset.pipeline[1].scale = (336, 336)
    cfg.test_dataloader.dataset.pipeline[2].scale = (336, 336)
    with pytest.raises(ValueError, match=r'YOLOv7Letterbox scale=\(336, 336\) is not a multiple'):
        check_runner_input_sizes(runner, ('test_dataloader',))
    with pytest.raises(ValueError, match='multiple of 32'):
        load_tool('tools/misc/create_config.py').check_numbers(SimpleNamespace(
            size=300, batch=2, epochs=1, nominal_batch=64, warmup_iters=None))


def test_created_config_builds_a_runner_whose_every_size_is_256(shared_datasets, tmp_path, capsys,
                                                                 fast_config_text):
    cards = shared_datasets / 'cards'
    converter = load_tool('tools/dataset_converters/to_coco.py')
    for split in ('train', 'val'):  # the 67 test images for both: a fast conversion
        converter.main(['voc', str(cards / 'images' / 'test'), '--no-decode',
                        '--classes', str(cards / 'training' / 'labelmap.pbtxt'),
                        '--out', str(tmp_path / f'{split}.json')])
    out = load_tool('tools/misc/create_config.py').main([
        '--data', str(tmp_path / 'train.json'), str(tmp_path / 'val.json'), '--model', 'tiny',
        '--size', '256', '--batch', '4', '--epochs', '40', '--out', str(tmp_path / 'cards.py')])
    assert f'python tools/train.py {out}' in capsys.readouterr().out
    cfg = Config.fromfile(str(out))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader.update(num_workers=0, persistent_workers=False)
    runner = Runner.from_cfg(cfg)

    # built pipelines: training (mosaic, affine, mixup's own mosaic + affine), validation
    train_set = runner.train_dataloader.dataset
    mosaic, affine, mixup = train_set.pipeline[:3]
    assert mosaic.img_scale == affine.img_scale == (256, 256)
    assert [t.img_scale for t in mixup.pre_transform.transforms] == [(256, 256), (256, 256)]
    val_transforms = runner.val_loop.dataloader.dataset.pipeline.transforms
    assert [t.scale for t in val_transforms if type(t).__name__ == 'Resize'] == [(256, 256)]
    assert [t.out_hw for t in val_transforms if type(t).__name__ == 'YOLOv7Letterbox'] == [(256, 256)]
    assert {size for _, _, size in sized_transforms(cfg.tta_pipeline, 'tta')} == {(256, 256)}
    # model: the loss's img_size, the classes of the JSON
    head = runner.model.bbox_head
    assert head.loss_module.img_size == 256 and head.num_classes == 6
    check_runner_input_sizes(runner, ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    # derived schedule: batch 4 accumulated to 64, warmup min(3, 40 // 10) = 3 epochs and no
    # 1000-iteration floor, validation every 40 // 10 = 4 epochs
    assert runner.train_dataloader.batch_size == 4
    assert (cfg.optim_wrapper.batch_size_per_gpu, cfg.optim_wrapper.nominal_batch_size) == (4, 64)
    assert runner.train_loop.max_epochs == 40 and runner.train_loop.val_interval == 4
    scheduler = next(h for h in runner.hooks if type(h).__name__ == 'YOLOv7ParamSchedulerHook')
    assert (scheduler.schedule_args['warmup_epochs'], scheduler.schedule_args['min_warmup_iters']) == (3, 0)
    assert any(type(h).__name__ == 'AutoAnchorHook' for h in runner.hooks)


def test_create_config_mistakes_are_one_line_and_status_2(tmp_path, capsys):
    def coco_file(name, categories, info):
        path = tmp_path / name
        path.write_text(json.dumps(dict(info=info, images=[], annotations=[],
                                        categories=[dict(id=i + 1, name=c)
                                                    for i, c in enumerate(categories)])))
        return str(path)

    rooted = dict(image_root='img')
    cases = [
        ((coco_file('a.json', ['x'], rooted), coco_file('b.json', ['y'], rooted)),
         'list different categories'),
        ((coco_file('c.json', ['x'], {}), coco_file('d.json', ['x'], {})), '--img-dirs'),
        ((coco_file('e.json', [], rooted), coco_file('f.json', ['x'], rooted)), 'e.json: no `categories`'),
        ((str(tmp_path / 'absent.json'), coco_file('g.json', ['x'], rooted)), 'absent.json'),
    ]
    for data, words in cases:
        with pytest.raises(SystemExit) as exit_info:
            load_tool('tools/misc/create_config.py').main(
                ['--data', *data, '--out', str(tmp_path / 'out.py')])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and words in err and err.count('\n') == 1, err
    assert not (tmp_path / 'out.py').exists()
