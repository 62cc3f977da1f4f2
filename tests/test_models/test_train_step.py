"""The training step's speed paths: no host synchronisation, mixed precision, the sparse loss pieces,
channels-last and ``torch.compile`` options (``benchmarks/bench_train_step.py`` measures the speed)."""
import importlib.util
from pathlib import Path

import pytest
import torch
from mmengine.structures import InstanceData

from host_sync_guard import HostSyncError, forbid_host_sync
from yolov7_builders import build_model

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('bench_train_step',
                                               REPO / 'benchmarks' / 'bench_train_step.py')
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def step_inputs(device='cpu', size=64, batch=2, num_gts=4):
    """A synthetic batch; the second image also has an ignore (crowd) region."""
    samples = bench.random_gt_samples(batch, num_gts, size, 80, device=torch.device(device))
    for i, sample in enumerate(samples):
        boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0]] * i, device=device).view(-1, 4)
        sample.ignored_instances = InstanceData(
            bboxes=boxes, labels=torch.zeros(i, dtype=torch.long, device=device))
    inputs = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    return inputs, samples


# ------------------------------------------------------------------------------------ host sync
@pytest.mark.parametrize('op', ['item', 'if', 'cpu', 'tolist', 'nonzero', 'mask', 'unique',
                                'repeat_interleave'])
def test_guard_catches_every_kind_of_host_sync(op):
    x = torch.randn(6)
    ops = {'item': lambda: x.sum().item(), 'if': lambda: 1 if x[0] > 0 else 0, 'cpu': x.cpu,
           'tolist': x.tolist, 'nonzero': x.nonzero, 'mask': lambda: x[x > 0], 'unique': x.unique,
           'repeat_interleave': lambda: torch.tensor([1, 2]).repeat_interleave(torch.tensor([2, 1]))}
    with pytest.raises(HostSyncError), forbid_host_sync():
        ops[op]()
    with forbid_host_sync():  # fixed-shape work passes
        torch.where(x > 0, x, 0.0).topk(3)


def test_cpu_training_step_has_no_host_sync():
    """Forward, loss (assignment, ignore regions), backward, SGD and EMA: nothing reads the device."""
    model = build_model('tiny').train()
    step = bench.TrainStep(model)
    inputs, samples = step_inputs()
    step(inputs, samples)  # the first EMA update reads the step count once
    with forbid_host_sync():
        losses = step(inputs, samples)
    assert set(losses) == {'loss_box', 'loss_obj', 'loss_cls'} and step.ema._host_steps() == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (no GPU on this machine)')
def test_cuda_training_step_has_no_host_sync():
    """The same step on the GPU under ``torch.cuda.set_sync_debug_mode('error')``."""
    device = torch.device('cuda')
    model = build_model('tiny').to(device).train()
    step = bench.TrainStep(model)
    inputs, samples = step_inputs('cuda')
    step(inputs, samples)  # warm-up: lazy CUDA initialisation, the EMA's one read of its count
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        losses = step(inputs, samples)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert all(torch.isfinite(v).all() for v in losses.values())
