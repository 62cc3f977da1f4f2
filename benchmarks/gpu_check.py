"""The GPU check of issue 21: every GPU measurement in one command, one JSON and one Markdown table.

Steps (the issue's items; item 8, peak GPU memory, is a column of 3 and 6's rows):

1. ``e2e_train``: ``tools/train.py configs/demo/yolov7_tiny_demo.py --amp`` (fp16, then bf16) for a
   few epochs on a generated demo dataset: the loss falls, a checkpoint is written, ``tools/test.py``
   reloads it and gives a mAP; warnings and log lines that mention host syncs are counted.
2. ``no_sync``: one training step (forward, loss, backward, SGD, EMA) of yolov7-tiny and of
   YOLOv7-W6 with its P6 aux head under ``torch.cuda.set_sync_debug_mode('error')`` (fp32 and bf16;
   fp16 needs GradScaler, which reads its inf flag on the host by design).
3. ``l_step``: the YOLOv7-L training step at batch 16 / 640, AMP fp16, 10 and 50 GTs per image:
   images/s and the loss's share of the step; also channels_last and bf16.
4. ``w6_aux``: YOLOv7-W6 with its aux head, batch 8 / 1280, one training step: it runs, images/s.
5. ``dataloader``: the L step fed by the real dataloader (coco128, mosaic/mixup at 640, 8 and 16
   workers) against the synthetic step.
6. ``inference``: deployed YOLOv7-L and yolov7-tiny at 640, fp16, batch 1 and 32: eager NCHW,
   channels_last, CUDA graph (+ channels_last), and end to end with our NMS on the GPU.
7. ``dist_train``: ``tools/dist_train.sh`` with 1 GPU (NCCL): it starts, trains, saves.

The pieces are the benchmarks' own (``bench_train_step.py``: configs, model, ``TrainStep``, loss
stand-in, synthetic GTs, dataloader; ``bench_inference.py``: the inference forms;
``yolov7_mmdet.utils.timing``: interleaved medians and the CUDA peak memory). The official figures
of the issue (H200, torch 2.11) are in the table as baselines, with the goals.

Budget: 8 minutes in all on an H100/H200 (``--budget``), each step with its own cap; a step that
fails or hits its cap is recorded and the next one runs; the JSON and the table are rewritten after
every step, so a run cut short still leaves its figures.

Device run (``../shared/device/README.md``), from the project root here::

    bash ../shared/device/prepare.sh                            # the wheels, into .devwheels/
    python benchmarks/gpu_check.py --prepare-data               # coco128, into .devdata/ (7.5 MB)

then one call of the device tool, with 560 s (of its 600 s limit) for the script::

    run(command='source .devwheels/install.sh && python3 benchmarks/gpu_check.py --out $OUT/gpu_check',
        carry=['.devwheels', '.devdata'], timeout_s=600)

CPU dry run (every step, 64-128 px, one or two iterations; a test runs it)::

    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional
from unittest import mock

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts
DEMO_CONFIG = REPO_ROOT / 'configs' / 'demo' / 'yolov7_tiny_demo.py'
VARIANT_CONFIG = str(REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_{}_8xb16-300e_coco.py')
COCO128_PLACES = (REPO_ROOT / '.devdata' / 'coco128', REPO_ROOT.parent / 'shared' / 'datasets' / 'coco128')
KIT_TORCH = '2.11'  # the device kit's mmcv wheel is built against torch 2.11.0+cu130
KIT_HINT = 'rebuild the mmcv wheel on the device as ../shared/device/README.md says'


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and the CPU dry run."""

    budget_s: float  # the whole run
    caps_s: dict  # per step
    demo_images: tuple  # (train, val, size) of the generated demo dataset
    demo_epochs: int
    demo_batch: int
    amp_dtypes: tuple  # of the end-to-end training ('' = fp32: AmpOptimWrapper needs a GPU)
    sync_size: int  # the no-sync step (tiny; W6 at twice this)
    sync_amps: tuple  # autocast dtypes of the no-sync step (None: fp32)
    amp: dict  # the autocast dtype of 'fp16' / 'bf16' in the timed steps (the CPU runs fp32)
    l_arch: str  # the model of the 'L' steps (the dry run takes tiny: same code, a fifth of the time)
    l_batch: int
    l_size: int
    w6_batch: int
    w6_size: int
    workers: tuple
    loader_batches: int
    infer_size: int
    infer_batches: tuple
    step_rounds: tuple  # (warm-up, timed) rounds of a training-step timing
    infer_rounds: tuple  # (warm-up, timed) rounds of an inference timing
    dist_iters: int


