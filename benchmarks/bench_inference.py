"""Inference speed of a YOLOv7 model in the forms a user can run, as a ratio to the training graph.

    python benchmarks/bench_inference.py [--config CONFIG] [--checkpoint CKPT] [--size 640]
        [--batch 1 32] [--device cpu|cuda] [--repeats 10] [--threads N] [--skip MODE ...]

Every form computes the same thing: the network and the decode, ``(N, boxes, 4 + 1 + C)`` (the
``--nms none`` export), without NMS. Forms, each timed in this process on the same input:

* ``train-graph`` (the baseline): the training graph, eager, fp32 (what the official code runs unless
  its model is fused): RepConvN branches, BN, implicit vectors;
* ``deployed``: after ``switch_to_deploy()`` (one conv per RepConvN, BN folded, implicit folded);
* ``deployed+channels_last``: the same in channels-last memory format;
* ``deployed+compile``: ``torch.compile`` of the deployed model (compile time excluded);
* ``onnxruntime``: the ``--nms none`` ONNX export in onnxruntime (CUDA provider on a GPU if installed);
* on CUDA only: ``train-graph fp16`` (the baseline of the GPU targets), ``deployed fp16``,
  ``deployed bf16`` and ``deployed fp16+cuda-graph``.

Prints images/s (median over ``--repeats`` timed runs after warm-up, the forms taking turns run by run
so that a changing machine load affects all alike) and the ratio to ``train-graph``
(and on CUDA to ``train-graph fp16``). A form that cannot run here (no compiler for
``torch.compile``, ...) is reported as failed with its reason, and the others still run.
"""
from __future__ import annotations

import argparse
import copy
import functools
import os.path as osp
import sys
import tempfile
from typing import Callable, Optional

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'yolov7', 'yolov7_l_8xb16-300e_coco.py')
BASELINE, BASELINE_FP16 = 'train-graph', 'train-graph fp16'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='model config (default: YOLOv7-L)')
    parser.add_argument('--checkpoint', help='weights (default: random initialisation; speed does not care)')
    parser.add_argument('--size', type=int, default=640, help='square input size')
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 32], help='batch sizes')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=10, help='timed runs per form (median)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs per form')
    parser.add_argument('--threads', type=int, help='CPU threads for torch and onnxruntime')
    parser.add_argument('--skip', nargs='+', default=[], help='forms to leave out, e.g. deployed+compile')
    return parser.parse_args(argv)


