"""Matplotlib drawing of label assignments (``assignment.py``) and small PNG output for the docs."""
from __future__ import annotations

import io
from collections import defaultdict
from typing import Optional, Sequence

import matplotlib

matplotlib.use('Agg')  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patches  # noqa: E402
from PIL import Image  # noqa: E402

from .assignment import (CandidateSlots, HeadAssignment, ImageAssignment, candidate_cells,  # noqa: E402
                         positive_cells)

REGION_COLOURS = {'fine': '#1f9bd6', 'coarse': '#f08c00'}
HEAD_COLOURS = {'lead': '#e0301e', 'aux': '#b23ad8'}
GT_COLOUR = '#20e020'


def save_small_png(fig, out_file: str, *, colours: int = 96) -> None:
    """Save a figure as a palette PNG (``colours`` colours): figures with photos stay small."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png')
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert('RGB')
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(out_file, optimize=True)


def _crop(cells: Sequence[tuple], stride: float, shape: tuple) -> tuple:
    """(x0, x1, y0, y1) pixels around the given (anchor, x, y) cells, one cell of margin."""
    height, width = shape
    if not cells:
        return 0, width, 0, height
    xs = [c[1] for c in cells]
    ys = [c[2] for c in cells]
    return (max(0, (min(xs) - 1) * stride), min(width, (max(xs) + 2) * stride),
            max(0, (min(ys) - 1) * stride), min(height, (max(ys) + 2) * stride))


def _draw_cells(ax, cells, stride: float, colour: str, **style) -> None:
    for x, y in sorted({(c[1], c[2]) for c in cells}):
        ax.add_patch(patches.Rectangle((x * stride, y * stride), stride, stride, fill=False,
                                       edgecolor=colour, **style))


def _draw_positives(ax, positives, stride: float, colour: str, fontsize: float) -> None:
    """Fill each positive cell; write ``a<anchor> <target>`` (and the GT when several) inside."""
    by_cell = defaultdict(list)
    for gt, anchor, x, y, target in positives:
        by_cell[(x, y)].append((gt, anchor, target))
    for (x, y), entries in by_cell.items():
        ax.add_patch(patches.Rectangle((x * stride, y * stride), stride, stride, facecolor=colour,
                                       alpha=0.35, edgecolor=colour, linewidth=1.5))
        several_gts = len({e[0] for e in entries}) > 1
        text = '\n'.join((f'g{gt} ' if several_gts else '') + f'a{anchor} {target:.2f}'
                         for gt, anchor, target in sorted(entries))
        ax.text((x + 0.5) * stride, (y + 0.5) * stride, text, ha='center', va='center',
                fontsize=fontsize, color='white', fontweight='bold')


def _draw_gts(ax, assignment: ImageAssignment, class_names: Optional[Sequence[str]]) -> None:
    for gt, (box, label, valid) in enumerate(zip(assignment.gt_bboxes.tolist(),
                                                 assignment.gt_labels.tolist(),
                                                 assignment.gt_valid.tolist())):
        if not valid:
            continue
        x1, y1, x2, y2 = box
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=GT_COLOUR,
                                       linewidth=2))
        ax.plot([(x1 + x2) / 2], [(y1 + y2) / 2], marker='x', color=GT_COLOUR, markersize=8, mew=2)
        name = class_names[label] if class_names is not None and label < len(class_names) else label
        ax.text(x1, y1, f'g{gt} {name}', color='black', fontsize=8, va='bottom',
                bbox=dict(facecolor=GT_COLOUR, edgecolor='none', pad=1))


def _panel(ax, image: np.ndarray, assignment: ImageAssignment, level: int, candidates: CandidateSlots,
           region: str, head: Optional[HeadAssignment], class_names) -> None:
    stride = float(assignment.strides[level])
    num_gts = assignment.gt_bboxes.shape[0]
    cells = [c for gt in range(num_gts) for c in candidate_cells(candidates, level, gt)]
    positives = positive_cells(head, level) if head is not None else []
    x0, x1, y0, y1 = _crop(cells + [(0, p[2], p[3]) for p in positives], stride, image.shape[:2])
    ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0))
    for line in np.arange(0, image.shape[1] + 1, stride):
        ax.axvline(line, color='white', linewidth=0.4, alpha=0.5)
    for line in np.arange(0, image.shape[0] + 1, stride):
        ax.axhline(line, color='white', linewidth=0.4, alpha=0.5)
    _draw_gts(ax, assignment, class_names)
    _draw_cells(ax, cells, stride, REGION_COLOURS[region], linewidth=2, linestyle='--')
    cell_px = 340 * stride / max(x1 - x0, y1 - y0)  # display size of a cell, about 340 px per panel
    if head is not None:
        _draw_positives(ax, positives, stride, HEAD_COLOURS[head.name], fontsize=max(5, min(9, cell_px / 6)))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_xticks([])
    ax.set_yticks([])
    what = (f'{head.name}: {region} candidates, {len(positives)} positives' if head is not None
            else f'{region} candidates (no aux head: not trained)')
    ax.set_title(f'P{int(np.log2(stride))} (stride {stride:.0f}) - {what}', fontsize=9)


def draw_assignment(image: np.ndarray, assignment: ImageAssignment, out_file: str, *,
                    class_names: Optional[Sequence[str]] = None, title: str = '') -> None:
    """One row per level: the lead head's fine candidates and positives, then the aux head's coarse
    ones (or, without an aux head, the coarse candidates for comparison).

    Dashed cells are candidates (blue fine, orange coarse); filled cells are positives (red lead,
    purple aux), each labelled ``a<anchor> <objectness target>``; green: GTs and their centres.
    Each panel is cropped to its level's candidates.

    Args:
        image: (H, W, 3) RGB uint8, the network input (after resize and letterbox).
        assignment: from :func:`~yolov7_mmdet.visualization.assign_image`.
        out_file: PNG path.
        class_names: names for the GT labels.
        title: figure title.
    """
    num_levels = len(assignment.level_shapes)
    fig, axes = plt.subplots(num_levels, 2, figsize=(10, 5 * num_levels), dpi=72, squeeze=False)
    lead = assignment.heads[0]
    aux = assignment.heads[1] if len(assignment.heads) > 1 else None
    for level in range(num_levels):
        _panel(axes[level, 0], image, assignment, level, lead.candidates, lead.region, lead, class_names)
        _panel(axes[level, 1], image, assignment, level, assignment.coarse_candidates, 'coarse', aux,
               class_names)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_small_png(fig, out_file)
