"""Auto-anchor (issue #10): best possible recall, re-fitting, and the anchors' way into checkpoints.

The metric is checked on a hand-computed case; re-fitting on boxes the COCO anchors cannot take
(very thin ones) must lift BPR above 0.98, COCO-like boxes must leave the anchors alone, and BPR
never drops. End to end: a config from ``create_config.py`` trains one epoch on a thin-box
dataset; the saved checkpoint holds the re-fitted anchors and ``tools/test.py`` evaluates with them.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import mmengine.config.config as mmengine_config_module
import numpy as np
import pytest
import torch
from PIL import Image

from yolov7_mmdet.datasets.anchor_fitting import best_possible_recall, fit_anchors

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_ANCHORS = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119],
                         [116, 90], [156, 198], [373, 326]], dtype=np.float64)


@pytest.fixture
def unformatted_config_text(monkeypatch):
    """Skip mmengine's yapf formatting of the config (seconds per runner and checkpoint)."""
    monkeypatch.setattr(mmengine_config_module, 'FormatCode', lambda text, **kwargs: (text, False))


def load_tool(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_best_possible_recall_by_hand():
    boxes = np.array([[10, 10], [39, 10], [45, 10], [10, 2]], dtype=np.float64)
    # against a 10 x 10 anchor the worst side ratios are 1, 1/3.9, 1/4.5, 1/5: two within 4
    assert best_possible_recall(np.array([[10., 10.]]), boxes, anchor_t=4.0) == 0.5
    assert best_possible_recall(np.array([[10., 10.], [40., 8.]]), boxes, anchor_t=4.0) == 0.75


def thin_boxes(count: int, rng) -> np.ndarray:
    return np.stack([rng.uniform(3, 8, count), rng.uniform(150, 400, count)], axis=1)


def test_thin_boxes_are_refitted_above_098():
    boxes = thin_boxes(400, np.random.default_rng(0))
    fit = fit_anchors(TINY_ANCHORS, boxes, np.full(len(boxes), 640.), img_size=640)
    assert fit.bpr_before < 0.1 and fit.bpr_after > 0.98 and fit.refitted
    assert fit.anchors.shape == (9, 2)
    np.testing.assert_array_equal(np.argsort(fit.anchors.prod(axis=1)), np.arange(9))  # by area


def test_coco_like_boxes_leave_the_anchors_alone():
    rng = np.random.default_rng(1)
    boxes = TINY_ANCHORS[rng.integers(0, 9, 500)] * rng.uniform(0.5, 2.0, (500, 2))
    fit = fit_anchors(TINY_ANCHORS, boxes, np.full(500, 640.), img_size=640)
    assert fit.bpr_before >= 0.98 and not fit.refitted
    np.testing.assert_array_equal(fit.anchors, TINY_ANCHORS)


@pytest.mark.parametrize('seed', range(4))
def test_bpr_never_drops(seed):
    """Mixed boxes where no 9 anchors reach 0.98: whatever the search finds, BPR does not fall."""
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([thin_boxes(100, rng), thin_boxes(100, rng)[:, ::-1],
                            rng.uniform(2, 600, (100, 2))])
    fit = fit_anchors(TINY_ANCHORS, boxes, np.full(len(boxes), 640.), img_size=640,
                      generations=50, seed=seed)
    assert fit.bpr_after >= fit.bpr_before
    assert fit.refitted == (fit.bpr_after > fit.bpr_before)


def write_thin_box_dataset(root: Path, *, images: int = 4) -> Path:
    """``images`` 64 x 64 grey images with three 2 px wide, 40-48 px high white boxes each (no
    COCO anchor is within 4x of a width of 2 px), as COCO JSON."""
    (root / 'img').mkdir(parents=True)
    coco = dict(info=dict(image_root=str(root / 'img')), images=[], annotations=[],
                categories=[dict(id=1, name='needle')])
    for image_id in range(1, images + 1):
        pixels = np.full((64, 64, 3), 60, dtype=np.uint8)
        for column in range(3):
            x, height = 8 + 20 * column + image_id, 40 + 4 * column
            pixels[12:12 + height, x:x + 2] = 255
            coco['annotations'].append(dict(id=len(coco['annotations']) + 1, image_id=image_id,
                                            category_id=1, bbox=[x, 12, 2, height],
                                            area=2 * height, iscrowd=0))
        Image.fromarray(pixels).save(root / 'img' / f'{image_id}.png')
        coco['images'].append(dict(id=image_id, file_name=f'{image_id}.png', width=64, height=64))
    (root / 'thin.json').write_text(json.dumps(coco))
    return root / 'thin.json'


def test_refitted_anchors_reach_the_checkpoint_and_tools_test(tmp_path, unformatted_config_text):
    ann = write_thin_box_dataset(tmp_path / 'data')
    config = load_tool('tools/misc/create_config.py').main([
        '--data', str(ann), str(ann), '--model', 'tiny', '--size', '64', '--batch', '2',
        '--epochs', '1', '--out', str(tmp_path / 'thin.py')])
    no_workers = [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                                   'test_dataloader')
                  for key in ('num_workers=0', 'persistent_workers=False')]
    load_tool('tools/train.py').main([str(config), '--work-dir', str(tmp_path / 'work'),
                                      '--cfg-options', *no_workers])

    saved = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu')
    anchors = saved['state_dict']['bbox_head.anchors']  # the EMA model: evaluation's weights
    torch.testing.assert_close(saved['ema_state_dict']['module.bbox_head.anchors'], anchors)
    boxes = np.array([[2., 40.], [2., 44.], [2., 48.]])
    assert best_possible_recall(TINY_ANCHORS, boxes, anchor_t=4.0) == 0.0
    assert best_possible_recall(anchors.view(-1, 2).double().numpy(), boxes, anchor_t=4.0) == 1.0

    test_tool = load_tool('tools/test.py')
    runners = []
    build_runner = test_tool.build_runner
    test_tool.build_runner = lambda cfg: runners.append(build_runner(cfg)) or runners[-1]
    test_tool.main([str(config), str(tmp_path / 'work' / 'epoch_1.pth'),
                    '--work-dir', str(tmp_path / 'test'), '--cfg-options', *no_workers])
    torch.testing.assert_close(runners[0].model.bbox_head.anchors, anchors)

    check_anchors = load_tool('tools/analysis_tools/check_anchors.py')
    assert check_anchors.main([str(config), '--generations', '50']).bpr_before == 0.0
    from_checkpoint = check_anchors.main([str(config), '--generations', '50',
                                          '--checkpoint', str(tmp_path / 'work' / 'epoch_1.pth')])
    assert from_checkpoint.bpr_before == 1.0 and not from_checkpoint.refitted


def test_resumed_training_keeps_the_checkpoint_anchors():
    """On --resume the runner has loaded the checkpoint (anchors included) before ``before_train``;
    the hook must neither read the data nor touch the anchors (the fake runner has neither)."""
    from types import SimpleNamespace
    from unittest import mock

    from yolov7_mmdet.engine.hooks import AutoAnchorHook
    runner = SimpleNamespace(iter=37, logger=mock.Mock())
    AutoAnchorHook().before_train(runner)
    assert 'keeps the checkpoint' in runner.logger.info.call_args.args[0]
