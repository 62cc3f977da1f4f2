"""Run the planned re-parameterization ablation (the paper's Fig. 4) and print its table.

    python tools/analysis_tools/rep_conv_ablation.py --seeds 0 1 [--work-dir work_dirs/rep_conv_ablation]
           [--blocks plain residual concat] [--convs conv repconv repconvn]
           [--figure docs/figures/rep_conv_fig4.png] [--table-only]

Trains every config ``configs/ablation/rep_conv/<block>_<conv>.py`` once per seed with
``tools/train.py`` (one process per run, on the embedded demo shapes, made if missing), reads the
final COCO mAP of each run, and prints a Markdown table: mean mAP@0.5 and mAP per block and conv kind,
each seed's values, and the change against the plain-conv version of the same block with a mark
(check: within the seed noise or better; cross: worse by more than the seed noise). Each run writes
``<work-dir>/<block>_<conv>_seed<S>/result.json``; runs with a result are not repeated, so an
interrupted ablation resumes, and several processes may share a work dir in parallel (each run is
claimed by one of them). ``--table-only`` prints (and draws) from the result files without training.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)

from yolov7_mmdet.models.backbones.rep_ablation import BLOCK_KINDS, CONV_KINDS  # noqa: E402

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'ablation', 'rep_conv')
MARK_OK, MARK_LOSS = '\u2713', '\u2717'
CLAIM_FILE = 'claimed'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='RepConv placement ablation (YOLOv7 Fig. 4)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--blocks', nargs='+', default=list(BLOCK_KINDS), choices=BLOCK_KINDS)
    parser.add_argument('--convs', nargs='+', default=list(CONV_KINDS), choices=CONV_KINDS)
    parser.add_argument('--work-dir', default=osp.join(REPO_ROOT, 'work_dirs', 'rep_conv_ablation'))
    parser.add_argument('--data-root', default=osp.join(REPO_ROOT, 'data', 'demo_shapes'),
                        help='the demo dataset (made if missing)')
    parser.add_argument('--figure', help='also draw the Fig. 4-style summary into this PNG')
    parser.add_argument('--table-only', action='store_true', help='do not train; use the results file')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='extra overrides for every run')
    return parser.parse_args(argv)


def ensure_demo_data(data_root: str) -> None:
    """Make the demo dataset when it is not there (the same generator as the main job)."""
    if not osp.exists(osp.join(data_root, 'annotations', 'val.json')):
        subprocess.run([sys.executable, '-m', 'yolov7_mmdet.datasets.demo', data_root], check=True,
                       cwd=REPO_ROOT)


def final_metrics(run_dir: str) -> dict:
    """The last COCO metrics logged under ``run_dir`` (mmengine's ``vis_data/scalars.json``)."""
    logs = sorted(glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json')))
    metrics = {}
    for log in logs:
        with open(log) as f:
            for line in f:
                record = json.loads(line)
                if 'coco/bbox_mAP' in record:
                    metrics = record
    if not metrics:
        raise RuntimeError(f'no COCO metrics found under {run_dir}; see its log')
    return dict(mAP=metrics['coco/bbox_mAP'], mAP50=metrics['coco/bbox_mAP_50'])


def run_dir_of(work_dir: str, block: str, conv: str, seed: int) -> str:
    return osp.join(work_dir, f'{block}_{conv}_seed{seed}')


def claim(run_dir: str) -> bool:
    """Atomically mark a run as taken by this process; False when another process holds it.

    The mark is removed when the run ends (also on failure); a process killed hard leaves it behind:
    delete ``<run dir>/claimed`` to run that config again.
    """
    os.makedirs(run_dir, exist_ok=True)
    try:
        os.close(os.open(osp.join(run_dir, CLAIM_FILE), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def load_results(work_dir: str) -> dict:
    """``{'<block>_<conv>': {'<seed>': metrics}}`` from every finished run under ``work_dir``."""
    results = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*_seed*', 'result.json'))):
        name, seed = osp.basename(osp.dirname(path)).rsplit('_seed', 1)
        with open(path) as f:
            results.setdefault(name, {})[seed] = json.load(f)
    return results


def train_one(block: str, conv: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one config with one seed; writes and returns its final metrics and wall time."""
    run_dir = run_dir_of(args.work_dir, block, conv, seed)
    root = args.data_root.rstrip('/') + '/'
    options = [f'randomness.seed={seed}', f'train_dataloader.dataset.data_root={root}',
               f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
               f'val_evaluator.ann_file={root}annotations/val.json',
               f'test_evaluator.ann_file={root}annotations/val.json', *args.cfg_options]
    command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
               osp.join(CONFIG_DIR, f'{block}_{conv}.py'), '--work-dir', run_dir, '--cfg-options',
               *options]
    start = time.time()
    with open(osp.join(args.work_dir, f'{block}_{conv}_seed{seed}.log'), 'w') as log:
        subprocess.run(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    result = dict(final_metrics(run_dir), seconds=round(time.time() - start, 1))
    with open(osp.join(run_dir, 'result.json'), 'w') as f:
        json.dump(result, f)
    return result


def mean(values: list) -> float:
    return sum(values) / len(values)


def summarise(results: dict, blocks: list, convs: list) -> dict:
    """Per (block, conv): mean mAP / mAP@0.5 over seeds, their spread, and the verdict against the
    plain conv of the same block (absent for the plain conv itself, ``None`` while either has a
    single seed)."""
    summary = {}
    for block in blocks:
        for conv in convs:
            runs = results.get(f'{block}_{conv}', {})
            if not runs:
                continue
            maps = [r['mAP'] for r in runs.values()]
            summary[(block, conv)] = dict(
                mAP=mean(maps), mAP50=mean([r['mAP50'] for r in runs.values()]),
                spread=max(maps) - min(maps), seeds=runs)
        base = summary.get((block, 'conv'))
        for conv in convs:
            entry = summary.get((block, conv))
            if entry is None or base is None or conv == 'conv':
                continue
            entry['delta'] = entry['mAP'] - base['mAP']
            if min(len(entry['seeds']), len(base['seeds'])) < 2:
                entry['keeps_accuracy'] = None  # one seed: no estimate of the noise, no mark
                continue
            noise = max(entry['spread'], base['spread'])
            entry['keeps_accuracy'] = entry['delta'] >= -noise
    return summary


def format_table(summary: dict, blocks: list, convs: list) -> str:
    """The Markdown table of the doc."""
    lines = ['| block | 3x3 conv | mAP (mean) | mAP@0.5 (mean) | mAP per seed | vs plain conv |',
             '|---|---|---|---|---|---|']
    for block in blocks:
        for conv in convs:
            entry = summary.get((block, conv))
            if entry is None:
                continue
            per_seed = ' / '.join(f'{r["mAP"]:.3f}' for _, r in sorted(entry['seeds'].items()))
            if 'delta' in entry:
                mark = {True: MARK_OK, False: MARK_LOSS, None: '(one seed: no mark)'}[entry['keeps_accuracy']]
                verdict = f'{entry["delta"]:+.3f} {mark}'
            else:
                verdict = 'baseline' if conv == 'conv' else 'no plain-conv run to compare'
            lines.append(f'| {block} | {conv} | {entry["mAP"]:.3f} | {entry["mAP50"]:.3f} | {per_seed} '
                         f'| {verdict} |')
    return '\n'.join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.table_only:
        os.makedirs(args.work_dir, exist_ok=True)
        ensure_demo_data(args.data_root)
        for seed in args.seeds:  # seed-major: a partial run already covers every config once
            for block in args.blocks:
                for conv in args.convs:
                    run_dir = run_dir_of(args.work_dir, block, conv, seed)
                    if osp.exists(osp.join(run_dir, 'result.json')) or not claim(run_dir):
                        continue  # done, or another process is training it
                    try:
                        print(f'training {block}_{conv} seed {seed} ...', flush=True)
                        print(f'  {train_one(block, conv, seed, args)}', flush=True)
                    finally:
                        os.remove(osp.join(run_dir, CLAIM_FILE))
    summary = summarise(load_results(args.work_dir), args.blocks, args.convs)
    print(format_table(summary, args.blocks, args.convs))
    if args.figure:
        from yolov7_mmdet.visualization.doc_figures import draw_rep_conv_figure
        draw_rep_conv_figure(summary, args.figure)
        print(f'figure: {args.figure}')


if __name__ == '__main__':
    main()
