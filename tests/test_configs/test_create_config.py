"""``tools/misc/create_config.py``: no code from data, configs that travel, a test split, one
template, and a schedule that says when a small dataset will not learn (issues #19, #20, #23)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mmdet.registry import DATASETS
from test_input_size import REPO_ROOT, load_tool
from yolov7_mmdet.engine.hooks import (ScheduleSummary, ScheduleSummaryHook,
                                       YOLOv7ParamSchedulerHook, YOLOv7Schedule)
from yolov7_mmdet.engine.optimizers.yolov7_optim_wrapper import YOLOv7OptimWrapper

TOOL = 'tools/misc/create_config.py'
CLASSES = ['cat', "it's \"quoted\""]


def write_split(folder: Path, name: str, *, image_root=None, images: int = 2) -> Path:
    """A COCO JSON of ``images`` 32 x 32 images in ``folder / 'img'`` (one box each)."""
    (folder / 'img').mkdir(parents=True, exist_ok=True)
    coco = dict(info=dict(image_root=str(image_root or folder / 'img')), images=[], annotations=[],
                categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)])
    for image_id in range(1, images + 1):
        Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / 'img' / f'{image_id}.png')
        coco['images'].append(dict(id=image_id, file_name=f'{image_id}.png', width=32, height=32))
        coco['annotations'].append(dict(id=image_id, image_id=image_id, category_id=1,
                                        bbox=[4, 4, 10, 12], area=120, iscrowd=0))
    path = folder / name
    path.write_text(json.dumps(coco))
    return path


def create(*args: str) -> Path:
    return load_tool(TOOL).main(['--size', '64', '--batch', '2', '--epochs', '4', *map(str, args)])


def test_data_strings_cannot_run_code(tmp_path):
    marker = tmp_path / 'pwned'
    payload = f"/data/x'; import os; os.system('touch {marker}'); _z='"
    data = write_split(tmp_path, 'train.json', image_root=payload)
    out = create('--data', data, data, '--out', tmp_path / 'cfg.py')
    cfg = Config.fromfile(str(out))
    assert not marker.exists()
    assert cfg.train_img_dir == payload + '/'
    assert cfg.train_dataloader.dataset.dataset.data_prefix.img == payload + '/'
    assert cfg.classes == tuple(CLASSES)


def test_quotes_in_paths_round_trip(tmp_path, monkeypatch):
    folder = tmp_path / "it's \"data\""
    data = write_split(folder, 'train.json')
    monkeypatch.chdir(folder)  # a relative --data path
    out = create('--data', 'train.json', data, '--out', folder / 'cfg.py')
    cfg = Config.fromfile(str(out))
    assert cfg.train_ann_file == cfg.val_ann_file == str(data)
    assert cfg.val_dataloader.dataset.data_prefix.img == f'{folder}/img/'


@pytest.mark.parametrize('image_root', ['/data/{{$HOME}}', '/data/{{ fileDirname }}'])
def test_strings_that_mmengine_would_substitute_are_refused(tmp_path, capsys, image_root):
    data = write_split(tmp_path, 'train.json', image_root=image_root)
    (tmp_path / 'cfg.py').write_text('# a config the user had\n')
    with pytest.raises(SystemExit) as exit_info:
        create('--data', data, data, '--out', tmp_path / 'cfg.py')
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and 'mmengine substitutes' in err and err.count('\n') == 1
    assert (tmp_path / 'cfg.py').read_text() == '# a config the user had\n'  # untouched


def test_out_that_is_an_input_is_refused(tmp_path, capsys):
    data = write_split(tmp_path, 'train.json')
    before = data.read_text()
    with pytest.raises(SystemExit):
        create('--data', data, data, '--out', data)
    assert 'is one of the input files' in capsys.readouterr().err and data.read_text() == before


@pytest.mark.parametrize('field, value, words', [
    ('categories', [{'id': '1', 'name': 'cat'}], '`categories` must be a list'),
    ('categories', [{'id': 1}], '`categories` must be a list'),
    ('categories', {'1': 'cat'}, '`categories` must be a list'),
    ('info', ['img'], 'no info.image_root'),
    ('info', {'image_root': 5}, 'no info.image_root'),
    ('images', 'all', '`images` must be a list'),
])
def test_malformed_fields_are_one_line_naming_the_file(tmp_path, capsys, field, value, words):
    data = write_split(tmp_path, 'train.json')
    coco = json.loads(data.read_text())
    coco[field] = value
    data.write_text(json.dumps(coco))
    with pytest.raises(SystemExit) as exit_info:
        create('--data', data, data, '--out', tmp_path / 'cfg.py')
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count('\n') == 1
    assert f'{data}' in err and words in err
    assert not (tmp_path / 'cfg.py').exists()


def test_written_text_is_checked_against_the_template(tmp_path):
    tool = load_tool(TOOL)
    template = tool.template_text()
    values = dict(img_scale=(64, 64), train_ann_file='a.json')
    text = tool.render_config(template, values)
    tool.load_checked(text, template, values, REPO_ROOT / 'configs' / 'yolov7')  # passes
    for tampered, words in [
            (text.replace("train_ann_file = 'a.json'", "train_ann_file = 'a' + '.json'"),
             'not written as the literal'),
            (text.replace('max_epochs = 100', 'max_epochs = 100\nimport os'), 'other statements'),
            (text.replace('num_workers = 2', 'num_workers = 3'), 'differs from its template')]:
        with pytest.raises(ValueError, match=words):
            tool.load_checked(tampered, template, values, tmp_path)


def test_a_moved_config_builds_its_dataset_from_any_folder(tmp_path, monkeypatch):
    data = write_split(tmp_path / 'data', 'train.json')
    monkeypatch.chdir(tmp_path / 'data')
    out = create('--data', 'train.json', 'train.json', '--img-dirs', 'img', 'img',
                 '--out', tmp_path / 'a' / 'cfg.py')
    moved = tmp_path / 'b' / 'deeper' / 'cfg.py'
    moved.parent.mkdir(parents=True)
    shutil.move(str(out), str(moved))
    (tmp_path / 'c').mkdir()
    monkeypatch.chdir(tmp_path / 'c')
    cfg = Config.fromfile(str(moved))
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset.dataset)
        test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(dataset) == len(test_set) == 2 and dataset.metainfo['classes'] == tuple(CLASSES)
    assert Path(dataset[0]['img_path']).is_file() and dataset.ann_file == str(data)


def test_a_test_split_is_what_tools_test_evaluates(tmp_path):
    train = write_split(tmp_path / 'train', 'train.json')
    val = write_split(tmp_path / 'val', 'val.json')
    test = write_split(tmp_path / 'test', 'test.json', images=3)
    out = create('--data', train, val, '--test', test, '--out', tmp_path / 'cfg.py')
    cfg = Config.fromfile(str(out))
    assert cfg.test_dataloader.dataset.ann_file == cfg.test_evaluator.ann_file == str(test)
    assert cfg.test_dataloader.dataset.data_prefix.img == f'{tmp_path}/test/img/'
    assert cfg.val_dataloader.dataset.ann_file == cfg.val_evaluator.ann_file == str(val)
    assert cfg.test_dataloader.dataset.pipeline == cfg.val_dataloader.dataset.pipeline
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert len(DATASETS.build(cfg.test_dataloader.dataset)) == 3

    without = Config.fromfile(str(create('--data', train, val, '--out', tmp_path / 'plain.py')))
    assert without.test_dataloader == without.val_dataloader
    assert without.test_evaluator.ann_file == str(val)


def test_small_dataset_schedule_is_explained_and_fixed(tmp_path, capsys):
    """Issue #20: 202 images x 8 epochs at batch 8 with the official nominal batch 64."""
    data = write_split(tmp_path, 'train.json', images=202)
    create('--data', data, data, '--batch', '8', '--epochs', '8', '--out', tmp_path / 'small.py')
    out = capsys.readouterr().out
    assert ('26 iterations of 8 images x 8 epochs = 208 iterations and 32 optimizer steps' in out
            and 'warmup over iterations 0..26 = 1.0 epochs' in out)
    assert ('warning: this run will barely train: only 32 optimizer steps in all (fewer than '
            '300), too few to learn. Fix: --nominal-batch 8 (one optimizer step per iteration, 208 '
            'in all), more epochs\n') in out

    config = create('--data', data, data, '--batch', '8', '--epochs', '8', '--warmup-iters', '150',
                    '--out', tmp_path / 'long_warmup.py')
    out = capsys.readouterr().out
    assert 'warning: this run will barely train: the warmup covers 73% of the run' in out
    assert '--warmup-iters 20 (a tenth of the run)' in out
    assert Config.fromfile(str(config)).default_hooks.param_scheduler.min_warmup_iters == 150

    fixed = create('--data', data, data, '--batch', '8', '--epochs', '30', '--nominal-batch', '8',
                   '--warmup-iters', '20', '--out', tmp_path / 'fixed.py')
    out = capsys.readouterr().out
    assert 'warning' not in out and '780 optimizer steps' in out
    cfg = Config.fromfile(str(fixed))
    assert cfg.optim_wrapper.nominal_batch_size == 8
    assert (cfg.default_hooks.param_scheduler.warmup_epochs,
            cfg.default_hooks.param_scheduler.min_warmup_iters) == (0, 20)


