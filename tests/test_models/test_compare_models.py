"""tools/analysis_tools/compare_models.py and its parts in yolov7_mmdet.comparison: cost and train
modes end to end, tables = CSV = JSON, plots.

The two end-to-end runs are tiny (64 px; the train mode one epoch on 8 raccoon images); they prove
that the tool runs our models and mmdet's side by side and that its outputs agree, not any figure.
"""
import csv
import importlib
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
YOLOX_TINY = 'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py'
TINY_FUSED_PARAMS = 6_219_709  # REFERENCE.md: yolov7-tiny, 80 classes, deployed and fused


sys.path.insert(0, str(ROOT / 'tools' / 'analysis_tools'))
compare = importlib.import_module('compare_models')  # a script, not a package module
from yolov7_mmdet.comparison import cost, models, recipe, report, training  # noqa: E402


def _read_csv(path: Path) -> list:
    with path.open() as file:
        return list(csv.DictReader(file))


def _assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == 'PNG' and min(image.size) > 100, path


# ----------------------------------------------------------------------------------------------
# pieces


def test_labels_and_published_ap_come_from_names_and_model_zoos():
    yolox = models.resolve_model(YOLOX_TINY)
    assert (yolox.label, yolox.published_ap) == ('yolox_tiny', 32.0)  # mmdet's yolox/metafile.yml
    ours = models.resolve_model('yolov7_tiny')
    assert (ours.label, ours.published_ap) == ('yolov7_tiny', 38.7)
    with pytest.raises(ValueError, match="'yolov9'"):
        models.resolve_model('yolov9')
    with pytest.raises(FileNotFoundError, match='no such config in mmdet'):
        models.resolve_model('mmdet::yolox/nothing.py')
    with pytest.raises(ValueError, match='share the label'):
        models.resolve_models(['yolov7_tiny', 'yolov7_tiny'])


def test_schedules_scale_to_the_budget():
    yolox = models.resolve_model(YOLOX_TINY).cfg  # warmup 5, cosine 5-285, constant 285-300
    warmup, cosine, constant = recipe.scaled_schedulers(yolox.param_scheduler, recipe_epochs=300,
                                                         epochs=10)
    assert (warmup['begin'], warmup['end']) == (0, 1)
    assert (cosine['begin'], cosine['end'], cosine['T_max']) == (1, 9, 10)  # T_max 285 of 300
    assert (constant['begin'], constant['end']) == (9, 10)
    rtmdet = models.resolve_model('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py').cfg
    warmup, cosine = recipe.scaled_schedulers(rtmdet.param_scheduler, recipe_epochs=300,
                                               epochs=10)
    assert warmup['by_epoch'] and warmup['convert_to_iter_based'] and warmup['end'] == 1
    assert (cosine['begin'], cosine['end'], cosine['T_max']) == (5, 10, 5)  # the second half
    # one epoch: only the phases that fit are kept, never an empty one
    assert [s['type'] for s in recipe.scaled_schedulers(
        yolox.param_scheduler, recipe_epochs=300, epochs=1)] == ['mmdet.QuadraticWarmupLR',
                                                                 'ConstantLR']


def test_ours_accumulate_as_the_recipe_or_per_nominal_batch():
    specs = models.resolve_models(['yolov7_tiny', YOLOX_TINY])
    expanded = models.with_nominal_batches(specs, [64, 8, 64])
    assert [(spec.label, spec.nominal_batch) for spec in expanded] == [
        ('yolov7_tiny', 64), ('yolov7_tiny_nb8', 8), ('yolox_tiny', None)]
    assert models.with_nominal_batches(specs, None) == specs
    args = compare.parse_args(['--mode', 'train', '--models', 'yolov7_tiny', '--data', 't', 'v',
                               '--batch', '8', '--out', 'o'])
    data = dict(train=('t.json', 'images/'), val=('v.json', 'images/'))
    for spec, images_per_step in ((specs[0], 64), (expanded[1], 8)):  # recipe's, --nominal-batch
        cfg = recipe.train_config(spec, args, seed=0, data=data, num_classes=1, work_dir=Path('w'))
        assert cfg.optim_wrapper.batch_size_per_gpu == cfg.train_dataloader.batch_size == 8
        assert cfg.optim_wrapper.nominal_batch_size == images_per_step
    with pytest.raises(SystemExit):
        compare.parse_args(['--mode', 'train', '--models', 'yolov7_tiny', '--data', 't', 'v',
                            '--nominal-batch', '0', '--out', 'o'])


def test_bad_load_from_is_one_clear_error(capsys):
    with pytest.raises(SystemExit):
        compare.parse_args(['--mode', 'train', '--models', 'yolov7_tiny', '--out', 'o',
                            '--data', 'a.json', 'b.json', '--load-from', 'yolov7_tiny=none.pth'])
    assert "'yolov7_tiny=none.pth'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# cost mode


