"""The table and marks of ``tools/analysis_tools/rep_conv_ablation.py`` (training itself is a tool run)."""
import importlib.util
import json
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'rep_conv_ablation.py'
_spec = importlib.util.spec_from_file_location('rep_conv_ablation', _path)
ablation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation)

# mAP per (config, seed): residual + repconv loses 0.05, more than the seeds' spread (0.01)
RESULTS = {('residual', 'conv'): (0.20, 0.21), ('residual', 'repconv'): (0.15, 0.16),
           ('residual', 'repconvn'): (0.205, 0.215)}


@pytest.fixture
def work_dir(tmp_path):
    for (block, conv), maps in RESULTS.items():
        for seed, value in enumerate(maps):
            run_dir = Path(ablation.run_dir_of(str(tmp_path), block, conv, seed))
            run_dir.mkdir()
            (run_dir / 'result.json').write_text(json.dumps(dict(mAP=value, mAP50=2 * value, seconds=1)))
    (tmp_path / 'plain_conv_seed0').mkdir()  # a run still training: no result yet
    return tmp_path


def test_marks_compare_with_the_plain_conv_of_the_same_block_within_seed_noise(work_dir):
    results = ablation.load_results(str(work_dir))
    assert set(results) == {'residual_conv', 'residual_repconv', 'residual_repconvn'}
    summary = ablation.summarise(results, ['plain', 'residual'], ['conv', 'repconv', 'repconvn'])
    assert pytest.approx(summary[('residual', 'repconv')]['delta']) == -0.05
    assert summary[('residual', 'repconv')]['keeps_accuracy'] is False
    assert summary[('residual', 'repconvn')]['keeps_accuracy'] is True
    assert 'delta' not in summary[('residual', 'conv')]
    table = ablation.format_table(summary, ['plain', 'residual'], ['conv', 'repconv', 'repconvn'])
    assert '| residual | repconv | 0.155 | 0.310 | 0.150 / 0.160 | -0.050 \u2717 |' in table
    assert '| residual | repconvn | 0.210 | 0.420 | 0.205 / 0.215 | +0.005 \u2713 |' in table
    assert 'plain' not in table.split('\n', 2)[2]


def test_one_seed_gets_no_mark(work_dir):
    (work_dir / 'residual_repconv_seed1' / 'result.json').unlink()
    summary = ablation.summarise(ablation.load_results(str(work_dir)), ['residual'], ['conv', 'repconv'])
    assert summary[('residual', 'repconv')]['keeps_accuracy'] is None
    table = ablation.format_table(summary, ['residual'], ['conv', 'repconv'])
    assert '| -0.055 (one seed: no mark) |' in table


def test_table_only_draws_the_figure(work_dir, capsys):
    figure = work_dir / 'fig4.png'
    ablation.main(['--table-only', '--work-dir', str(work_dir), '--figure', str(figure)])
    assert 0 < figure.stat().st_size < 200 * 1024
    assert '| residual | conv |' in capsys.readouterr().out


def test_a_claimed_run_is_skipped_by_other_processes(tmp_path):
    run_dir = str(tmp_path / 'plain_conv_seed0')
    assert ablation.claim(run_dir)
    assert not ablation.claim(run_dir)
