"""The official gradient accumulation: step at iteration i when i % accumulate == 0, sum the grads."""
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from yolov7_mmdet.engine.optimizers import YOLOv7OptimWrapper

# accumulate per iteration: a warmup-like ramp 1 -> 4, then constant (steps at 0,1,2,3,4,6,8,12,16)
ACCUMULATES = [1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]


def make_model():
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def batch(iteration):
    generator = torch.Generator().manual_seed(iteration)
    return torch.randn(4, 3, generator=generator), torch.randn(4, 1, generator=generator)


def loss_of(model, iteration):
    inputs, targets = batch(iteration)
    return ((model(inputs) - targets) ** 2).sum()  # summed over the batch, like the YOLOv7 loss


def official_loop(model, optimizer, accumulates):
    """The official ``train.py`` inner loop (no AMP, one GPU), written out from its description."""
    stepped = []
    for iteration, accumulate in enumerate(accumulates):
        loss_of(model, iteration).backward()
        if iteration % accumulate == 0:
            optimizer.step()
            optimizer.zero_grad()
            stepped.append(iteration)
    return stepped


def wrapper_loop(model, wrapper, accumulates, *, start=0):
    stepped = []
    wrapper.initialize_count_status(model, start, len(accumulates))
    for iteration in range(start, len(accumulates)):
        wrapper.accumulate = accumulates[iteration]
        with wrapper.optim_context(model):
            loss = loss_of(model, iteration)
        wrapper.update_params(loss)
        if wrapper.should_update():
            stepped.append(iteration)
    return stepped


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)


def test_steps_and_parameters_match_the_official_loop():
    reference = make_model()
    official_steps = official_loop(reference, sgd(reference), ACCUMULATES)
    assert official_steps == [0, 1, 2, 3, 4, 6, 8, 12, 16]

    model = make_model()
    wrapper = YOLOv7OptimWrapper(optimizer=sgd(model), total_batch_size=16)
    assert wrapper_loop(model, wrapper, ACCUMULATES) == official_steps
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_gradients_are_summed_not_averaged():
    model = make_model()
    wrapper = YOLOv7OptimWrapper(optimizer=sgd(model), total_batch_size=16)  # accumulate 4
    wrapper.initialize_count_status(model, 1, 100)  # iterations 1, 2, 3 accumulate without a step
    for iteration in (1, 2, 3):
        wrapper.update_params(loss_of(model, iteration))
    assert not wrapper.should_update()
    expected = make_model()
    sum(loss_of(expected, iteration) for iteration in (1, 2, 3)).backward()
    torch.testing.assert_close(model.weight.grad, expected.weight.grad)


def test_loss_is_multiplied_by_the_world_size(monkeypatch):
    import yolov7_mmdet.engine.optimizers.yolov7_optim_wrapper as wrapper_module
    monkeypatch.setattr(wrapper_module, 'get_world_size', lambda: 8)
    wrapper = YOLOv7OptimWrapper(optimizer=sgd(make_model()), total_batch_size=128)
    assert wrapper.scale_loss(torch.tensor(1.5)).item() == 12.


def test_gradient_sync_only_on_stepping_iterations():
    """DDP's ``no_sync`` is entered exactly on the iterations that do not step."""

    class FakeDDP(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = make_model()
            self.unsynced = []
            self.iteration = 0

        def forward(self, inputs):
            return self.module(inputs)

        @contextmanager
        def no_sync(self):
            self.unsynced.append(self.iteration)
            yield

    model = FakeDDP()
    wrapper = YOLOv7OptimWrapper(optimizer=sgd(model), total_batch_size=16)
    wrapper.initialize_count_status(model, 0, len(ACCUMULATES))
    for iteration, accumulate in enumerate(ACCUMULATES):
        model.iteration = iteration
        wrapper.accumulate = accumulate
        with wrapper.optim_context(model):
            loss = loss_of(model, iteration)
        wrapper.update_params(loss)
    assert model.unsynced == [i for i, a in enumerate(ACCUMULATES) if i % a != 0]


def test_resuming_keeps_the_global_step_pattern():
    model = make_model()
    wrapper = YOLOv7OptimWrapper(optimizer=sgd(model), total_batch_size=16)
    assert wrapper_loop(model, wrapper, ACCUMULATES, start=9) == [12, 16]  # no extra final step


def test_accumulate_must_be_positive():
    wrapper = YOLOv7OptimWrapper(optimizer=sgd(make_model()), total_batch_size=16)
    with pytest.raises(ValueError, match='accumulate'):
        wrapper.accumulate = 0


def test_amp_wrapper_trains_with_the_official_step_pattern(tmp_path, monkeypatch):
    """``--amp``'s wrapper type inside a real Runner (CPU: the loss scaler disables itself)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
    from engine_toys import StepRecorder, make_runner

    from yolov7_mmdet.engine.optimizers import YOLOv7AmpOptimWrapper

    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)
    recorder = StepRecorder()
    runner = make_runner(tmp_path, name='amp', max_epochs=2, optim_type='AmpOptimWrapper',
                         extra_hooks=[recorder])
    runner.train()
    assert type(runner.optim_wrapper) is YOLOv7AmpOptimWrapper
    assert [row['stepped'] for row in recorder.rows] == [
        row['iteration'] % row['accumulate'] == 0 for row in recorder.rows]