@pytest.fixture(scope='module')
def cost_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('cost')
    # 640 x 640 x batch 2 of yolov7-tiny (27 GFLOPs) is over the limit: skipped; 64 x 64 is timed
    compare.main(['--mode', 'cost', '--models', 'yolov7_tiny', YOLOX_TINY, '--size', '64',
                  '--batch', '2', '--warmup', '0', '--repeats', '1', '--max-call-gflops', '20',
                  '--out', str(out)])
    return out


def test_cost_mode_outputs_agree(cost_out):
    records = json.loads((cost_out / 'cost.json').read_text())['rows']
    rows = _read_csv(cost_out / 'cost.csv')
    table = (cost_out / 'cost.md').read_text()
    assert [(r['model'], r['size'], r['input']) for r in records] == [
        ('yolov7_tiny', 'own', '640x640'), ('yolov7_tiny', 'common', '64x64'),
        ('yolox_tiny', 'own', '416x416'), ('yolox_tiny', 'common', '64x64')]
    for record, row in zip(records, rows):
        for column in report.COST_COLUMNS:
            value = record[column]
            assert row[column] == ('' if value is None else str(value)), column
        assert '| ' + ' | '.join(report.cell(record[c], report.DECIMALS.get(c, 3))
                                 for c in report.COST_COLUMNS) + ' |' in table
    _assert_png(cost_out / 'ap_vs_latency.png')


def test_replot_rewrites_the_outputs_without_measuring(cost_out):
    table = (cost_out / 'cost.md').read_text()
    (cost_out / 'cost.md').unlink()
    (cost_out / 'ap_vs_latency.png').unlink()
    compare.main(['--mode', 'cost', '--replot', '--out', str(cost_out)])
    assert (cost_out / 'cost.md').read_text() == table
    _assert_png(cost_out / 'ap_vs_latency.png')


def test_cost_mode_measures_the_deployed_models(cost_out):
    own, common, yolox_own, _ = json.loads((cost_out / 'cost.json').read_text())['rows']
    assert round(own['params_M'] * 1e6) == TINY_FUSED_PARAMS  # switch_to_deploy + fused BN
    assert own['GFLOPs'] == pytest.approx(common['GFLOPs'] * 100, rel=0.01)  # (640 / 64)^2
    assert own['throughput_img_s'] is None and own['batch'] is None  # over --max-call-gflops
    assert common['batch'] == 2 and common['throughput_img_s'] > 0
    assert own['latency_ms'] > common['latency_ms'] > 0
    assert yolox_own['published_AP'] == 32.0 and own['peak_MB'] is None  # CPU: not measured


# ----------------------------------------------------------------------------------------------
# train mode


def _raccoon_subset(datasets: Path, out: Path) -> list:
    """COCO JSON of the first 8 train / 4 val raccoon images."""
    from yolov7_mmdet.datasets.sources import read_voc, save_as_coco, voc_annotation_files
    root = datasets / 'raccoon'
    files = []
    for split, count in (('train', 8), ('val', 4)):
        xml_files = voc_annotation_files(root / 'annotations', root / 'splits' / f'{split}.txt')
        data = read_voc(xml_files[:count], image_dir=root / 'images')
        save_as_coco(data, out / f'{split}.json', name=f'raccoon/{split}',
                     image_root=root / 'images')
        files.append(str(out / f'{split}.json'))
    return files


@pytest.fixture(scope='module')
def train_out(tmp_path_factory, shared_datasets):
    out = tmp_path_factory.mktemp('train')
    data = _raccoon_subset(shared_datasets, out)
    argv = ['--mode', 'train', '--models', 'yolov7_tiny', YOLOX_TINY, '--data', *data,
            '--image-root', str(shared_datasets / 'raccoon' / 'images'), '--epochs', '1',
            '--size', '64', '--batch', '4', '--workers', '0', '--out', str(out / 'compare')]
    compare.main(argv)
    return out / 'compare', argv


def test_train_mode_outputs_agree(train_out):
    out, _ = train_out
    runs = json.loads((out / 'train.json').read_text())['runs']
    rows = _read_csv(out / 'train.csv')
    table = (out / 'train.md').read_text()
    assert [(run['model'], run['seed']) for run in runs] == [('yolov7_tiny', 0), ('yolox_tiny', 0)]
    assert [(row['model'], row['epoch']) for row in rows] == [('yolov7_tiny', '1'),
                                                               ('yolox_tiny', '1')]
    for run, row in zip(runs, rows):
        final = run['history'][-1]
        assert float(row['mAP']) == final['mAP'] and float(row['train_seconds']) > 0
        assert 0.0 <= final['mAP'] <= final['mAP_50'] <= 1.0
        assert f'| {run["model"]} | 0 | {report.cell(final["mAP"])} | ' in table
    assert 'whole-image box' in table
    for run in runs:  # each run logs into its own folder (mmengine's visualizer is a global)
        assert list((out / 'runs' / f'{run["model"]}_seed0').glob('*/vis_data/scalars.json'))
    for plot in ('map_vs_epoch.png', 'map_vs_time.png'):
        _assert_png(out / plot)


