"""The figures of ``docs/``, drawn from the project's own code (assigner, layers, arch tables).

Each function writes one small PNG; ``tools/analysis_tools/draw_doc_figures.py`` calls them.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib import patches

from ..models.task_modules.assigners import YOLOv7CandidateRegion
from .assignment import centre_reachable, reachable_centre_region
from .drawing import GT_COLOUR, REGION_COLOURS, plt, save_small_png

OK_COLOUR, NO_COLOUR = '#2a9d2a', '#d62828'

# The worked example of docs/label_assignment.md: a 20x20 px GT centred at (26.4, 37.6) px, stride 8.
EXAMPLE_GT = (16.4, 27.6, 36.4, 47.6)
EXAMPLE_STRIDE = 8.0
EXAMPLE_GRID = (10, 10)  # (H, W) cells


def example_cells(gt_box: Tuple[float, float, float, float] = EXAMPLE_GT, stride: float = EXAMPLE_STRIDE,
                  grid: Tuple[int, int] = EXAMPLE_GRID) -> List[Tuple[int, int, str]]:
    """The candidate cells of one GT on one level, from the project's candidate region.

    Returns:
        (x, y, 'fine' | 'coarse') per cell, fine cells first; coarse means coarse-only.
    """
    box = torch.tensor([[gt_box]])  # (B=1, M=1, 4)
    size = (box[0, 0, 2:] - box[0, 0, :2])[None, None]  # an anchor of the GT's own shape: (L=1, A=1, 2)
    cells = {}
    for offset, region in ((0.5, 'fine'), (1.0, 'coarse')):
        slots = YOLOv7CandidateRegion(neighbour_offset=offset)(
            box, torch.ones(1, 1, dtype=torch.bool), anchors=size, strides=torch.tensor([stride]),
            level_shapes=[grid])
        valid = slots.valid[0, 0, :, 0, 0]  # (B, L, 5, A, M) -> the 5 neighbour slots
        xs = slots.grid_x[0, 0, :, 0, 0][valid].tolist()
        ys = slots.grid_y[0, 0, :, 0, 0][valid].tolist()
        for x, y in zip(xs, ys):
            cells.setdefault((x, y), region)
    return [(x, y, region) for (x, y), region in cells.items()]


def _grid_axes(ax, x_range, y_range, stride):
    for x in range(x_range[0], x_range[1] + 1):
        ax.axvline(x * stride, color='#bbbbbb', linewidth=0.8)
    for y in range(y_range[0], y_range[1] + 1):
        ax.axhline(y * stride, color='#bbbbbb', linewidth=0.8)
    ax.set_xlim(x_range[0] * stride, x_range[1] * stride)
    ax.set_ylim(y_range[1] * stride, y_range[0] * stride)
    ax.set_aspect('equal')
    ax.set_xticks([x * stride for x in range(x_range[0], x_range[1] + 1)])
    ax.set_yticks([y * stride for y in range(y_range[0], y_range[1] + 1)])
    ax.tick_params(labelsize=7)


def _draw_gt(ax, gt_box) -> None:
    x1, y1, x2, y2 = gt_box
    ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=GT_COLOUR,
                                   linewidth=2))
    ax.plot([(x1 + x2) / 2], [(y1 + y2) / 2], marker='x', color='black', markersize=9, mew=2)


def draw_worked_example(out_file: str) -> None:
    """The worked example: fine (3) and coarse (5) candidate cells of one GT."""
    stride = EXAMPLE_STRIDE
    cells = example_cells()
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=80)
    _grid_axes(ax, (1, 6), (2, 7), stride)
    for x, y, region in cells:
        ax.add_patch(patches.Rectangle((x * stride, y * stride), stride, stride, alpha=0.45,
                                       facecolor=REGION_COLOURS[region]))
        ax.text((x + 0.5) * stride, (y + 0.15) * stride, f'({x}, {y})', ha='center', va='top', fontsize=7)
    centre_x, centre_y = cells[0][:2]
    ax.add_patch(patches.Rectangle((centre_x * stride, centre_y * stride), stride, stride, fill=False,
                                   edgecolor='black', linewidth=2))
    _draw_gt(ax, EXAMPLE_GT)
    ax.legend(handles=[patches.Patch(color=REGION_COLOURS['fine'], alpha=0.6, label='fine (lead)'),
                       patches.Patch(color=REGION_COLOURS['coarse'], alpha=0.6, label='coarse only (aux)'),
                       patches.Patch(facecolor='none', edgecolor=GT_COLOUR, label='GT, x = centre')],
              fontsize=7, loc='lower right')
    ax.set_title('GT centre (3.3, 4.7) cells: candidates\n(axes in pixels, stride 8)', fontsize=9)
    fig.tight_layout()
    save_small_png(fig, out_file, colours=32)


def draw_decoder_constraint(out_file: str, *, gt_box: Sequence[float] = EXAMPLE_GT,
                            stride: float = EXAMPLE_STRIDE,
                            cells: Optional[List[Tuple[int, int, str]]] = None, title: str = '') -> None:
    """One panel per candidate cell: the region its decoder can reach and whether the GT centre is in it.

    Args:
        out_file: PNG path.
        gt_box: the GT, xyxy pixels (default: the worked example's).
        stride: the level's stride in pixels.
        cells: (x, y, 'fine' | 'coarse') candidate cells; default: :func:`example_cells` of the GT.
        title: first line of the figure title.
    """
    cells = example_cells(tuple(gt_box), stride) if cells is None else cells
    gt = torch.tensor(gt_box, dtype=torch.float32)
    xs, ys = [c[0] for c in cells], [c[1] for c in cells]
    x_range, y_range = (min(xs) - 1, max(xs) + 2), (min(ys) - 1, max(ys) + 2)
    fig, axes = plt.subplots(1, len(cells), figsize=(2.3 * len(cells), 2.7), dpi=80, squeeze=False)
    for ax, (x, y, region) in zip(axes[0], cells):
        grid_x, grid_y = torch.tensor(x), torch.tensor(y)
        reachable = bool(centre_reachable(gt, grid_x, grid_y, stride))
        rx1, ry1, rx2, ry2 = reachable_centre_region(grid_x, grid_y, stride).tolist()
        _grid_axes(ax, x_range, y_range, stride)
        colour = OK_COLOUR if reachable else NO_COLOUR
        ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, facecolor=colour, alpha=0.25,
                                       edgecolor=colour, linestyle='--', linewidth=1.5))
        ax.add_patch(patches.Rectangle((x * stride, y * stride), stride, stride,
                                       facecolor=REGION_COLOURS[region], alpha=0.7))
        _draw_gt(ax, gt_box)
        centre = ((gt[:2] + gt[2:]) / 2 / stride).tolist()
        offset = (centre[0] - x, centre[1] - y)
        mark = 'reachable' if reachable else 'NOT reachable'
        ax.set_title(f'cell ({x}, {y}) {region}\noffset ({offset[0]:.1f}, {offset[1]:.1f}): {mark}',
                     fontsize=8, color=colour)
    fig.suptitle((title + '\n' if title else '') + 'Decoder constraint: a cell can put its centre only '
                 'in (-0.5, 1.5) cells (dashed); x = GT centre', fontsize=9)
    fig.tight_layout()
    save_small_png(fig, out_file, colours=32)


def draw_rep_conv_figure(summary: dict, out_file: str) -> None:
    """Fig. 4 in the paper's style: per block kind, the two 3x3 placements drawn with the conv under
    test, and our measured mark (mean mAP vs the plain-conv block, within / beyond the seed noise)."""
    blocks = ('plain', 'residual', 'concat')
    convs = ('repconv', 'repconvn')
    labels = {'repconv': 'RepConv\n(3x3 + 1x1 + id)', 'repconvn': 'RepConvN\n(3x3 + 1x1)'}
    fig, axes = plt.subplots(len(convs), len(blocks), figsize=(7.5, 6.2), dpi=80)
    for col, block in enumerate(blocks):
        for row, conv in enumerate(convs):
            ax = axes[row, col]
            ax.set_xlim(0, 10)
            ax.set_ylim(0, 10)
            ax.axis('off')
            _draw_block(ax, block, labels[conv])
            entry = summary.get((block, conv))
            if entry is None or 'delta' not in entry:
                ax.set_title(f'{block} + {conv}: not run', fontsize=8)
                continue
            ok = entry['keeps_accuracy']
            marks = {True: ('\u2713', OK_COLOUR), False: ('\u2717', NO_COLOUR), None: ('?', 'grey')}
            mark, colour = marks[ok]
            ax.text(9.3, 9.0, mark, fontsize=26, ha='center', va='center', color=colour, fontweight='bold')
            ax.set_title(f'{block} + {conv}\nmAP {entry["mAP"]:.3f} ({entry["delta"]:+.3f} vs conv)',
                         fontsize=8)
    fig.suptitle('Planned re-parameterization, measured (demo shapes, 128 px, mean of seeds)\n'
                 '\u2713: not below the plain-conv block by more than the seed spread; \u2717: below it',
                 fontsize=9)
    fig.tight_layout()
    save_small_png(fig, out_file, colours=32)


def _box(ax, x, y, text, colour='#dddddd', width=3.6, height=1.3) -> None:
    ax.add_patch(patches.FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                        boxstyle='round,pad=0.05', facecolor=colour, edgecolor='black'))
    ax.text(x, y, text, ha='center', va='center', fontsize=6.5)


def _arrow(ax, start, end) -> None:
    ax.annotate('', xy=end, xytext=start, arrowprops=dict(arrowstyle='->', lw=1))


def _draw_block(ax, block: str, conv_label: str) -> None:
    """A block diagram: input, two convs under test (highlighted), and the block's connection."""
    test_colour = '#f7c873'
    if block == 'concat':
        _box(ax, 5, 9.2, 'input')
        _box(ax, 2.2, 7.2, '1x1', width=2)
        _box(ax, 6.5, 7.2, '1x1', width=2)
        _box(ax, 6.5, 5.2, conv_label, test_colour)
        _box(ax, 6.5, 3.1, conv_label, test_colour)
        _box(ax, 5, 0.9, 'concat -> 1x1', width=4)
        for start, end in (((5, 8.5), (2.2, 7.9)), ((5, 8.5), (6.5, 7.9)), ((6.5, 6.5), (6.5, 5.9)),
                           ((6.5, 4.5), (6.5, 3.8)), ((2.2, 6.5), (4.0, 1.6)), ((6.5, 2.4), (5.5, 1.6))):
            _arrow(ax, start, end)
        ax.plot([7.6, 8.9, 8.9, 6.0], [7.2, 7.2, 1.2, 1.2], color='black', lw=0.8)  # h0 to the concat
        ax.plot([7.8, 8.4, 8.4, 6.3], [5.2, 5.2, 1.4, 1.4], color='black', lw=0.8)  # h1 to the concat
        return
    _box(ax, 5, 9.2, 'input')
    _box(ax, 5, 6.6, conv_label, test_colour)
    _box(ax, 5, 4.0, conv_label, test_colour)
    _box(ax, 5, 1.2, 'output' if block == 'plain' else '+ (residual add)')
    for start, end in (((5, 8.5), (5, 7.3)), ((5, 5.9), (5, 4.7)), ((5, 3.3), (5, 1.9))):
        _arrow(ax, start, end)
    if block == 'residual':
        ax.plot([6.9, 8.6, 8.6], [9.2, 9.2, 1.2], color='black', lw=1)
        _arrow(ax, (8.6, 1.2), (6.9, 1.2))


def draw_elan_diagram(out_file: str, elan, title: str) -> None:
    """E-ELAN from a built ``ELAN`` module: branch, chain and transition widths read from its convs;
    ``groups`` > 1 draws the expand (group conv) / shuffle / merge cardinality steps."""
    convs = [(name, m) for name, m in elan.named_modules() if isinstance(m, torch.nn.Conv2d)]
    groups = elan.groups
    fig, ax = plt.subplots(figsize=(7.2, 4.6), dpi=80)
    ax.set_xlim(0, 20)
    ax.set_ylim(0, 12)
    ax.axis('off')
    y = 11
    ax.text(10, y, title, ha='center', fontsize=10)
    step = 9.0 / max(1, len(convs))
    for index, (name, conv) in enumerate(convs):
        y = 9.8 - index * step
        kernel = f'{conv.kernel_size[0]}x{conv.kernel_size[1]}'
        group_text = f', groups={conv.groups}' if conv.groups > 1 else ''
        _box(ax, 10, y, f'{name}: {kernel} conv {conv.in_channels} -> {conv.out_channels}{group_text}',
             '#f7c873' if conv.groups > 1 else '#dddddd', width=12, height=step * 0.7)
    notes = [f'expand cardinality: every conv makes {groups} groups of channels (group conv)',
             f'shuffle cardinality: the concat is ordered group by group ({elan.concat_channels} per group)',
             f'merge cardinality: the {groups} group outputs of the transition are added']
    if groups > 1:
        for index, note in enumerate(notes):
            ax.text(0.2, 0.9 - index * 0.45, note, fontsize=7)
    fig.tight_layout()
    save_small_png(fig, out_file, colours=32)


def draw_compound_scaling(out_file: str, widths: dict, title: str) -> None:
    """Fig. 3 (c) from arch tables: per stage, the block depth and the transition / output widths of
    the base and the compound-scaled model.

    Args:
        widths: ``{model name: [(stage name, num 3x3 convs, concat width, block output width), ...]}``.
    """
    names = list(widths)
    stages = [s[0] for s in widths[names[0]]]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=80)
    positions = np.arange(len(stages))
    bar = 0.8 / len(names)
    for index, name in enumerate(names):
        rows = widths[name]
        axes[0].bar(positions + index * bar, [r[1] for r in rows], bar, label=name)
        axes[1].bar(positions + index * bar, [r[3] for r in rows], bar, label=name)
        for pos, row in zip(positions, rows):
            axes[1].text(pos + index * bar, row[3], str(row[3]), ha='center', va='bottom', fontsize=6)
            axes[0].text(pos + index * bar, row[1], str(row[1]), ha='center', va='bottom', fontsize=7)
    for ax, label in zip(axes, ('3x3 convs per block (depth)', 'block output width (transition)')):
        ax.set_xticks(positions + bar * (len(names) - 1) / 2)
        ax.set_xticklabels(stages, fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend above the bars
        ax.legend(fontsize=7, loc='upper left')
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_small_png(fig, out_file, colours=32)
