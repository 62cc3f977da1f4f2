"""The training step's speed paths: no host synchronisation, mixed precision, the sparse loss pieces,
channels-last and ``torch.compile`` options (``benchmarks/bench_train_step.py`` measures the speed)."""
import copy
import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.structures import InstanceData

from host_sync_guard import HostSyncError, forbid_host_sync
from yolov7_builders import build_model
from yolov7_mmdet.models.losses.slot_gather import GatherSlotsAndObjectness

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


# ---------------------------------------------------------------------------------- mixed precision
def low_precision_problem(dtype):
    """Fixed inputs: maps rounded to ``dtype`` once (what the head emits under autocast)."""
    prob = bench.assigner_bench.random_problem(2, 6, image_shape=(64, 96), num_classes=3, seed=1)
    lead = [p.to(dtype) for p in prob.pop('preds')]
    aux = [(p * 0.5).to(dtype) for p in lead]
    return lead, aux, prob


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_amp_positives_and_losses_equal_fp32_on_the_same_values(dtype):
    lead, aux, prob = low_precision_problem(dtype)
    lead = [p.requires_grad_() for p in lead]
    lead32 = [p.detach().float().requires_grad_() for p in lead]
    aux32 = [p.float() for p in aux]
    loss = MODELS.build(dict(type='YOLOv7Loss', num_classes=3, img_size=64))
    gts = {k: v for k, v in prob.items() if k != 'batch_input_shape'}
    with torch.autocast('cpu', dtype=dtype):
        out = loss(lead, aux, **prob)
        fine, coarse = loss.assigner.assign(lead, **gts), loss.aux_assigner.assign(lead, **gts)
    out32 = loss(lead32, aux32, **prob)
    for amp_set, fp32_set in ((fine, loss.assigner.assign(lead32, **gts)),
                              (coarse, loss.aux_assigner.assign(lead32, **gts))):
        assert amp_set.pos_mask.any()
        assert torch.equal(amp_set.pos_mask, fp32_set.pos_mask)
        assert torch.equal(amp_set.gt_inds[amp_set.pos_mask], fp32_set.gt_inds[fp32_set.pos_mask])
    for key, value in out.items():  # computed in fp32 from the same values: the same losses
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, out32[key], rtol=1e-6, atol=1e-7, msg=key)
    sum(out.values()).backward()
    sum(out32.values()).backward()
    assert lead[0].grad.dtype == dtype
    torch.testing.assert_close(lead[0].grad.float(), lead32[0].grad.to(dtype).float())


def test_bf16_autocast_training_step_keeps_the_loss_in_fp32():
    model = build_model('tiny').train()
    seen = {}
    model.neck.register_forward_hook(lambda module, args, outputs: seen.__setitem__('neck', outputs))
    step = bench.TrainStep(model, amp=torch.bfloat16)
    losses = step(*step_inputs())
    assert seen['neck'][0].dtype == torch.bfloat16  # the network ran in bf16 ...
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())  # ... the loss not
    assert all(torch.isfinite(p).all() for p in model.parameters())  # after the SGD step


# ------------------------------------------------------------------------------ sparse loss pieces
def test_gather_slots_and_objectness_gradient_equals_plain_indexing():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(2, 3 * 7, 4, 5, generator=gen, requires_grad=True)  # conv output (B, A*(5+C), H, W)
    batch_inds = torch.tensor([[0], [1]])
    anchor_inds = torch.tensor([[2, 2, 0, 1, 2]])
    grid_y, grid_x = torch.tensor([[3, 3, 0, 1, 3]] * 2), torch.tensor([[4, 4, 0, 2, 1]] * 2)  # a shared cell
    weight = (torch.rand(2, 3, 4, 5, generator=gen) > 0.3).float()
    slot_coeff = torch.randn(2, 5, 7, generator=gen)
    grads = {}
    for name in ('sparse', 'plain'):
        pred = raw.view(2, 3, 7, 4, 5).permute(0, 1, 3, 4, 2)  # (B, A, 5+C, H, W) -> (B, A, H, W, 5+C)
        pred.register_hook(lambda g, name=name: grads.__setitem__(name + '_stride', g.stride()))
        if name == 'sparse':
            box, obj, cls, obj_sum = GatherSlotsAndObjectness.apply(pred, batch_inds, anchor_inds,
                                                                    grid_y, grid_x, weight)
            at_slots = torch.cat((box, obj[..., None], cls), -1)
        else:
            at_slots = pred[batch_inds, anchor_inds, grid_y, grid_x]
            obj_sum = (F.softplus(pred[..., 4]) * weight).sum()
        ((at_slots * slot_coeff).sum() + 0.7 * obj_sum).backward()
        grads[name], raw.grad = raw.grad, None
    torch.testing.assert_close(grads['sparse'], grads['plain'])
    assert grads['sparse_stride'] == raw.view(2, 3, 7, 4, 5).permute(0, 1, 3, 4, 2).stride()  # no copy


