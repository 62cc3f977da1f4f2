"""Our schedule + accumulation against a recorded run of the official train.py (warmup phase).

The fixture holds, for every optimizer step of the official run (yolov7-tiny recipe, batch 2, so
``accumulate`` ramps 1 -> 32; 3 epochs x 8 iterations), the iteration and each group's lr, momentum
and weight decay; see tests/fixtures/make_engine_golden.md.
"""
import json
from pathlib import Path

import pytest
from engine_toys import StepRecorder, make_runner

from yolov7_mmdet.engine.hooks import YOLOv7Schedule

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / 'fixtures' /
                     'official_schedule_tiny_b2.json').read_text())
EPOCHS, ITERS_PER_EPOCH, LRF = 3, 8, 0.01


def test_golden_run_shape():
    assert GOLDEN['iterations'] == EPOCHS * ITERS_PER_EPOCH
    assert [step['iteration'] for step in GOLDEN['steps']] == [*range(17), 18, 20, 22]


def test_schedule_reproduces_the_official_steps():
    schedule = YOLOv7Schedule(max_epochs=EPOCHS, iters_per_epoch=ITERS_PER_EPOCH,
                              final_lr_factor=LRF, total_batch_size=2)
    steps = [i for i in range(GOLDEN['iterations']) if i % schedule.accumulate(i) == 0]
    assert steps == [step['iteration'] for step in GOLDEN['steps']]
    for step in GOLDEN['steps']:
        iteration, epoch = step['iteration'], step['iteration'] // ITERS_PER_EPOCH
        lrs = [schedule.lr(iteration, epoch, initial_lr=0.01, is_bias=is_bias)
               for is_bias in (False, False, True)]
        assert lrs == pytest.approx(step['lr'], rel=1e-12, abs=1e-18)
        assert schedule.momentum(iteration, final_momentum=0.937) == pytest.approx(
            step['momentum'][0], rel=1e-12)


def test_runner_steps_like_the_official_run(tmp_path):
    """The real hook + wrapper + constructor, same batch, nominal batch, warmup and epochs."""
    recorder = StepRecorder()
    runner = make_runner(tmp_path, name='golden', max_epochs=EPOCHS, batch_size=2,
                         dataset_length=2 * ITERS_PER_EPOCH, nominal_batch_size=64,
                         min_warmup_iters=1000, final_lr_factor=LRF, extra_hooks=[recorder])
    runner.train()
    assert len(recorder.steps) == len(GOLDEN['steps'])
    for ours, official in zip(recorder.steps, GOLDEN['steps']):
        assert ours['iteration'] == official['iteration']
        for key in ('lr', 'momentum', 'weight_decay'):
            assert ours[key] == pytest.approx(official[key], rel=1e-12, abs=1e-18), key