def test_train_mode_scales_each_recipe(train_out):
    out, _ = train_out
    from mmengine.config import Config
    ours = Config.fromfile(out / 'runs' / 'yolov7_tiny_seed0' / 'config.py')
    assert ours.default_hooks.param_scheduler.warmup_epochs == 1
    assert ours.train_dataloader.batch_size == 4
    assert ours.optim_wrapper.nominal_batch_size == 64  # the recipe's accumulation
    assert ours.model.bbox_head.num_classes == 1 and ours.model.bbox_head.loss.img_size == 64
    yolox = Config.fromfile(out / 'runs' / 'yolox_tiny_seed0' / 'config.py')
    assert yolox.model.bbox_head.num_classes == 1 and yolox.train_cfg.max_epochs == 1
    assert 'batch_augments' not in yolox.model.data_preprocessor
    assert 'YOLOXModeSwitchHook' not in [hook.type for hook in yolox.custom_hooks]


def test_finished_runs_are_not_trained_again(train_out, capsys):
    out, argv = train_out
    result_file = out / 'runs' / 'yolox_tiny_seed0' / 'result.json'
    before = result_file.stat().st_mtime_ns
    compare.main(argv)
    assert result_file.stat().st_mtime_ns == before
    assert capsys.readouterr().out.count('finished before') == 2


def test_calls_over_the_limit_are_not_made():
    spec = models.resolve_model('yolov7_tiny')
    args = compare.parse_args(['--mode', 'cost', '--models', 'yolov7_tiny', '--out', 'o',
                               '--size', '64', '--batch', '2', '--max-call-gflops', '1'])
    (own, common), calls = cost.plan_model(spec, cost.deployed_model(spec, 'cpu'), args)
    assert own['input'] == '640x640' and own['GFLOPs'] is None  # about 13.7: not even traced
    assert common['GFLOPs'] < 1 and common['batch'] == 2
    assert sorted(calls) == ['yolov7_tiny/common/1', 'yolov7_tiny/common/N']


def test_cost_plot_falls_back_to_the_common_size(tmp_path):
    def row(model, size, latency):
        return dict(model=model, size=size, input='320x320', latency_ms=latency, published_AP=40.0)

    rows = [row('big', 'own', None), row('big', 'common', 50.0),  # own size not measured
            row('small', 'own', 10.0), row('small', 'common', 5.0)]
    report.plot_cost(rows, tmp_path / 'ap.png', 'title')
    _assert_png(tmp_path / 'ap.png')


def test_data_images_default_to_the_folder_to_coco_recorded(tmp_path):
    """Without --image-root the images are looked for where to_coco.py says they are."""
    categories = [dict(id=1, name='raccoon')]
    recorded = dict(images=[], annotations=[], categories=categories, info=dict(image_root='/data/imgs'))
    (tmp_path / 'train.json').write_text(json.dumps(recorded))
    (tmp_path / 'val.json').write_text(json.dumps(dict(images=[], annotations=[], categories=categories)))
    args = compare.parse_args(['--mode', 'train', '--models', 'yolov7_tiny', '--data',
                               str(tmp_path / 'train.json'), str(tmp_path / 'val.json'),
                               '--out', str(tmp_path / 'out')])
    data, num_classes = training.read_data_args(args)
    assert num_classes == 1
    assert data['train'][1] == '/data/imgs/' and data['val'][1] == f'{tmp_path.resolve()}/'


def test_train_plot_draws_each_model_once_with_its_seed_band():
    """Seeds of a model are one mean line and one min-max band, not one crossing line per seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    def run(model, seed, maps):
        return dict(model=model, seed=seed, history=[
            dict(epoch=e + 1, train_seconds=60.0 * (e + 1 + seed), mAP=m) for e, m in enumerate(maps)])

    results = [run('a', 0, [0.1, 0.3]), run('b', 0, [0.0, 0.1]), run('a', 1, [0.2, 0.5]),
               run('b', 1, [0.1, 0.2]), run('c', 0, [0.3, 0.3])]
    figure, axes = plt.subplots()
    report.draw_train(axes, results, dict(mAP=0.05), x_key='train_seconds')
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert sorted(lines) == ['a (mean of 2 seeds, min-max band)', 'b (mean of 2 seeds, min-max band)',
                             'c', 'whole-image box per image']
    line_a = lines['a (mean of 2 seeds, min-max band)']
    assert list(line_a.get_ydata()) == pytest.approx([0.15, 0.4])  # mean over seeds
    assert list(line_a.get_xdata()) == pytest.approx([1.5, 2.5])  # mean minutes
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # a and b; c has one seed
    band_a = bands[0].get_paths()[0].vertices
    assert band_a[:, 1].min() == pytest.approx(0.1) and band_a[:, 1].max() == pytest.approx(0.5)
    plt.close(figure)


def test_train_replot_rewrites_the_outputs_without_training(train_out):
    out, _ = train_out
    table = (out / 'train.md').read_text()
    for name in ('train.md', 'map_vs_epoch.png', 'map_vs_time.png'):
        (out / name).unlink()
    compare.main(['--mode', 'train', '--replot', '--out', str(out)])
    assert (out / 'train.md').read_text() == table
    for plot in ('map_vs_epoch.png', 'map_vs_time.png'):
        _assert_png(out / plot)