# ------------------------------------------------------------------ channels-last and torch.compile
def test_channels_last_option_keeps_outputs():
    model = build_model('tiny').eval()
    fast = build_model('tiny', channels_last=True).eval()
    fast.load_state_dict(model.state_dict())
    assert fast.backbone.stem[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for ours, theirs in zip(fast.extract_feat(x), model.extract_feat(x)):
            torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)  # other conv kernels


def test_channels_last_survives_switch_to_deploy():
    """The deploy switch makes new convs (L's merged RepConvN); a channels-last model keeps them NHWC."""
    model = build_model('l', channels_last=True).eval()
    model.switch_to_deploy()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def failing_compile(module, **options):
        assert options == dict(mode='reduce-overhead')  # the config's options are passed on

        def compiled(*args):
            raise RuntimeError('no C++ compiler found\nmore detail')
        return compiled

    model = build_model('tiny', compile_backbone_neck=dict(mode='reduce-overhead')).eval()
    eager = build_model('tiny').eval()
    eager.load_state_dict(model.state_dict())
    monkeypatch.setattr(torch, 'compile', failing_compile)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), pytest.warns(UserWarning) as warned:
        feats = model.extract_feat(x)
    assert [str(w.message).split(' failed')[0] for w in warned] == [
        'torch.compile of the backbone', 'torch.compile of the neck']
    assert 'RuntimeError: no C++ compiler found)' in str(warned[0].message)  # first line of the error
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('error')  # warned once, eager from then on
        again = model.extract_feat(x)
        expected = eager.extract_feat(x)
    for a, b, c in zip(feats, again, expected):
        torch.testing.assert_close(a, c)
        torch.testing.assert_close(b, c)
    assert copy.deepcopy(model)._compiled == {}  # the EMA's copy compiles its own parts


def test_inside_fraction_equals_mmdet_iof_without_its_device_copy():
    from mmdet.structures.bbox import bbox_overlaps
    from yolov7_mmdet.models.losses.yolov7_loss import _inside_fraction
    gen = torch.Generator().manual_seed(0)
    boxes = torch.rand(2, 30, 4, generator=gen) * 50
    boxes[..., 2:] += boxes[..., :2]
    boxes[0, 3, 2] = boxes[0, 3, 0]  # zero width: the area floor
    regions = torch.rand(2, 3, 4, generator=gen) * 60
    regions[..., 2:] += regions[..., :2]
    with forbid_host_sync():
        ours = _inside_fraction(boxes, regions)
    assert (ours > 0).any() and (ours < 1).any()
    torch.testing.assert_close(ours, bbox_overlaps(boxes, regions, mode='iof'), rtol=0, atol=0)


def test_loss_backward_allocates_one_map_per_level():
    """The backward writes each level's gradient into a single new full-size map (the one autograd
    hands on); plain indexing made one per read plus their sum (3 per level)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class FullSizeAllocations(TorchDispatchMode):
        def __init__(self, shapes):
            super().__init__()
            self.shapes, self.ops = shapes, []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            allocates = not func.is_view and not func._schema.is_mutable
            if allocates and isinstance(out, torch.Tensor) and tuple(out.shape) in self.shapes:
                self.ops.append(func._schema.name)
            return out

    prob = bench.assigner_bench.random_problem(2, 5, image_shape=(64, 96), num_classes=3)
    preds = [bench.head_layout(p).requires_grad_() for p in prob.pop('preds')]
    ignore = dict(ignore_bboxes=torch.tensor([[[0.0, 0.0, 30.0, 30.0]]]).expand(2, 1, 4),
                  ignore_valid=torch.ones(2, 1, dtype=torch.bool))
    out = MODELS.build(dict(type='YOLOv7Loss', num_classes=3, img_size=64, aux_assigner=None))(
        preds, **ignore, **prob)
    recorder = FullSizeAllocations({tuple(p.shape) for p in preds})
    with recorder:
        sum(out.values()).backward()
    assert recorder.ops == ['aten::zeros_like'] * len(preds)
    assert all(p.grad.stride() == p.stride() for p in preds)  # in the maps' own layout: no copy