@pytest.mark.parametrize('batch, nominal, warmup_iters', [(8, 64, 26), (8, 64, 1000), (3, 64, 7)])
def test_counted_optimizer_steps_are_those_of_the_optimizer_wrapper(batch, nominal, warmup_iters):
    import torch
    schedule = YOLOv7Schedule(max_epochs=8, iters_per_epoch=26, final_lr_factor=0.01,
                              total_batch_size=batch, nominal_batch_size=nominal,
                              warmup_epochs=0, min_warmup_iters=warmup_iters)
    model = torch.nn.Linear(1, 1)
    wrapper = YOLOv7OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                 total_batch_size=batch, nominal_batch_size=nominal)
    total = 8 * 26
    wrapper.initialize_count_status(model, 0, total)
    with mock.patch.object(wrapper.optimizer, 'step') as step:
        for iteration in range(total):
            wrapper.accumulate = schedule.accumulate(iteration)
            wrapper.update_params(model(torch.ones(1, 1)).sum())
    assert ScheduleSummary.of(schedule).optimizer_steps == step.call_count


def test_the_hook_logs_the_summary_and_the_fix_in_cfg_options():
    scheduler = YOLOv7ParamSchedulerHook(final_lr_factor=0.01)
    scheduler.schedule = YOLOv7Schedule(max_epochs=8, iters_per_epoch=26, final_lr_factor=0.01,
                                        total_batch_size=8)
    runner = SimpleNamespace(hooks=[scheduler], logger=mock.Mock())
    ScheduleSummaryHook().before_train(runner)
    assert 'warmup over iterations 0..1000' in runner.logger.info.call_args.args[0]
    warning = runner.logger.warning.call_args.args[0]
    assert warning.startswith('This run will barely train: the warmup covers 100% of the run')
    assert 'optimizer steps' in warning and 'optim_wrapper.nominal_batch_size=8' in warning
    assert 'min_warmup_iters=20' in warning


