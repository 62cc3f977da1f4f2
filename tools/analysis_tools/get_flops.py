"""Count the compute and parameters of a detector config, without a dataset.

Usage::

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] [--training-graph] [--show-table]

Uses mmengine's ``get_model_complexity_info`` on one ``(1, 3, H, W)`` input through the model's
``tensor`` mode (backbone, neck and head; no post-processing). mmengine counts one multiply-accumulate
as one "flop", so its number is **MACs**; the YOLOv7 paper (and the official ``model_info``) reports
**FLOPs = 2 x MACs**. Both are printed.

By default the model is switched to its inference graph first (``switch_to_deploy``: implicit
vectors folded, aux head dropped, RepConv merged, BN folded), which is the graph the paper measures for
all models but D6 (whose 806.8 G counts the training graph); ``--training-graph`` skips the switch.
Configs without a ``switch_to_deploy`` (e.g. the backbone-swap detectors) are counted as they are.
Two-stage detectors (Faster R-CNN) predict proposals in ``tensor`` mode, which needs the image's
metadata: the model is counted with that of the zero image, RPN, proposals and RoI head included
(the RoI head's share depends on how many proposals the zero image gets, up to ``max_per_img``).
"""
import argparse
from typing import Dict, Optional, Sequence

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from yolov7_mmdet.models.deploy import switch_to_deploy
from yolov7_mmdet.utils.complexity import network_complexity, unscaled_data_samples


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count MACs / FLOPs and parameters of a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--shape', type=int, nargs=2, default=[640, 640], metavar=('H', 'W'),
                        help='input height and width (default: 640 640)')
    parser.add_argument('--training-graph', action='store_true',
                        help='count the training graph instead of the switch_to_deploy() one')
    parser.add_argument('--show-table', action='store_true', help='print the per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def count_complexity(cfg: Config,
                     *,
                     shape: Sequence[int] = (640, 640),
                     deploy: bool = True,
                     show_table: bool = False) -> Dict[str, object]:
    """Build ``cfg.model`` and count it on one zero image of ``shape`` (H, W).

    Returns:
        dict: ``macs`` and ``flops`` (= 2 x macs) as ints, ``params`` (int, of the counted graph),
        ``deployed`` (whether ``switch_to_deploy`` was applied) and ``table`` (str or None).
    """
    height, width = shape
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    model.eval()
    deployed = deploy and callable(getattr(model, 'switch_to_deploy', None))
    if deployed:
        switch_to_deploy(model)
    divisor = getattr(model.backbone, 'size_divisor', 32)
    if height % divisor or width % divisor:
        raise ValueError(f'--shape {height} {width}: both must be multiples of {divisor}')
    samples = unscaled_data_samples(shape) if isinstance(model, TwoStageDetector) else None
    counts = network_complexity(model, torch.zeros(1, 3, height, width), samples,
                                show_table=show_table)
    return dict(counts, deployed=deployed)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    result = count_complexity(
        cfg, shape=args.shape, deploy=not args.training_graph, show_table=args.show_table)
    if result['table']:
        print(result['table'])
    height, width = args.shape
    graph = 'switch_to_deploy() graph' if result['deployed'] else 'graph as built'
    print(f'Input shape: (1, 3, {height}, {width}); {graph}')
    print(f'MACs (multiply-accumulates, what mmengine counts): {result["macs"] / 1e9:.2f} G')
    print(f'FLOPs (2 x MACs, the unit of the YOLOv7 paper):   {result["flops"] / 1e9:.2f} G')
    print(f'Params: {result["params"]:,} ({result["params"] / 1e6:.2f} M)')


if __name__ == '__main__':
    main()
