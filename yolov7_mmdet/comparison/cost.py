"""Cost mode: what each model costs on a device, in its deployed form.

Every model is built in one process and measured at its own input size (its test pipeline's resize
scale, padded to the model's stride) and at the common ``--size``: parameters and FLOPs (mmengine's
counter for every model, FLOPs = 2 x the multiply-accumulates it counts, as the YOLOv7 paper), the
median latency at batch 1 and the throughput at ``--batch`` of the network forward (``tensor`` mode:
backbone, neck, head; no decoding / NMS), and peak memory (CUDA only: torch has no CPU allocator
statistics). Every model is measured in its deployed form: ``switch_to_deploy()`` on every module
that has one (ours: implicit folded, aux head dropped, RepConv merged) and conv + BN fused. The
models are interleaved (one call of each per round, ``--warmup`` untimed rounds, then the median of
``--repeats``); a call over ``--max-call-gflops`` (batch N, or even batch 1 at a P6 model's 1280 on a
small CPU) is not made and its cells stay empty.
"""
import argparse
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from ..models.deploy import switch_to_deploy
from ..utils.complexity import network_complexity, unscaled_data_samples
from ..utils.timing import interleaved_medians
from .models import ModelSpec, build_model, own_input_shape, size_divisor

def dummy_batch(batch_size: int, shape: Tuple[int, int], device: str) -> tuple:
    """Random normalised images ``(N, 3, H, W)`` and their data samples (metainfo only)."""
    height, width = shape
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, height, width, generator=generator).to(device)
    return images, unscaled_data_samples(shape, batch_size)


def count_gflops(model: torch.nn.Module, shape: Tuple[int, int], device: str) -> float:
    """FLOPs (2 x mmengine's multiply-accumulates) of one image of ``shape``, in G."""
    images, samples = dummy_batch(1, shape, device)
    return network_complexity(model, images, samples)['flops'] / 1e9


def forward_call(model: torch.nn.Module, batch_size: int, shape: Tuple[int, int],
                 device: str) -> Callable[[], None]:
    images, samples = dummy_batch(batch_size, shape, device)

    def call() -> None:
        with torch.no_grad():
            model(images, samples, mode='tensor')

    return call


def deployed_model(spec: ModelSpec, device: str) -> torch.nn.Module:
    """``spec``'s model in eval mode, switched to deploy and BN-fused (see the module docstring)."""
    model = build_model(spec.cfg).to(device).eval()
    return switch_to_deploy(model)


def plan_model(spec: ModelSpec, model: torch.nn.Module,
               args: argparse.Namespace) -> Tuple[List[dict], Dict[str, Callable[[], None]]]:
    """The rows (own size, common size) and timed calls of one model. A call over
    ``--max-call-gflops`` is not made (an own size is judged by the common size's FLOPs scaled by
    area, so that its count is not traced either); its cells stay empty."""
    divisor = size_divisor(model)
    if args.size % divisor:
        raise ValueError(f'--size {args.size}: {spec.label} needs a multiple of {divisor}')
    common = (args.size, args.size)
    common_gflops = count_gflops(model, common, args.device)
    params = sum(parameter.numel() for parameter in model.parameters())
    rows, calls = [], {}
    for size_name, shape in (('own', own_input_shape(spec.cfg, divisor)), ('common', common)):
        row = dict(model=spec.label, size=size_name, input=f'{shape[0]}x{shape[1]}',
                   params_M=params / 1e6, GFLOPs=None, latency_ms=None, batch=None,
                   throughput_img_s=None, peak_MB=None, published_AP=spec.published_ap)
        rows.append(row)
        estimate = common_gflops * shape[0] * shape[1] / (args.size * args.size)
        if estimate > args.max_call_gflops:
            print(f'[{spec.label}] {size_name} {row["input"]}: about {estimate:.0f} GFLOPs, over '
                  '--max-call-gflops: not measured', flush=True)
            continue
        row['GFLOPs'] = common_gflops if shape == common else count_gflops(model, shape,
                                                                            args.device)
        print(f'[{spec.label}] {size_name} {row["input"]}: {row["GFLOPs"]:.1f} GFLOPs', flush=True)
        calls[f'{spec.label}/{size_name}/1'] = forward_call(model, 1, shape, args.device)
        if row['GFLOPs'] * args.batch <= args.max_call_gflops:
            row['batch'] = args.batch
            calls[f'{spec.label}/{size_name}/N'] = forward_call(model, args.batch, shape,
                                                                 args.device)
    return rows, calls


def run_cost(specs: Sequence[ModelSpec], args: argparse.Namespace) -> List[dict]:
    """One record per (model, size): the columns of ``COST_COLUMNS``."""
    rows, calls = [], {}
    for spec in specs:
        print(f'[{spec.label}] build, deploy form', flush=True)
        model_rows, model_calls = plan_model(spec, deployed_model(spec, args.device), args)
        rows += model_rows
        calls.update(model_calls)
    print(f'timing {len(calls)} calls: {args.warmup} warm-up + {args.repeats} timed rounds',
          flush=True)
    timings = interleaved_medians(calls, warmup=args.warmup, repeats=args.repeats,
                                  device=args.device, print_rounds=True)
    for row in rows:
        key = f'{row["model"]}/{row["size"]}'
        single, batched = timings.get(f'{key}/1'), timings.get(f'{key}/N')
        if single:
            row['latency_ms'] = single.seconds * 1e3
            row['peak_MB'] = (batched or single).peak_mb
        if batched:
            row['throughput_img_s'] = args.batch / batched.seconds
    return rows




def cost_settings(args: argparse.Namespace) -> dict:
    """The measurement settings that the table's header states."""
    return dict(device=args.device, threads=torch.get_num_threads(), warmup=args.warmup,
                repeats=args.repeats, batch=args.batch, size=args.size,
                max_call_gflops=args.max_call_gflops)