def test_every_yolov7_schedule_config_has_the_summary_hook():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/yolov7/yolov7_l_8xb16-300e_coco.py'))
    assert dict(type='ScheduleSummaryHook') in cfg.custom_hooks


def test_shipped_l_config_is_the_template_rendered_for_l():
    tool = load_tool(TOOL)
    shipped = (REPO_ROOT / 'configs/yolov7/yolov7_l_custom.py').read_text()
    # regenerate with these values (relative _base_, as shipped) after changing the template
    values = dict(_base_=[f'../_base_/{base}' for base in tool.MODELS['l']], img_scale=(640, 640),
                  train_batch_size_per_gpu=16)
    assert shipped == tool.render_config(tool.template_text(), values)


BEFORE_ONE_TEMPLATE = 'e45fafa'  # the last commit with three copies of the custom config
NEW_KNOBS = {'test_ann_file', 'test_img_dir', 'warmup_iters'}  # None: the old behaviour


@pytest.mark.parametrize('model', ['tiny', 'l'])
def test_shipped_custom_configs_merge_as_before_the_template(model, tmp_path):
    relative = f'configs/yolov7/yolov7_{model}_custom.py'
    old = subprocess.run(['git', 'show', f'{BEFORE_ONE_TEMPLATE}:{relative}'], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    if old.returncode:
        pytest.skip(f'no git history with commit {BEFORE_ONE_TEMPLATE}: {old.stderr.strip()}')
    old_file = REPO_ROOT / 'configs' / 'yolov7' / f'.old_{model}_{tmp_path.name}.py'
    old_file.write_text(old.stdout)  # beside the new one: same relative _base_
    try:
        before = Config.fromfile(str(old_file)).to_dict()
    finally:
        old_file.unlink()
    after = Config.fromfile(str(REPO_ROOT / relative)).to_dict()
    assert {key: after[key] for key in NEW_KNOBS} == dict.fromkeys(NEW_KNOBS)
    # Since then the COCO bases evaluate in rectangular batches (issue 22) and the custom configs
    # state the square loader's sampler and collate: compared without those two keys, which
    # tests/test_models/test_official_rect_eval.py covers.
    for config in (before, after):
        for loader in ('val_dataloader', 'test_dataloader'):
            config[loader].pop('batch_sampler', None)
            config[loader].pop('collate_fn', None)
    assert {key: value for key, value in after.items() if key not in NEW_KNOBS} == before
