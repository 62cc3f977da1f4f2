"""``tools/dist_train.sh CONFIG 2`` on a CPU machine (gloo) does what DDP promises.

yolov7-tiny at 64 px trains 3 iterations in 2 processes (batch 2 each) and, in this process, 3
iterations in 1 process on the combined batch (4) of the same images. Proven:

* the data is sharded: the two processes see disjoint images, each image once in the epoch, and at
  every step their union is the single process's batch;
* after every step both processes hold bit-identical weights (gradients are all-reduced);
* the final weights equal the single process's within fp32 tolerance (summation order differs).

What makes 2 x 2 images equal to 1 x 4 here, and is explained so that the check can be exact:
BatchNorm runs on its running statistics (without SyncBN, which needs GPUs, each process would
normalise over its own 2 images); and the loss is trained on its objectness term, a mean over a
fixed number of grid cells per image, so a process's ``loss * batch`` is a sum over its images and
DDP's average times the world size (``YOLOv7OptimWrapper.scale_loss``) is the sum over all 4. The
box and class terms average over the positives of each process's batch, as the official DDP
training does, so with them 2 x 2 equals 1 x 4 only when both halves have equal positive counts.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import ddp_probe  # noqa: F401  (registers DDPProbeHook here; the 2 processes import it by config)
import mmengine.config.config as mmengine_config_module
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from yolov7_mmdet.datasets.demo import CLASSES, make_demo_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_DIR = Path(__file__).resolve().parent
NUM_IMAGES, SIZE, ITERS = 12, 64, 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def ddp_test_config(data_root: Path, work_dir: Path, *, batch_size: int) -> Config:
    """yolov7-tiny as shipped, with a deterministic 64 px pipeline, one epoch, objectness loss only."""
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'yolov7_tiny.py'))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
        dict(type='YOLOv7Letterbox', scale=(SIZE, SIZE), pad_val=114, allow_scale_up=False),
        dict(type='PackDetInputs'),
    ]
    cfg.train_dataloader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
        collate_fn=dict(type='pseudo_collate'),
        dataset=dict(type='CocoDataset', data_root=str(data_root) + '/',
                     ann_file='annotations/train.json', data_prefix=dict(img='images/train/'),
                     metainfo=dict(classes=CLASSES), filter_cfg=dict(filter_empty_gt=False),
                     pipeline=pipeline))
    cfg.val_dataloader = cfg.test_dataloader = None
    cfg.val_cfg = cfg.test_cfg = cfg.val_evaluator = cfg.test_evaluator = None
    cfg.model.bbox_head.num_classes = len(CLASSES)
    cfg.model.bbox_head.loss.update(img_size=SIZE, box_gain=0., cls_gain=0.)
    cfg.optim_wrapper.update(batch_size_per_gpu=batch_size, nominal_batch_size=4)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=10)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.param_scheduler.update(warmup_epochs=0, min_warmup_iters=0)
    cfg.custom_imports.imports = [*cfg.custom_imports.imports, 'ddp_probe']
    cfg.custom_hooks = [*cfg.custom_hooks,
                        dict(type='DDPProbeHook')]
    cfg.env_cfg.cudnn_benchmark = False
    cfg.sync_bn = 'torch'  # as the variant configs: reverted to BN on CPU processes
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    data_root = root / 'data'
    make_demo_dataset(data_root, num_train=NUM_IMAGES, num_val=1, image_size=SIZE, seed=5)
    ddp_dir = root / 'ddp'
    ddp_dir.mkdir()
    config_file = ddp_dir / 'ddp_tiny.py'
    ddp_test_config(data_root, ddp_dir, batch_size=2).dump(str(config_file))
    env = dict(os.environ, PORT=str(free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(PROBE_DIR),
                                           os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools' / 'dist_train.sh'), str(config_file), '2'],
        cwd=str(root), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    single_dir = root / 'single'
    single_dir.mkdir()
    Runner.from_cfg(ddp_test_config(data_root, single_dir, batch_size=4)).train()
    load = lambda path: torch.load(path, weights_only=False)  # noqa: E731  (our own test files)
    return dict(ranks=[load(ddp_dir / f'probe_{rank}.pt') for rank in (0, 1)],
                single=load(single_dir / 'probe_0.pt'), log=result.stdout + result.stderr)


@pytest.fixture(autouse=True)
def fast_config_text(monkeypatch):
    """Skip yapf formatting of the config (about a second per dump on a busy CPU)."""
    monkeypatch.setattr(mmengine_config_module, 'FormatCode', lambda text, **kwargs: (text, False))


def test_data_is_sharded_and_each_step_sees_the_combined_batch(runs):
    rank0, rank1 = (rank['img_ids'] for rank in runs['ranks'])
    assert len(rank0) == len(rank1) == len(runs['single']['img_ids']) == ITERS
    seen0 = [i for step in rank0 for i in step]
    seen1 = [i for step in rank1 for i in step]
    assert not set(seen0) & set(seen1)
    assert sorted(seen0 + seen1) == list(range(NUM_IMAGES))  # each image once in the epoch
    for step, single_batch in enumerate(runs['single']['img_ids']):
        assert sorted(rank0[step] + rank1[step]) == sorted(single_batch)


def test_both_processes_hold_identical_weights_after_every_step(runs):
    rank0, rank1 = runs['ranks']
    assert rank0['initial_digest'] == rank1['initial_digest'] == runs['single']['initial_digest']
    assert rank0['digests'] == rank1['digests']
    assert len(set(rank0['digests'])) == ITERS  # and the weights did change at every step


def test_two_processes_equal_one_process_on_the_combined_batch(runs):
    """Compared on the updates (final - initial weights), which are small against the weights."""
    initial = runs['single']['initial_state_dict']
    ddp, single = runs['ranks'][0]['state_dict'], runs['single']['state_dict']
    ddp_update = torch.cat([(ddp[name] - value).flatten() for name, value in initial.items()])
    single_update = torch.cat([(single[name] - value).flatten() for name, value in initial.items()])
    assert single_update.abs().max() > 1e-4
    scale = single_update.abs().max().item()
    torch.testing.assert_close(ddp_update, single_update, rtol=0, atol=1e-3 * scale)


def test_gloo_backend_and_one_syncbn_warning(runs):
    log = runs['log']
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert log.count('SyncBatchNorm needs GPUs') == 1
