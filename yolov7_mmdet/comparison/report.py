"""The comparison's outputs: Markdown tables, CSV, JSON and plots (cost: published AP vs latency;
train: mAP vs epoch and vs training time, mean over seeds with their spread)."""
import csv
import json
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..utils.atomic import atomic_write_bytes

COST_COLUMNS = ('model', 'size', 'input', 'params_M', 'GFLOPs', 'latency_ms', 'batch',
                'throughput_img_s', 'peak_MB', 'published_AP')
TRAIN_COLUMNS = ('model', 'seed', 'epoch', 'train_seconds', 'mAP', 'mAP_50', 'mAP_75')
SUMMARY_COLUMNS = ('model', 'seeds', 'final_mAP', 'final_mAP_50', 'best_mAP', 'train_minutes')


# decimals shown in the Markdown tables (the CSV and JSON keep full precision); others: 3
DECIMALS = dict(params_M=2, GFLOPs=1, latency_ms=1, throughput_img_s=2, peak_MB=0, published_AP=1,
                train_seconds=1)


def cell(value, decimals: int = 3) -> str:
    """How every table shows a value: floats rounded to ``decimals``, None as '-'."""
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{decimals}f}'
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row[column], DECIMALS.get(column, 3)) for column in columns)
              + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with path.open('w', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({column: row[column] for column in columns} for row in rows)


def spread(values: Sequence[float], decimals: int = 3) -> str:
    """``mean (min-max)`` of one value over seeds."""
    if len(values) == 1:
        return cell(values[0], decimals)
    return (f'{cell(float(np.mean(values)), decimals)} '
            f'({cell(min(values), decimals)}-{cell(max(values), decimals)})')


def summarise(results: Sequence[dict]) -> List[dict]:
    """One row per model over its seeds: final / best mAP and training minutes, mean (min-max)."""
    rows = []
    for model in dict.fromkeys(result['model'] for result in results):
        runs = [result for result in results if result['model'] == model]
        finals = [run['history'][-1] for run in runs]
        rows.append(dict(
            model=model, seeds=' '.join(str(run['seed']) for run in runs),
            final_mAP=spread([final['mAP'] for final in finals]),
            final_mAP_50=spread([final['mAP_50'] for final in finals]),
            best_mAP=spread([max(epoch['mAP'] for epoch in run['history']) for run in runs]),
            train_minutes=spread([final['train_seconds'] / 60 for final in finals], decimals=1)))
    return rows


def model_colours(models: Sequence[str]) -> dict:
    import matplotlib.pyplot as plt
    palette = plt.get_cmap('tab10')
    return {model: palette(index % 10) for index, model in enumerate(dict.fromkeys(models))}


def plot_cost(rows: Sequence[dict], path: Path, title: str) -> None:
    """Published COCO AP against measured batch-1 latency: at each model's own input size (filled)
    or, where that was not measured, at the common size (hollow)."""
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(8, 5), dpi=90)
    models = [row['model'] for row in rows]
    colours = model_colours(models)
    for model in dict.fromkeys(models):
        own, common = [row for row in rows if row['model'] == model]
        row = own if own['latency_ms'] is not None else common
        if row['latency_ms'] is None or row['published_AP'] is None:
            continue
        axes.scatter(row['latency_ms'], row['published_AP'], edgecolors=colours[model],
                     facecolors=colours[model] if row is own else 'none')
        axes.annotate(f'{model} ({row["input"]})', (row['latency_ms'], row['published_AP']),
                      fontsize=6, xytext=(3, 3), textcoords='offset points')
    axes.set(xscale='log', xlabel='measured batch-1 latency (ms, log scale)',
             ylabel='published COCO val box AP',
             title=f'{title}\nfilled: own input size; hollow: common size (own not timed)')
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def seed_curves(runs: Sequence[dict], x_key: str) -> Tuple[np.ndarray, np.ndarray]:
    """The x values and mAPs of one model's runs over their common epochs, ``(seeds, epochs)``
    each; x in minutes where ``x_key`` is the training time."""
    epochs = min(len(run['history']) for run in runs)
    scale = 60 if x_key == 'train_seconds' else 1
    xs = np.array([[epoch[x_key] / scale for epoch in run['history'][:epochs]] for run in runs])
    maps = np.array([[epoch['mAP'] for epoch in run['history'][:epochs]] for run in runs])
    return xs, maps