GPU = Sizes(budget_s=480, caps_s=dict(e2e_train=120, no_sync=30, l_step=90, w6_aux=45, dataloader=70,
                                      inference=75, dist_train=50),
            demo_images=(64, 16, 128), demo_epochs=3, demo_batch=8, amp_dtypes=('float16', 'bfloat16'),
            sync_size=128, sync_amps=(None, torch.bfloat16), amp=dict(fp16=torch.float16, bf16=torch.bfloat16),
            l_arch='l', l_batch=16, l_size=640, w6_batch=8, w6_size=1280, workers=(8, 16), loader_batches=4,
            infer_size=640, infer_batches=(1, 32), step_rounds=(2, 5), infer_rounds=(3, 10), dist_iters=8)
DRY = Sizes(budget_s=180, caps_s=dict(e2e_train=45, no_sync=20, l_step=20, w6_aux=20, dataloader=20,
                                      inference=20, dist_train=45),
            demo_images=(4, 2, 64), demo_epochs=1, demo_batch=2, amp_dtypes=('',), sync_size=64,
                    sync_amps=(None,), amp=dict(fp16=None, bf16=None), l_arch='tiny', l_batch=2, l_size=64, w6_batch=1,
            w6_size=128, workers=(0, 1), loader_batches=1,
            infer_size=64, infer_batches=(1, 2), step_rounds=(0, 1), infer_rounds=(1, 1), dist_iters=2)

# The official code's figures from issue 21 (H200, torch 2.11), and the goals: (baseline, goal) by row.
OFFICIAL = {
    'L step fp16, 10 GTs': ('78.1 img/s', '>= 156 img/s'),
    'L step fp16, 50 GTs': ('62.6 img/s', '>= 125 img/s'),
    'loss share, 10 GTs': ('58-64%', ''),
    'loss share, 50 GTs': ('58-64%', ''),
    'L deployed fp16 bs1 eager NCHW': ('164-171 img/s', ''),
    'L deployed fp16 bs32 eager NCHW': ('1081 img/s', ''),
    'L deployed fp16 bs32 channels_last': ('1337 img/s', ''),
    'L deployed fp16 bs1 CUDA graph + channels_last': ('459 img/s', '>= 459 img/s (best bs1)'),
    'L deployed fp16 bs32 CUDA graph + channels_last': ('1356 img/s', '>= 1356 img/s (best bs32)'),
    'tiny deployed fp16 bs1 eager NCHW': ('209 img/s', ''),
    'tiny deployed fp16 bs32 eager NCHW': ('3997 img/s', ''),
}


@dataclass
class Row:
    """One figure of the table."""

    item: int
    what: str
    value: object
    unit: str = ''
    peak_mb: Optional[float] = None
    note: str = ''


@dataclass
class StepResult:
    status: str = 'not run'  # ok | failed | skipped | not run
    seconds: float = 0.0
    error: str = ''
    rows: list = field(default_factory=list)


class StepTimeout(Exception):
    """A step ran past its cap."""


@contextlib.contextmanager
def time_cap(seconds: float):
    """Raise :class:`StepTimeout` in the main thread after ``seconds`` (CUDA work is asynchronous, so
    Python regains control between kernels)."""
    def expire(signum, frame):
        raise StepTimeout(f'ran past its cap of {seconds:.0f} s')

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------------------------
# environment


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown'


def _driver() -> Optional[str]:
    if shutil.which('nvidia-smi') is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20).stdout
        return out.strip().splitlines()[0] if out.strip() else None
    return None


def environment(device: torch.device) -> dict:
    on_cuda = device.type == 'cuda'
    return dict(
        host=platform.node(), cpu=_cpu_model(), cpu_count=os.cpu_count(), python=platform.python_version(),
        torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
        gpu=torch.cuda.get_device_name(device) if on_cuda else None,
        gpu_memory_gb=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1) if on_cuda else None,
        driver=_driver(), mmcv=_version('mmcv'), mmdet=_version('mmdet'), mmengine=_version('mmengine'),
        onnxruntime=_version('onnxruntime'))


