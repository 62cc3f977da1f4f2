"""Draw the concept figures of ``docs/`` from the project's own code.

    python tools/analysis_tools/draw_doc_figures.py [--out docs/figures]

Writes (each a small palette PNG):

* ``label_assignment_worked_example.png``: the fine / coarse candidate cells of the worked example of
  ``docs/label_assignment.md``, computed by ``YOLOv7CandidateRegion``;
* ``label_assignment_decoder_constraint.png``: for each candidate cell, the region its decoder can
  reach (-0.5 .. 1.5 cells) and whether the GT centre lies inside;
* ``e_elan.png``: the convs of an E-ELAN block of the built YOLOv7-E6E backbone, widths and groups read
  from the modules;
* ``compound_scaling.png``: depth and output width per backbone stage, read from the built YOLOv7-L
  and YOLOv7-X backbones (X is L compound-scaled, ``yolov7_mmdet/models/scaling.py``).

The real-image assignment figures come from ``browse_assignment.py`` and the RepConv figure from
``rep_conv_ablation.py``; ``docs/label_assignment.md`` and ``docs/rep_conv.md`` give those commands.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import yolov7_mmdet  # noqa: E402,F401
from yolov7_mmdet.models.backbones import YOLOv7Backbone  # noqa: E402
from yolov7_mmdet.models.layers import ELAN  # noqa: E402
from yolov7_mmdet.visualization import doc_figures  # noqa: E402


def build_backbone(arch: str) -> YOLOv7Backbone:
    """The backbone on the meta device: modules and widths without allocating weights."""
    with torch.device('meta'):
        return YOLOv7Backbone(arch=arch)


def stage_table(arch: str) -> list:
    """(stage, 3x3 convs, concat width, output width) of each ELAN of the built backbone."""
    elans = [m for m in build_backbone(arch).modules() if isinstance(m, ELAN)]
    return [(f'stage {i + 1}', len(m.chain), m.concat_channels, m.out_channels) for i, m in enumerate(elans)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Draw the concept figures of docs/')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'figures'))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    doc_figures.draw_worked_example(osp.join(args.out, 'label_assignment_worked_example.png'))
    doc_figures.draw_decoder_constraint(osp.join(args.out, 'label_assignment_decoder_constraint.png'))
    e_elan = next(m for m in build_backbone('e6e').modules() if isinstance(m, ELAN) and m.groups > 1)
    doc_figures.draw_elan_diagram(osp.join(args.out, 'e_elan.png'), e_elan,
                                  'E-ELAN: first block of the YOLOv7-E6E backbone (built modules)')
    doc_figures.draw_compound_scaling(
        osp.join(args.out, 'compound_scaling.png'),
        {'YOLOv7-L': stage_table('l'), 'YOLOv7-X (L compound-scaled)': stage_table('x')},
        'Compound scaling of a concatenation-based backbone: depth x1.5 widens every concat, '
        'so the transitions widen x1.25')
    for name in sorted(os.listdir(args.out)):
        print(f'{osp.join(args.out, name)}: {osp.getsize(osp.join(args.out, name)) // 1024} KB')


if __name__ == '__main__':
    main()
