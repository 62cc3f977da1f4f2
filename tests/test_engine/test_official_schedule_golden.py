"""Our schedule + accumulation against recorded runs of the official train.py.

Each fixture holds, for every optimizer step of an official run (yolov7-tiny recipe, batch 2, so
``accumulate`` ramps 1 -> 32 over the 1000 warmup iterations), the iteration and each group's lr,
momentum and weight decay: 3 epochs x 8 iterations (warmup only) and 140 epochs x 8 iterations
(through the end of warmup into the cosine decay). See tests/fixtures/make_engine_golden.md.
"""
import json
from pathlib import Path

import pytest
from engine_toys import StepRecorder, make_runner

from yolov7_mmdet.engine.hooks import YOLOv7Schedule

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'
ITERS_PER_EPOCH, LRF = 8, 0.01
GOLDEN_RUNS = {  # fixture -> epochs
    'official_schedule_tiny_b2.json': 3,
    'official_schedule_tiny_b2_140e.json': 140,
}


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_golden_runs_cover_warmup_and_decay():
    short, long = (load(name) for name in GOLDEN_RUNS)
    assert [step['iteration'] for step in short['steps']] == [*range(17), 18, 20, 22]
    assert long['iterations'] == 140 * ITERS_PER_EPOCH
    after_warmup = [step for step in long['steps'] if step['iteration'] > 1000]
    assert [step['iteration'] for step in after_warmup] == [1024, 1056, 1088]
    assert all(step['momentum'] == [0.937] * 3 for step in after_warmup)


@pytest.mark.parametrize('name, epochs', GOLDEN_RUNS.items())
def test_schedule_reproduces_the_official_steps(name, epochs):
    golden = load(name)
    schedule = YOLOv7Schedule(max_epochs=epochs, iters_per_epoch=ITERS_PER_EPOCH,
                              final_lr_factor=LRF, total_batch_size=2)
    steps = [i for i in range(golden['iterations']) if i % schedule.accumulate(i) == 0]
    assert steps == [step['iteration'] for step in golden['steps']]
    for step in golden['steps']:
        iteration, epoch = step['iteration'], step['iteration'] // ITERS_PER_EPOCH
        lrs = [schedule.lr(iteration, epoch, initial_lr=0.01, is_bias=is_bias)
               for is_bias in (False, False, True)]
        assert lrs == pytest.approx(step['lr'], rel=1e-12, abs=1e-18)
        assert schedule.momentum(iteration, final_momentum=0.937) == pytest.approx(
            step['momentum'][0], rel=1e-12)


def test_runner_steps_like_the_official_run(tmp_path):
    """The real hook + wrapper + constructor, same batch, nominal batch, warmup and epochs."""
    golden = load('official_schedule_tiny_b2.json')
    recorder = StepRecorder()
    runner = make_runner(tmp_path, name='golden', max_epochs=3, batch_size=2,
                         dataset_length=2 * ITERS_PER_EPOCH, nominal_batch_size=64,
                         min_warmup_iters=1000, final_lr_factor=LRF, extra_hooks=[recorder])
    runner.train()
    assert len(recorder.steps) == len(golden['steps'])
    for ours, official in zip(recorder.steps, golden['steps']):
        assert ours['iteration'] == official['iteration']
        for key in ('lr', 'momentum', 'weight_decay'):
            assert ours[key] == pytest.approx(official[key], rel=1e-12, abs=1e-18), key
