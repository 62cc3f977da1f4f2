"""``AutoAnchorHook``: the official auto-anchor check when training starts.

Before the first iteration (not on ``--resume``: the checkpoint's anchors are used), the best
possible recall of the head's anchors on the training boxes at the training size is logged; below
0.98 the anchors are re-fitted by k-means and a genetic search and written into the head when that
raises the recall (:mod:`yolov7_mmdet.datasets.anchor_fitting`). The head's ``anchors``
buffer is saved in every checkpoint, so ``tools/test.py``, export and resume use the fitted ones.
On in the custom-dataset configs (``auto_anchor = True``), off in the COCO configs (the anchors
were made for COCO).
"""
from __future__ import annotations

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS

from ...datasets.anchor_fitting import MIN_BPR, dataset_box_sizes, fit_anchors


@HOOKS.register_module()
class AutoAnchorHook(Hook):
    """Check the anchors on the training boxes and re-fit them when they fit badly.

    Runs before ``YOLOv7EMAHook`` (priority 49) copies the model into the EMA when training starts.

    Args:
        anchor_t (float): Size-ratio limit of the assigner. Defaults to 4.0 (official).
        min_bpr (float): Re-fit below this best possible recall. Defaults to 0.98 (official).
        generations (int): Steps of the genetic search. Defaults to 1000 (official).
        seed (int): Seed of the search (every rank finds the same anchors). Defaults to 0.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, *, anchor_t: float = 4.0, min_bpr: float = MIN_BPR, generations: int = 1000,
                 seed: int = 0) -> None:
        self.anchor_t = anchor_t
        self.min_bpr = min_bpr
        self.generations = generations
        self.seed = seed

    def before_train(self, runner) -> None:
        if runner.iter > 0:
            runner.logger.info('AutoAnchorHook: resumed training keeps the checkpoint\'s anchors')
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = model.bbox_head
        img_size = int(head.loss_module.img_size)
        box_sizes, long_sides = dataset_box_sizes(runner.train_dataloader.dataset)
        fit = fit_anchors(head.anchors.detach().cpu().numpy(), box_sizes, long_sides,
                          img_size=img_size, anchor_t=self.anchor_t, min_bpr=self.min_bpr,
                          generations=self.generations, seed=self.seed)
        message = (f'AutoAnchorHook: {len(box_sizes)} training boxes at {img_size} px, anchor_t '
                   f'{self.anchor_t}: best possible recall {fit.bpr_before:.4f}')
        if fit.refitted:
            head.set_anchors(torch.from_numpy(fit.anchors).view_as(head.anchors))
            anchors = np.round(fit.anchors).astype(int).tolist()
            message += (f' -> {fit.bpr_after:.4f} with re-fitted anchors {anchors} '
                        '(saved in the checkpoints)')
        elif fit.bpr_before < self.min_bpr:
            message += ' (re-fitting found nothing better; anchors kept)'
        else:
            message += ' (anchors kept)'
        print_log(message, logger='current')