def raw_predictions(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Network + decode: ``(N, boxes, 4 + 1 + C)``, the ``--nms none`` output (works on both graphs)."""
    lead_maps, _ = model._forward(images)
    return torch.cat(model.bbox_head.decode_with_objectness(lead_maps), dim=-1)


def torch_form(model: torch.nn.Module, *, dtype: torch.dtype = torch.float32,
               channels_last: bool = False) -> Callable[[torch.Tensor], object]:
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(dtype=dtype, memory_format=memory_format)

    @torch.inference_mode()
    def run(images: torch.Tensor):
        return raw_predictions(model, images.to(dtype=dtype, memory_format=memory_format))
    return run


def compiled_form(model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    compiled = torch.compile(lambda images: raw_predictions(model, images))
    return torch.inference_mode()(compiled)


def cuda_graph_form(model: torch.nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], object]:
    """Capture one fp16 forward into a CUDA graph; a call copies the input in and replays it."""
    model = model.half()
    static_input = example.half().clone()
    with torch.inference_mode():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up on a side stream, as CUDA graph capture requires
                raw_predictions(model, static_input)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = raw_predictions(model, static_input)

    def run(images: torch.Tensor):
        static_input.copy_(images)
        graph.replay()
        return static_output
    return run


def onnxruntime_form(model: torch.nn.Module, *, size: int, device: str, threads: Optional[int],
                     work_dir: str) -> Callable[[torch.Tensor], object]:
    import onnxruntime

    from yolov7_mmdet.deployment.export import export_onnx
    path = export_onnx(copy.deepcopy(model).cpu(), osp.join(work_dir, 'model.onnx'), input_hw=(size, size),
                       dynamic_batch=True, nms='none')
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    providers = ['CPUExecutionProvider']
    if device == 'cuda' and 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
        providers.insert(0, 'CUDAExecutionProvider')
    session = onnxruntime.InferenceSession(path, sess_options=options, providers=providers)

    def run(images: torch.Tensor):
        return session.run(None, {'images': images.cpu().numpy()})
    return run


def interleaved_images_per_second(runners: dict[str, Callable], images: torch.Tensor, *, warmup: int,
                                  repeats: int) -> dict[str, float]:
    """Images/s of each runner: the median of ``repeats`` timed runs, taken in turns (one run of each
    runner per round, after ``warmup`` such rounds), so that a change in the machine's load affects
    every form alike."""
    from yolov7_mmdet.utils.timing import interleaved_medians
    calls = {name: functools.partial(run, images) for name, run in runners.items()}
    timings = interleaved_medians(calls, warmup=warmup, repeats=repeats, device=images.device)
    return {name: len(images) / timing.seconds for name, timing in timings.items()}


def build_forms(model, *, args, example: torch.Tensor, work_dir: str) -> dict[str, Callable[[], Callable]]:
    """Form name -> a function that builds its runner (lazily, so one failure does not stop the rest)."""
    def deployed():
        return copy.deepcopy(model).switch_to_deploy()

    forms = {
        BASELINE: lambda: torch_form(copy.deepcopy(model)),
        'deployed': lambda: torch_form(deployed()),
        'deployed+channels_last': lambda: torch_form(deployed(), channels_last=True),
        'deployed+compile': lambda: compiled_form(deployed()),
        'onnxruntime': lambda: onnxruntime_form(model, size=args.size, device=args.device,
                                                threads=args.threads, work_dir=work_dir),
    }
    if args.device == 'cuda':
        forms.update({
            BASELINE_FP16: lambda: torch_form(copy.deepcopy(model), dtype=torch.float16),
            'deployed fp16': lambda: torch_form(deployed(), dtype=torch.float16),
            'deployed bf16': lambda: torch_form(deployed(), dtype=torch.bfloat16),
            'deployed fp16+cuda-graph': lambda: cuda_graph_form(deployed(), example),
        })
    return {name: build for name, build in forms.items() if name not in args.skip}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('bench_inference.py: error: --device cuda but torch sees no GPU')
    import yolov7_mmdet  # noqa: F401  (registration)
    from mmengine.logging import MMLogger
    from yolov7_mmdet.deployment.export import load_detector
    from yolov7_mmdet.utils.launch import load_config
    MMLogger.get_instance('bench_inference', log_level='WARNING')  # quiet the weight-init report
    model = load_detector(load_config(args.config), args.checkpoint).to(args.device)
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'{osp.basename(args.config)} at {args.size}x{args.size}, {device_name}, torch {torch.__version__}')
    with tempfile.TemporaryDirectory() as work_dir:
        for batch in args.batch:
            images = torch.rand(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
            images = images.to(args.device)
            runners, failures = {}, {}
            for name, build in build_forms(model, args=args, example=images, work_dir=work_dir).items():
                try:
                    run = build()
                    run(images)  # fails here, not while timing, when the form cannot run
                    runners[name] = run
                except Exception as error:  # report and go on: e.g. no C++ compiler for torch.compile
                    failures[name] = f'failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:120]}'
            results = {**interleaved_images_per_second(runners, images, warmup=args.warmup,
                                                       repeats=args.repeats), **failures}
            print_table(batch, results)


def print_table(batch: int, results: dict[str, object]) -> None:
    baselines = [name for name in (BASELINE, BASELINE_FP16) if isinstance(results.get(name), float)]
    header = ''.join(f' | x {name}' for name in baselines)
    print(f'\nbatch {batch}\n| form | images/s{header} |\n|---|---|' + '---|' * len(baselines))
    for name, value in results.items():
        if isinstance(value, float):
            ratios = ''.join(f' | {value / results[base]:.2f}' for base in baselines)
            print(f'| {name} | {value:.2f}{ratios} |')
        else:
            print(f'| {name} | {value} |' + ' |' * len(baselines))


if __name__ == '__main__':
    main()