def kit_problem(device: torch.device) -> Optional[str]:
    """One line when the installed stack cannot run the check (a stale device kit), else None."""
    try:
        import mmcv._ext  # noqa: F401  (the compiled ops, built against one torch)
    except ImportError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f'gpu_check: the device kit is stale: mmcv._ext does not load on torch {torch.__version__} '
                f'({first}); {KIT_HINT}.')
    if device.type == 'cuda' and not torch.__version__.startswith(KIT_TORCH):
        return (f'gpu_check: the device kit is stale: the image has torch {torch.__version__}, the kit\'s '
                f'mmcv wheel was built for torch {KIT_TORCH}; {KIT_HINT}.')
    return None


# ----------------------------------------------------------------------------------------------
# shared pieces


class Context:
    """What the steps share: sizes, device, work folder, and the models built so far."""

    def __init__(self, sizes: Sizes, device: torch.device, work_dir: Path, out_dir: Path, deadline: float) -> None:
        self.sizes, self.device, self.work_dir, self.deadline = sizes, device, work_dir, deadline
        self.out_dir = out_dir  # what comes back from the device: the report and the logs
        self.deadline_step = deadline  # of the running step; set by run_steps
        self._models = {}

    def model(self, arch: str, size: int, **options):
        """A training model of ``arch`` (random weights) with its loss at ``size``; built once."""
        import bench_train_step as bench
        key = (arch, size, tuple(sorted(options.items())))
        if key not in self._models:
            cfg = bench.load_config(VARIANT_CONFIG.format(arch), size=size, batch=1, workers=0,
                                    model_options=options)
            self._models[key] = bench.build_model(cfg, self.device)
        return self._models[key]

    def forget_models(self) -> None:
        self._models.clear()
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()


def images_per_second(calls: dict, images: int, ctx: Context, rounds: tuple) -> dict:
    """``{key: (img/s, peak MB)}`` of ``calls``, timed in turns (``yolov7_mmdet.utils.timing``)."""
    from yolov7_mmdet.utils.timing import interleaved_medians
    warmup, repeats = rounds
    timings = interleaved_medians(calls, warmup=warmup, repeats=repeats, device=ctx.device)
    return {key: (images / timing.seconds, timing.peak_mb) for key, timing in timings.items()}


def synthetic_batch(ctx: Context, batch: int, size: int, num_gts: int, num_classes: int):
    import bench_train_step as bench
    inputs = torch.randn(batch, 3, size, size, device=ctx.device)
    return inputs, bench.random_gt_samples(batch, num_gts, size, num_classes, device=ctx.device)


def tool_main(relative_path: str) -> Callable:
    """``main(argv)`` of ``tools/<relative_path>``: the command line, run in this process."""
    return runpy.run_path(str(REPO_ROOT / 'tools' / relative_path), run_name='gpu_check_tool')['main']


def demo_options(data_root: Path, sizes: Sizes) -> list[str]:
    """``--cfg-options`` that point the demo config at ``data_root`` and size the run."""
    root = f'{data_root}/'
    return [f'train_dataloader.dataset.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={root}annotations/val.json',
            f'test_evaluator.ann_file={root}annotations/val.json',
            f'train_dataloader.batch_size={sizes.demo_batch}', f'optim_wrapper.batch_size_per_gpu={sizes.demo_batch}',
            f'optim_wrapper.nominal_batch_size={sizes.demo_batch}', 'default_hooks.logger.interval=1',
            f'train_cfg.max_epochs={sizes.demo_epochs}', f'train_cfg.val_interval={sizes.demo_epochs}',
            'train_dataloader.num_workers=2', 'val_dataloader.num_workers=1', 'test_dataloader.num_workers=1']


def make_demo_data(ctx: Context) -> Path:
    from yolov7_mmdet.datasets.demo import make_demo_dataset
    root = ctx.work_dir / 'demo_data'
    num_train, num_val, size = ctx.sizes.demo_images
    make_demo_dataset(root, num_train=num_train, num_val=num_val, image_size=size, seed=0)
    return root


LOGGED_LOSS = re.compile(r'Epoch\(train\).*?\sloss: ([0-9.eE+-]+)')


def logged_losses(work_dir: Path) -> list[float]:
    """The ``loss`` of every logged training iteration, from the run's own text log
    (``<work_dir>/<timestamp>/<timestamp>.log``; a second runner in one process reuses the first
    one's named visualizer, and with it its ``vis_data`` folder, so the scalars file is not the run's)."""
    losses = []
    for log in sorted(work_dir.glob('*/*.log')):
        losses += [float(match.group(1)) for match in LOGGED_LOSS.finditer(log.read_text(errors='replace'))]
    return losses


