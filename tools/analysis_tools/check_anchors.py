"""Print how well a config's anchors fit its training boxes, and the anchors auto-anchor would use.

    python tools/analysis_tools/check_anchors.py CONFIG [--checkpoint CKPT] [--anchor-t 4.0]

The best possible recall (BPR: the fraction of training boxes, at the training size, that some
anchor can take within the ``anchor_t`` size ratio) of the config's anchors (or a checkpoint's,
e.g. after ``AutoAnchorHook`` re-fitted them), and, when it is under 0.98, the re-fitted anchors
and their BPR: what ``AutoAnchorHook`` does when training starts. Reads the annotations only.
"""
import argparse

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import yolov7_mmdet  # noqa: F401  (registers the plugin)
from mmdet.registry import DATASETS
from yolov7_mmdet.datasets.anchor_fitting import MIN_BPR, dataset_box_sizes, fit_anchors


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help="use this checkpoint's anchors (bbox_head.anchors)")
    parser.add_argument('--anchor-t', type=float, default=4.0, help='size-ratio limit (official 4.0)')
    parser.add_argument('--generations', type=int, default=1000, help='genetic search steps')
    return parser.parse_args(argv)


def config_anchors(cfg: Config, checkpoint: str = None) -> np.ndarray:
    """``(L, A, 2)`` anchors of the config's head, or of the checkpoint when given."""
    if checkpoint:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
        anchors = state.get('state_dict', state).get('bbox_head.anchors')
        if anchors is None:
            raise SystemExit(f'{checkpoint} holds no bbox_head.anchors (it uses the config\'s)')
        return anchors.double().numpy()
    return np.asarray(cfg.model.bbox_head.anchors, dtype=np.float64)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    img_size = int(cfg.model.bbox_head.get('loss', {}).get('img_size', 640))
    anchors = config_anchors(cfg, args.checkpoint)
    box_sizes, long_sides = dataset_box_sizes(DATASETS.build(cfg.train_dataloader.dataset))
    fit = fit_anchors(anchors.reshape(-1, 2), box_sizes, long_sides, img_size=img_size,
                      anchor_t=args.anchor_t, generations=args.generations)
    print(f'{len(box_sizes)} training boxes at {img_size} px, anchor_t {args.anchor_t}')
    print(f'anchors {np.round(anchors).astype(int).tolist()}: best possible recall '
          f'{fit.bpr_before:.4f}')
    if fit.refitted:
        refitted = np.round(fit.anchors.reshape(anchors.shape)).astype(int).tolist()
        print(f're-fitted anchors {refitted}: best possible recall {fit.bpr_after:.4f}')
    elif fit.bpr_before < MIN_BPR:
        print('re-fitting found no anchors with a higher recall')
    else:
        print(f'at least {MIN_BPR}: auto-anchor keeps these anchors')
    return fit


if __name__ == '__main__':
    main()