def draw_train(axes, results: Sequence[dict], floor: dict, *, x_key: str) -> None:
    """mAP against ``x_key`` (epoch, or training minutes) per model: the mean over seeds as a line,
    the seeds' min-max as a band and each seed's points as faint markers, so that the models
    read apart at a glance; the whole-image-box floor as a dashed line."""
    models = [result['model'] for result in results]
    colours = model_colours(models)
    for model in dict.fromkeys(models):
        runs = [result for result in results if result['model'] == model]
        xs, maps = seed_curves(runs, x_key)  # (seeds, epochs) each
        mean_x = xs.mean(axis=0)
        label = model if len(runs) == 1 else f'{model} (mean of {len(runs)} seeds, min-max band)'
        axes.plot(mean_x, maps.mean(axis=0), marker='.', color=colours[model], label=label)
        if len(runs) > 1:
            axes.fill_between(mean_x, maps.min(axis=0), maps.max(axis=0), color=colours[model],
                              alpha=0.2, linewidth=0)
            axes.scatter(xs.ravel(), maps.ravel(), s=6, color=colours[model], alpha=0.35)
    axes.axhline(floor['mAP'], color='grey', linestyle='--', label='whole-image box per image')


def plot_train(results: Sequence[dict], floor: dict, path: Path, *, x_key: str, x_label: str,
               title: str) -> None:
    """:func:`draw_train` into a PNG at ``path``."""
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=90)
    draw_train(axes, results, floor, x_key=x_key)
    axes.set(xlabel=x_label, ylabel='COCO mAP (val)', title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_cost_outputs(rows: Sequence[dict], settings: dict, out: Path) -> None:
    """``cost.json`` (settings and rows), ``cost.csv``, ``cost.md`` and ``ap_vs_latency.png``."""
    write_json(out / 'cost.json', dict(settings=settings, rows=list(rows)))
    write_csv(out / 'cost.csv', rows, COST_COLUMNS)
    header = (f'cost on {settings["device"]} ({settings["threads"]} torch thread(s)): deployed '
              f'forms, tensor mode; latency = median of {settings["repeats"]} after '
              f'{settings["warmup"]} warm-up; throughput at batch {settings["batch"]}; calls over '
              f'{settings["max_call_gflops"]:g} GFLOPs not made (-); published_AP = model zoo, '
              'not measured\n\n')
    (out / 'cost.md').write_text(header + markdown_table(rows, COST_COLUMNS))
    plot_cost(rows, out / 'ap_vs_latency.png', f'published AP vs latency ({settings["device"]})')


def train_settings(args) -> dict:
    """The budget that the table's header states, saved in ``train.json`` for ``--replot``."""
    return dict(epochs=args.epochs, size=args.size, batch=args.batch, seeds=list(args.seeds),
                data=Path(args.data[0]).stem)  # the training file names the data


def write_train_outputs(results: Sequence[dict], floor: dict, settings: dict, out: Path) -> None:
    """``train.json`` (runs, floor, settings), ``train.csv``, ``train.md`` and the two plots."""
    rows = [dict(model=result['model'], seed=result['seed'], **epoch)
            for result in results for epoch in result['history']]
    write_json(out / 'train.json', dict(runs=list(results), whole_image_floor=floor,
                                        settings=settings))
    write_csv(out / 'train.csv', rows, TRAIN_COLUMNS)
    size, batch = settings['size'], settings['batch']
    budget = (f'{settings["epochs"]} epochs at {size}x{size}, batch {batch}, from scratch, '
              f'seeds {" ".join(map(str, settings["seeds"]))}; held-out COCO bbox metrics, mean '
              '(min-max) over seeds; training minutes exclude validation')
    floor_line = (f'\nFloor, one whole-image box per image (the data prior): mAP {cell(floor["mAP"])}, '
                  f'mAP@0.5 {cell(floor["mAP_50"])}.\n')
    (out / 'train.md').write_text(budget + '\n\n' + markdown_table(summarise(results),
                                                                   SUMMARY_COLUMNS) + floor_line)
    data = settings['data']
    plot_train(results, floor, out / 'map_vs_epoch.png', x_key='epoch', x_label='epoch',
               title=f'{data}: mAP vs epoch ({size} px, batch {batch})')
    plot_train(results, floor, out / 'map_vs_time.png', x_key='train_seconds',
               x_label='training wall time (min)',
               title=f'{data}: mAP vs training time ({size} px, batch {batch})')


def write_json(path: Path, value) -> None:
    """Write atomically: a killed run never leaves a half-written file that a re-run would trust."""
    atomic_write_bytes(str(path), json.dumps(value, indent=1).encode())