def sync_mentions(work_dir: Path, caught: list) -> int:
    """Warnings, and WARNING lines of the run's log, that mention a (host) sync."""
    lines = [str(warning.message) for warning in caught]
    for log in work_dir.glob('*/*.log'):
        lines += [line for line in log.read_text(errors='replace').splitlines() if ' - WARNING - ' in line]
    return sum('sync' in line.lower() for line in lines)


# ----------------------------------------------------------------------------------------------
# steps


def step_e2e_train(ctx: Context) -> list[Row]:
    """Item 1: tools/train.py (--amp fp16 / bf16) on the demo config, then tools/test.py on its checkpoint."""
    train, test = tool_main('train.py'), tool_main('test.py')
    data_root = make_demo_data(ctx)
    rows = []
    for amp in ctx.sizes.amp_dtypes:
        name = amp or 'fp32'
        work_dir = ctx.work_dir / f'e2e_{name}'
        flags = ['--amp', '--amp-dtype', amp] if amp else []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            train([str(DEMO_CONFIG), *flags, '--work-dir', str(work_dir),
                             '--cfg-options', *demo_options(data_root, ctx.sizes)])
        losses = logged_losses(work_dir)
        checkpoint = work_dir / f'epoch_{ctx.sizes.demo_epochs}.pth'
        if not checkpoint.is_file() or not losses:
            raise RuntimeError(f'{name}: no checkpoint {checkpoint.name} or no logged loss in {work_dir}')
        metrics = test([str(DEMO_CONFIG), str(checkpoint), '--work-dir', str(work_dir / 'test'),
                                  '--cfg-options', *demo_options(data_root, ctx.sizes)])
        third = max(1, len(losses) // 3)
        first, last = sum(losses[:third]) / third, sum(losses[-third:]) / third
        rows += [Row(1, f'demo train {name}: loss first third -> last third', f'{first:.3f} -> {last:.3f}',
                     note='falls' if last < first else 'does not fall'),
                 Row(1, f'demo train {name}: checkpoint reloaded by tools/test.py, bbox mAP',
                     round(float(metrics['coco/bbox_mAP']), 4)),
                 Row(1, f'demo train {name}: warnings / log lines about host syncs', sync_mentions(work_dir, caught))]
    return rows


def step_no_sync(ctx: Context) -> list[Row]:
    """Item 2: a whole step with no host sync: CUDA's sync debug mode (on the CPU: the tests' guard)."""
    import bench_train_step as bench
    rows = []
    for arch, size in (('tiny', ctx.sizes.sync_size), ('w6', 2 * ctx.sizes.sync_size)):
        for amp in ctx.sizes.sync_amps:
            model = ctx.model(arch, size)
            step = bench.TrainStep(model, amp=amp)
            inputs, samples = synthetic_batch(ctx, 2, size, 4, model.bbox_head.num_classes)
            step(inputs, samples)  # warm-up: lazy initialisation, the EMA's one read of its count
            with no_host_sync(ctx.device):
                losses = step(inputs, samples)
            finite = all(bool(torch.isfinite(value).all()) for value in losses.values())
            aux = ', P6 aux head' if arch == 'w6' else ''
            rows.append(Row(2, f'{arch}{aux} step {"bf16" if amp else "fp32"} without host sync',
                            'passes' if finite else 'non-finite loss'))
    return rows


@contextlib.contextmanager
def no_host_sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode('default')
    else:
        sys.path.insert(0, str(REPO_ROOT / 'tests' / 'test_models'))
        from host_sync_guard import forbid_host_sync
        with forbid_host_sync():
            yield


def step_l_train(ctx: Context) -> list[Row]:
    """Item 3 (and 8): the L step, fp16 at 10 and 50 GTs with its loss share; channels_last; bf16."""
    import bench_train_step as bench
    sizes = ctx.sizes
    model = ctx.model(sizes.l_arch, sizes.l_size)
    head = model.bbox_head
    ours, stand_in = head.loss_module, bench.StandInLoss()
    steps = {amp: bench.TrainStep(model, amp=sizes.amp[amp]) for amp in ('fp16', 'bf16')}
    batches = {gts: synthetic_batch(ctx, sizes.l_batch, sizes.l_size, gts, head.num_classes) for gts in (10, 50)}

    def run(amp: str, gts: int, loss_module) -> Callable[[], object]:
        def call():
            head.loss_module = loss_module
            steps[amp](*batches[gts])
        return call

    calls = {'fp16 10': run('fp16', 10, ours), 'fp16 50': run('fp16', 50, ours),
             'fp16 stand-in': run('fp16', 10, stand_in), 'bf16 10': run('bf16', 10, ours)}
    rates = images_per_second(calls, sizes.l_batch, ctx, sizes.step_rounds)
    head.loss_module = ours
    batch = f'b{sizes.l_batch}/{sizes.l_size}'
    rows = [Row(3, f'L step fp16, {gts} GTs', round(rates[f'fp16 {gts}'][0], 1), f'img/s ({batch})',
                rates[f'fp16 {gts}'][1]) for gts in (10, 50)]
    for gts in (10, 50):
        share = 1 - rates[f'fp16 {gts}'][0] / rates['fp16 stand-in'][0]
        rows.append(Row(3, f'loss share, {gts} GTs', f'{share:.0%}', 'of the fp16 step'))
    rows.append(Row(3, 'L step bf16, 10 GTs', round(rates['bf16 10'][0], 1), f'img/s ({batch})', rates['bf16 10'][1]))
    del calls, steps, model, head  # the optimizers' and EMAs' state too: the peak below is the new model's
    ctx.forget_models()
    cl_model = ctx.model(sizes.l_arch, sizes.l_size, channels_last=True)
    cl_step = bench.TrainStep(cl_model, amp=sizes.amp['fp16'])
    cl_rate = images_per_second({'cl': lambda: cl_step(*batches[10])}, sizes.l_batch, ctx, sizes.step_rounds)['cl']
    rows.append(Row(3, 'L step fp16 channels_last, 10 GTs', round(cl_rate[0], 1), f'img/s ({batch})', cl_rate[1]))
    return rows


def step_w6_aux(ctx: Context) -> list[Row]:
    """Item 4: W6 with its aux head, one fp16 step at b8/1280 (the official aux loss crashes on CUDA)."""
    import bench_train_step as bench
    sizes = ctx.sizes
    model = ctx.model('w6', sizes.w6_size)
    step = bench.TrainStep(model, amp=sizes.amp['fp16'])
    inputs, samples = synthetic_batch(ctx, sizes.w6_batch, sizes.w6_size, 10, model.bbox_head.num_classes)
    rate, peak = images_per_second({'w6': lambda: step(inputs, samples)}, sizes.w6_batch, ctx, (1, 1))['w6']
    return [Row(4, 'W6 + aux head, one fp16 step', round(rate, 1), f'img/s (b{sizes.w6_batch}/{sizes.w6_size})', peak)]


def coco128_root() -> Path:
    for place in COCO128_PLACES:
        if (place / 'images' / 'train').is_dir():
            return place
    raise FileNotFoundError(f'coco128 not found in {[str(p) for p in COCO128_PLACES]}: run '
                            'python benchmarks/gpu_check.py --prepare-data here and carry .devdata')


def coco128_splits(work_dir: Path) -> dict:
    """coco128 as COCO JSON (train = val): the ``splits`` of ``bench_train_step.point_at_data``."""
    from yolov7_mmdet.datasets.sources import read_yolo_txt, save_as_coco
    image_dir = coco128_root() / 'images' / 'train'
    ann_file = work_dir / 'coco128.json'
    save_as_coco(read_yolo_txt(image_dir, classes='coco', decode=False), ann_file, name='coco128',
                 image_root=image_dir)
    split = (str(ann_file), f'{image_dir}/')
    return dict(train=split, val=split)


def step_dataloader(ctx: Context) -> list[Row]:
    """Item 5: the L fp16 step fed by the real dataloader (mosaic/mixup), against the synthetic step."""
    import bench_train_step as bench
    sizes = ctx.sizes
    splits = coco128_splits(ctx.work_dir)
    model = ctx.model(sizes.l_arch, sizes.l_size)
    step = bench.TrainStep(model, amp=sizes.amp['fp16'])
    inputs, samples = synthetic_batch(ctx, sizes.l_batch, sizes.l_size, 10, model.bbox_head.num_classes)
    calls = {'synthetic': lambda: step(inputs, samples)}
    for workers in sizes.workers:
        cfg = bench.load_config(VARIANT_CONFIG.format(sizes.l_arch), size=sizes.l_size, batch=sizes.l_batch,
                                workers=workers, splits=splits)
        batches = bench.endless_batches(cfg)

        def real_step(batches=batches):
            for _ in range(sizes.loader_batches):
                data = model.data_preprocessor(next(batches), True)
                step(data['inputs'], data['data_samples'])
        calls[workers] = real_step
    rounds = (1, max(1, sizes.step_rounds[1] // 2))
    from yolov7_mmdet.utils.timing import interleaved_medians
    timings = interleaved_medians(calls, warmup=rounds[0], repeats=rounds[1], device=ctx.device)
    synthetic = sizes.l_batch / timings.pop('synthetic').seconds
    rows = [Row(5, 'L fp16 step, synthetic batches', round(synthetic, 1), f'img/s (b{sizes.l_batch}/{sizes.l_size})')]
    for workers, timing in timings.items():
        rate = sizes.l_batch * sizes.loader_batches / timing.seconds
        rows.append(Row(5, f'L fp16 step with the coco128 dataloader, {workers} workers', round(rate, 1),
                        'img/s', note=f'{rate / synthetic:.0%} of synthetic'))
    return rows


def end_to_end_form(model, *, dtype: torch.dtype) -> Callable:
    """Network, decode and our NMS (``YOLOv7Head.predict_by_feat``, mmcv's NMS on the model's device)."""
    model = model.to(dtype=dtype)

    @torch.inference_mode()
    def run(images: torch.Tensor):
        lead_maps, _ = model._forward(images.to(dtype))
        lead_maps = [lead_map.float() for lead_map in lead_maps]  # decode and NMS in fp32, as the test path
        metas = [dict(img_shape=images.shape[2:], batch_input_shape=images.shape[2:])] * len(images)
        return model.bbox_head.predict_by_feat(lead_maps, batch_img_metas=metas, cfg=model.bbox_head.test_cfg)
    return run


def step_inference(ctx: Context) -> list[Row]:
    """Item 6 (and 8): deployed L and tiny, fp16 (fp32 on the CPU), bs 1 and 32, in the forms of the issue."""
    import bench_inference as infer
    sizes = ctx.sizes
    on_cuda = ctx.device.type == 'cuda'
    dtype = torch.float16 if on_cuda else torch.float32
    rows = []
    for arch in ('l', 'tiny'):
        train_model = ctx.model(arch, sizes.infer_size)
        deployed = copy.deepcopy(train_model).eval().switch_to_deploy()
        for batch in sizes.infer_batches:
            images = torch.randn(batch, 3, sizes.infer_size, sizes.infer_size, device=ctx.device)
            forms = {'eager NCHW': infer.torch_form(copy.deepcopy(deployed), dtype=dtype),
                     'channels_last': infer.torch_form(copy.deepcopy(deployed), dtype=dtype, channels_last=True),
                     'end to end with our NMS': end_to_end_form(copy.deepcopy(deployed), dtype=dtype)}
            if on_cuda:
                forms['CUDA graph'] = infer.cuda_graph_form(copy.deepcopy(deployed), images)
                forms['CUDA graph + channels_last'] = infer.cuda_graph_form(
                    copy.deepcopy(deployed).to(memory_format=torch.channels_last),
                    images.contiguous(memory_format=torch.channels_last))
            calls = {name: (lambda run=run: run(images)) for name, run in forms.items()}
            rates = images_per_second(calls, batch, ctx, sizes.infer_rounds)
            precision = 'fp16' if on_cuda else 'fp32 (CPU)'
            for name, (rate, peak) in rates.items():
                rows.append(Row(6, f'{"L" if arch == "l" else "tiny"} deployed {precision.split()[0]} bs{batch} {name}',
                                round(rate, 1), f'img/s ({sizes.infer_size} px)', peak))
            if not on_cuda:
                rows.append(Row(6, f'{arch} bs{batch} CUDA graph forms', 'skipped', note='needs CUDA'))
        ctx.forget_models()
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_command(command: list[str], *, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a session of its own: a timeout or an error ends the whole process group
    (``dist_train.sh`` -> torchrun -> train.py), not only its first process."""
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def step_dist_train(ctx: Context) -> list[Row]:
    """Item 7: tools/dist_train.sh with 1 process (NCCL on a GPU, gloo on the CPU): starts, trains, saves."""
    data_root = ctx.work_dir / 'demo_data'
    if not data_root.is_dir():
        data_root = make_demo_data(ctx)
    work_dir = ctx.work_dir / 'dist_train'
    sizes = ctx.sizes
    options = demo_options(data_root, sizes) + [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1000',
        f'train_dataloader.dataset.dataset.indices={sizes.dist_iters * sizes.demo_batch}']
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    result = run_command(['bash', str(REPO_ROOT / 'tools' / 'dist_train.sh'), str(DEMO_CONFIG), '1',
                          '--work-dir', str(work_dir), '--cfg-options', *options], env=env,
                         timeout=max(5.0, ctx.deadline_step - time.monotonic()))
    (ctx.out_dir / 'dist_train.log').write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['']
        raise RuntimeError(f'dist_train.sh exited {result.returncode}: {tail[0]} (dist_train.log)')
    saved = sorted(work_dir.glob('epoch_*.pth'))
    backend = 'nccl' if ctx.device.type == 'cuda' else 'gloo'
    return [Row(7, f'tools/dist_train.sh, 1 process ({backend})', 'trains and saves' if saved else 'no checkpoint',
                note=f'{len(logged_losses(work_dir))} logged iterations')]


STEPS = {  # name: (function, what)
    'e2e_train': (step_e2e_train, 'end-to-end demo training with --amp, checkpoint reload, tools/test.py'),
    'no_sync': (step_no_sync, 'no host sync over a whole step (tiny, W6 with its P6 aux head)'),
    'l_step': (step_l_train, 'YOLOv7-L training step'),
    'w6_aux': (step_w6_aux, 'YOLOv7-W6 + aux head training step'),
    'dataloader': (step_dataloader, 'L step fed by the real dataloader'),
    'inference': (step_inference, 'deployed inference'),
    'dist_train': (step_dist_train, 'tools/dist_train.sh, 1 process'),
}


# ----------------------------------------------------------------------------------------------
# report


def markdown(report: dict) -> str:
    env = report['environment']
    dry = report['mode'].startswith('dry')
    lines = [f'# GPU check ({report["mode"]})', '',
             f'Machine: {env.get("gpu") or "no GPU"} ({env.get("gpu_memory_gb")} GB), driver {env.get("driver")}, '
             f'CUDA {env.get("cuda")}, cuDNN {env.get("cudnn")}; {env.get("cpu")} x {env.get("cpu_count")}; '
             f'host {env.get("host")}. Python {env.get("python")}, torch {env.get("torch")}, mmcv {env.get("mmcv")}, '
             f'mmdet {env.get("mmdet")}, mmengine {env.get("mmengine")}. Total {report["seconds"]:.0f} s '
             f'of a {report["budget_s"]:.0f} s budget.', '',
             *(['**Dry run**: the CPU, fp32 in place of fp16/bf16, yolov7-tiny in place of L in items 3 and 5, '
                '64-128 px, one or two iterations: these figures show that every step runs, they measure '
                'nothing.', ''] if dry else []),
             '| item | measurement | value | peak GPU MB | official (H200, torch 2.11) | goal | note |',
             '|---|---|---|---|---|---|---|']
    for name, step in report['steps'].items():
        if step['status'] != 'ok':
            lines.append(f'| {STEP_ITEMS[name]} | {STEPS[name][1]} | **{step["status"]}** | | | | '
                         f'{step["error"]} |')
        for row in step['rows']:
            baseline, goal = ('', '') if dry else OFFICIAL.get(row['what'], ('', ''))
            peak = '' if row['peak_mb'] is None else f'{row["peak_mb"]:.0f}'
            value = f'{row["value"]} {row["unit"]}'.strip()
            lines.append(f'| {row["item"]} | {row["what"]} | {value} | {peak} | {baseline} | {goal} | {row["note"]} |')
    return '\n'.join(lines) + '\n'


STEP_ITEMS = dict(e2e_train=1, no_sync=2, l_step=3, w6_aux=4, dataloader=5, inference=6, dist_train=7)


def write_report(out_dir: Path, report: dict) -> None:
    from yolov7_mmdet.engine.hooks import atomic_write_bytes
    atomic_write_bytes(str(out_dir / 'gpu_check.json'), json.dumps(report, indent=1, default=str).encode())
    atomic_write_bytes(str(out_dir / 'gpu_check.md'), markdown(report).encode())


# ----------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', help='folder of gpu_check.json and gpu_check.md')
    parser.add_argument('--dry-run', action='store_true', help='every step on the CPU with tiny sizes')
    parser.add_argument('--steps', nargs='+', choices=list(STEPS), default=list(STEPS), help='a subset')
    parser.add_argument('--budget', type=float, help='seconds for the whole run (default 480; dry run 180)')
    parser.add_argument('--cap-scale', type=float, default=1.0,
                        help='multiply every step cap and the default budget (a slow or busy machine)')
    parser.add_argument('--prepare-data', action='store_true',
                        help='copy coco128 from ../shared/datasets to .devdata/ (git-excluded) and exit')
    args = parser.parse_args(argv)
    if not args.prepare_data and not args.out:
        parser.error('--out is required')
    return args


def prepare_data() -> None:
    source, target = COCO128_PLACES[1], COCO128_PLACES[0]
    if not source.is_dir():
        sys.exit(f'gpu_check: {source} does not exist')
    shutil.copytree(source, target, dirs_exist_ok=True)
    exclude = Path(subprocess.run(['git', 'rev-parse', '--git-path', 'info/exclude'], cwd=REPO_ROOT,
                                  capture_output=True, text=True, check=True).stdout.strip())
    exclude = exclude if exclude.is_absolute() else REPO_ROOT / exclude
    if '/.devdata/' not in exclude.read_text().splitlines() if exclude.exists() else True:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open('a') as file:
            file.write('/.devdata/\n')
    print(f'coco128 copied to {target}; carry ".devdata" in the device call')


def run_steps(args, sizes: Sizes, device: torch.device, out_dir: Path, report: dict) -> None:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as tmp:
        ctx = Context(sizes, device, Path(tmp), out_dir, deadline=start + report['budget_s'])
        for name in args.steps:
            result = StepResult()
            remaining = ctx.deadline - time.monotonic()
            cap = min(sizes.caps_s[name] * args.cap_scale, remaining)
            if remaining < 5:
                result.status, result.error = 'skipped', 'the total budget is spent'
            else:
                ctx.deadline_step = time.monotonic() + cap
                step_start = time.monotonic()
                print(f'[gpu_check] {name}: {STEPS[name][1]} (cap {cap:.0f} s)', flush=True)
                try:
                    with time_cap(cap), quiet_logs():
                        result.rows = [asdict(row) for row in STEPS[name][0](ctx)]
                    result.status = 'ok'
                except (Exception, SystemExit) as error:  # recorded; the next step runs
                    result.status = 'failed'
                    result.error = f'{type(error).__name__}: {(str(error).strip().splitlines() or [""])[0]}'
                    (out_dir / f'{name}.traceback.txt').write_text(traceback.format_exc())
                result.seconds = round(time.monotonic() - step_start, 1)
                print(f'[gpu_check] {name}: {result.status} in {result.seconds} s {result.error}', flush=True)
                ctx.forget_models()
            report['steps'][name] = asdict(result)
            report['seconds'] = time.monotonic() - start
            write_report(out_dir, report)


def unformatted_configs(enabled: bool):
    """In the dry run, mmengine dumps configs without yapf's formatting (seconds of CPU per dump)."""
    import mmengine.config.config as mmengine_config_module
    if not enabled:
        return contextlib.nullcontext()
    return mock.patch.object(mmengine_config_module, 'FormatCode', lambda text, **kwargs: (text, False))


@contextlib.contextmanager
def quiet_logs():
    """mmengine's per-parameter init report and INFO lines off the terminal (the runs' logs keep them)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.prepare_data:
        prepare_data()
        return {}
    sizes = DRY if args.dry_run else GPU
    device = torch.device('cpu' if args.dry_run else 'cuda')
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA device is visible to torch '
                 f'{torch.__version__}; run with --dry-run on a CPU machine.')
    problem = kit_problem(device)
    if problem:
        (out_dir / 'gpu_check.md').write_text(problem + '\n')
        sys.exit(problem)
    import yolov7_mmdet  # noqa: F401  (registers the plugin; after the kit check, which says more)
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.backends.cudnn.benchmark = True  # fixed shapes in every timed step (the configs' env_cfg too)
    report = dict(mode='dry run (CPU, tiny sizes)' if args.dry_run else 'GPU', environment=environment(device),
                  budget_s=args.budget or sizes.budget_s * args.cap_scale, seconds=0.0, steps={})
    print(f'[gpu_check] {report["mode"]}: torch {torch.__version__}, CUDA {torch.version.cuda}, '
          f'{report["environment"]["gpu"] or report["environment"]["cpu"]}; writing {out_dir}', flush=True)
    with unformatted_configs(args.dry_run):
        run_steps(args, sizes, device, out_dir, report)
    print(markdown(report))
    return report


if __name__ == '__main__':
    main()
