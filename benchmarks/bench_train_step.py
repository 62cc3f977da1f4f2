"""Benchmark: the YOLOv7 training step, each part against a baseline run in the same process.

Parts (``--parts``, all by default), every one printed as images/s and a ratio:

* ``data``: the config's training pipeline alone (mosaic 4/9, affine, mixup, HSV, flip, pack) through
  a DataLoader with ``--workers`` workers, against mmdet's YOLOX-s training pipeline (mosaic, affine,
  mixup, HSV, flip, resize, pad) on the same images (BCCD, 640x480 photographs, ``../shared``) at the
  same size; and, with ``--official-repo DIR`` (a checkout of the official YOLOv7 code, imported from
  there at run time, never part of this repository), samples per second of the config's training
  dataset against the official ``utils.datasets.LoadImagesAndLabels`` with the same augmentation (its
  ``hyp`` derived from the config's transforms), on the same YOLO-layout images (``--official-data``,
  default ``../shared/datasets/coco128``), one sample at a time in this process: ours with its image
  cache (the config's default), without, and with the disk cache, the official without (its default)
  and with ``cache_images=True``;
* ``loss``: the loss forward + backward alone (YOLOv7-L level shapes, 80 classes, random logits,
  ``--gts`` GTs per image), against the per-image reference loss of ``bench_assigner_loss.py``; the
  maps are laid out as the head emits them (``--layout contiguous``: channel-last copies);
* ``step``: the full step on synthetic batches (forward, loss, backward, SGD, EMA), against the same
  model with that reference loss; also the loss's share of the step (against a stand-in loss that
  costs nothing but still back-propagates through the whole network);
* ``loader``: the full step fed by the real dataloader (``--workers`` workers), against the
  synthetic step;
* ``cache`` (not in the default parts): samples per second of the config's training dataset with its
  image cache in RAM against none, on a VOC folder (``--cache-data``, default raccoon).

Usage (CPU figures of ``docs/benchmarks.md``; the GPU command names the L config at 16 x 640)::

    python benchmarks/bench_train_step.py --parts loss --gts 10 50 --threads 1
    python benchmarks/bench_train_step.py --parts data --size 640 --batch 16 --workers 0
    python benchmarks/bench_train_step.py --parts data --threads 1 --official-repo /tmp/yolov7 --samples 32
    python benchmarks/bench_train_step.py --parts cache --threads 1 --samples 32
    python benchmarks/bench_train_step.py --parts step loader --config configs/yolov7/yolov7_tiny_8xb16-300e_coco.py \
        --size 320 --batch 8
    python benchmarks/bench_train_step.py --config configs/yolov7/yolov7_l_8xb16-300e_coco.py --batch 16 \
        --size 640 --device cuda --workers 8 [--amp bf16] [--channels-last] [--compile]

Every figure is the median of ``--repeats`` timed runs after a warm-up; the two sides of a ratio run
alternately, so that a busy machine slows both alike.
"""
import argparse
import importlib
import logging
import random
import sys
import tempfile
import types
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts
import bench_assigner_loss as assigner_bench  # noqa: E402

import yolov7_mmdet  # noqa: E402,F401  (registers the plugin)
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from yolov7_mmdet.datasets import unwrapped_dataset_cfg  # noqa: E402
from yolov7_mmdet.datasets.rect_eval import set_eval_protocol  # noqa: E402
from yolov7_mmdet.engine.hooks.ema_hook import YOLOv7ModelEMA  # noqa: E402
from yolov7_mmdet.utils.timing import interleaved_medians  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / 'configs' / 'yolov7' / 'yolov7_l_8xb16-300e_coco.py'
YOLOX_CONFIG = 'yolox/yolox_s_8xb8-300e_coco.py'  # in mmdet's packaged configs
AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='YOLOv7 training config')
    parser.add_argument('--parts', nargs='+', choices=('data', 'loss', 'step', 'loader', 'cache'),
                        default=['data', 'loss', 'step', 'loader'])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=640, help='square input size (multiple of 32)')
    parser.add_argument('--gts', type=int, nargs='+', default=[10, 50], help='GTs per image')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--layout', default='head', choices=('head', 'contiguous'),
                        help="loss part: maps as the head emits them (channel planes) or channel-last")
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers')
    parser.add_argument('--batches', type=int, default=3, help='batches per timed data run')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES), help='autocast the model (step parts)')
    parser.add_argument('--channels-last', action='store_true', help='model.channels_last=True')
    parser.add_argument('--compile', action='store_true', help='model.compile_backbone_neck=True')
    parser.add_argument('--official-repo', help='data part: also time the official YOLOv7 loader of '
                        'this checkout (its utils/datasets.py)')
    parser.add_argument('--official-data', default=str(COCO128),
                        help='YOLO-layout images/ + labels/ folder for the official comparison')
    parser.add_argument('--samples', type=int, default=32,
                        help='samples per timed run of the official comparison and the cache part')
    parser.add_argument('--cache-data', default=str(RACCOON),
                        help='cache part: a VOC folder with annotations/, images/, splits/train.txt')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------
# timing


def median_seconds(fns: Sequence[Callable[[], object]], repeats: int,
                   device: torch.device = torch.device('cpu')) -> List[float]:
    """Median seconds of each function: one warm-up round, then ``repeats`` rounds in turns."""
    timings = interleaved_medians(dict(enumerate(fns)), warmup=1, repeats=repeats, device=device)
    return [timing.seconds for timing in timings.values()]


def print_row(name: str, images: int, seconds: float, baseline: str, baseline_seconds: float) -> None:
    print(f'  {name:<34} {images / seconds:>9.2f} img/s   {baseline:<30} '
          f'{images / baseline_seconds:>9.2f} img/s   ratio {baseline_seconds / seconds:>5.2f}x')


# ----------------------------------------------------------------------------------------------
# configs and data

BCCD = REPO_ROOT.parent / 'shared' / 'datasets' / 'bccd'
COCO128 = REPO_ROOT.parent / 'shared' / 'datasets' / 'coco128'
RACCOON = REPO_ROOT.parent / 'shared' / 'datasets' / 'raccoon'


def convert_bccd(out_dir: Path) -> dict:
    """COCO JSON of bccd's train and val splits: ``{'train'|'val': (ann_file, image_prefix)}``."""
    from yolov7_mmdet.datasets.sources import read_voc, save_as_coco, voc_annotation_files
    splits = {}
    for role in ('train', 'val'):
        xml_files = voc_annotation_files(BCCD / 'Annotations', BCCD / 'ImageSets' / 'Main' / f'{role}.txt')
        ann_file = out_dir / f'bccd_{role}.json'
        save_as_coco(read_voc(xml_files, image_dir=BCCD / 'JPEGImages'), ann_file,
                     name=f'bccd/{role}', image_root=BCCD / 'JPEGImages')
        splits[role] = (str(ann_file), f'{BCCD / "JPEGImages"}/')
    return splits


def point_at_data(cfg: Config, splits: dict, *, batch_size: int, workers: int) -> None:
    """Make the dataloaders of ``cfg`` read ``splits`` through their own pipelines (classes from the files)."""
    inner = unwrapped_dataset_cfg(cfg.train_dataloader.dataset)
    for dataset, (ann_file, prefix) in ((inner, splits['train']),
                                        (cfg.val_dataloader.dataset, splits['val'])):
        dataset.update(type='CocoJSONDataset', data_root='', ann_file=ann_file,
                       data_prefix=dict(img=prefix))
        dataset.pop('metainfo', None)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.update(batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0)


def _replace_sizes(node, mapping: dict):
    """Copy of a config tree with every numeric list/tuple found in ``mapping`` replaced."""
    if isinstance(node, dict):
        return type(node)({key: _replace_sizes(value, mapping) for key, value in node.items()})
    if isinstance(node, (list, tuple)):
        if all(isinstance(value, (int, float)) for value in node) and tuple(node) in mapping:
            return mapping[tuple(node)]
        return type(node)(_replace_sizes(value, mapping) for value in node)
    return node


def resize_pipelines(cfg: Config, mapping: dict) -> None:
    """Replace the sizes in ``mapping`` (e.g. ``(640, 640)``) in the train and val dataloaders."""
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader] = _replace_sizes(cfg[loader], mapping)


def load_config(path: str, *, size: int, batch: int, workers: int, splits: Optional[dict] = None,
                model_options: Optional[dict] = None) -> Config:
    """``path`` at ``size``, reading ``splits`` (see ``convert_bccd``) if given."""
    cfg = Config.fromfile(path)
    set_eval_protocol(cfg, 'square')  # one input size for every validation image, as YOLOX's
    resize_pipelines(cfg, {(640, 640): (size, size), (1280, 1280): (size, size),
                                     (-320, -320): (-size // 2, -size // 2)})
    if 'loss' in cfg.model.bbox_head:  # ours (not YOLOX): the loss's size gains follow the input size
        cfg.model.bbox_head.loss.img_size = size
    if splits is not None:
        point_at_data(cfg, splits, batch_size=batch, workers=workers)
    cfg.model.update(model_options or {})
    return cfg


def yolox_config(splits: dict, *, size: int, batch: int, workers: int) -> Config:
    import mmdet
    return load_config(str(Path(mmdet.__file__).parent / '.mim' / 'configs' / YOLOX_CONFIG), size=size,
                       batch=batch, workers=workers, splits=splits)


def endless_batches(cfg: Config):
    """Batches of ``cfg.train_dataloader``, restarting at the end of the data."""
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    while True:
        yield from loader


def random_gt_samples(batch: int, num_gts: int, size: int, num_classes: int, *,
                      device: torch.device, seed: int = 0) -> List[DetDataSample]:
    """Data samples with ``num_gts`` random boxes (4 px to 40% of the image) per image."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):  # building inputs, outside the timed step
        wh = torch.rand(num_gts, 2, generator=gen) * size * 0.4 + 4
        centre = torch.rand(num_gts, 2, generator=gen) * size
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat((centre - wh / 2, centre + wh / 2), 1).clamp(0, size).to(device),
            labels=torch.randint(0, num_classes, (num_gts,), generator=gen).to(device))
        samples.append(sample)
    return samples


# ----------------------------------------------------------------------------------------------
# the training step


class ReferenceLoss(nn.Module):
    """The per-image reference loss of ``bench_assigner_loss.py`` behind ``YOLOv7Loss``'s interface."""

    def __init__(self, *, num_classes: int, img_size: int) -> None:
        super().__init__()
        self.num_classes, self.img_size = num_classes, img_size

    def forward(self, lead_preds, aux_preds=None, *, ignore_bboxes=None, ignore_valid=None,
                **gts) -> Dict[str, Tensor]:
        if aux_preds is not None:
            raise ValueError('the reference loss has no aux head: use a P5 config')
        with torch.autocast(lead_preds[0].device.type, enabled=False):
            return assigner_bench.reference_loss(lead_preds, num_classes=self.num_classes,
                                                 img_size=self.img_size, **gts)[0]


class StandInLoss(nn.Module):
    """A loss that costs nothing and still back-propagates through every output (the loss share)."""

    def forward(self, lead_preds, aux_preds=None, **_) -> Dict[str, Tensor]:
        maps = list(lead_preds) + list(aux_preds or [])
        return dict(loss=sum(m.float().mean() for m in maps))


class TrainStep:
    """One optimisation step as ``Runner`` runs it, without the hooks' logging: forward, loss,
    backward, SGD (the official momentum and nesterov), EMA update.

    Args:
        model: The detector, in training mode, on its device.
        amp: ``torch.float16`` / ``torch.bfloat16`` to autocast forward and loss, or None.
    """

    def __init__(self, model: nn.Module, *, amp: Optional[torch.dtype] = None) -> None:
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
        self.ema = YOLOv7ModelEMA(model)
        self.device_type = next(model.parameters()).device.type
        self.amp = amp
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=amp == torch.float16)

    def __call__(self, inputs: Tensor, data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        autocast = (torch.autocast(self.device_type, dtype=self.amp) if self.amp is not None
                    else nullcontext())
        with autocast:
            losses = self.model.loss(inputs, data_samples)
        self.scaler.scale(sum(losses.values())).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update_parameters(self.model)
        return losses


def build_model(cfg: Config, device: torch.device) -> nn.Module:
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    return model.train()


# ----------------------------------------------------------------------------------------------
# parts


def bench_data(args, splits: dict) -> None:
    print(f'(a) data pipeline, {args.batch} x {args.size}, {args.workers} workers, BCCD images')
    options = dict(size=args.size, batch=args.batch, workers=args.workers, splits=splits)
    ours = endless_batches(load_config(args.config, **options))
    yolox = endless_batches(yolox_config(**options))
    runs = [lambda it=it: [next(it) for _ in range(args.batches)] for it in (ours, yolox)]
    t_ours, t_yolox = median_seconds(runs, args.repeats)
    images = args.batch * args.batches
    print_row(Path(args.config).stem, images, t_ours, 'mmdet YOLOX-s pipeline', t_yolox)
    if args.workers == 0:
        print(f'  one worker makes {images / t_ours:.1f} img/s: a step rate of R img/s needs about '
              f'R / {images / t_ours:.1f} workers (on cores as fast as these)')


def import_official_datasets(repo: str) -> types.ModuleType:
    """The official ``utils.datasets`` of the checkout ``repo``.

    Modules it imports but the loader never uses (torchvision, requests, thop) are stood in for when
    they are not installed; a stand-in raises if it is ever called. Importing it sets OpenCV to one
    thread for the whole process (the official ``cv2.setNumThreads(0)``): both sides alike.
    """
    def stand_in(name: str) -> types.ModuleType:
        module = types.ModuleType(name)

        def unavailable(attr: str):
            if attr.startswith('__'):
                raise AttributeError(attr)

            def call(*_, **__):
                raise RuntimeError(f'{name}.{attr} is not installed (a benchmark stand-in)')
            return call
        module.__getattr__ = unavailable
        return module

    for name in ('torchvision', 'torchvision.utils', 'torchvision.ops', 'requests', 'thop'):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = stand_in(name)
    sys.path.insert(0, str(Path(repo).resolve()))
    return importlib.import_module('utils.datasets')


def official_hyp(pipeline: Sequence[dict]) -> dict:
    """The official ``hyp`` entries that give the augmentation of our training ``pipeline``."""
    by_type = {t['type']: t for t in pipeline}
    mosaic, affine = by_type['YOLOv7Mosaic'], by_type['YOLOv7RandomAffine']
    if mosaic.get('mosaic9_prob', 0.2) != 0.2:
        raise ValueError('the official loader makes 9-image mosaics with probability 0.2 only')
    low, high = affine.get('scaling_ratio_range', (0.1, 2.0))
    hsv = by_type.get('YOLOv7HSVRandomAug', {})
    paste_in = [t for t in pipeline if 'PasteIn' in t['type']]
    return dict(mosaic=mosaic.get('prob', 1.0), mixup=by_type.get('YOLOv7MixUp', {}).get('prob', 0.0),
                degrees=affine.get('max_rotate_degree', 0.0),
                translate=affine.get('max_translate_ratio', 0.2),
                scale=1.0 - low, shear=affine.get('max_shear_degree', 0.0), perspective=0.0,
                hsv_h=hsv.get('hue_gain', 0.0), hsv_s=hsv.get('saturation_gain', 0.0),
                hsv_v=hsv.get('value_gain', 0.0), flipud=0.0,
                fliplr=by_type.get('RandomFlip', {}).get('prob', 0.0), copy_paste=0.0,
                paste_in=paste_in[0].get('prob', 0.0) if paste_in else 0.0)


def official_layout(data_dir: Path, out_dir: Path) -> Path:
    """``out_dir/images/train`` and ``out_dir/labels/train`` linking to ``data_dir``'s, so that the
    official loader writes its label cache into ``out_dir``, not into the dataset."""
    for kind in ('images', 'labels'):
        (out_dir / kind).mkdir(parents=True)
        (out_dir / kind / 'train').symlink_to((data_dir / kind / 'train').resolve())
    return out_dir / 'images' / 'train'


def our_train_datasets(args, ann_file: Path, image_dir: Path, modes: Sequence) -> Tuple[Config, dict]:
    """The config's training dataset config reading ``ann_file``, and the dataset built once per
    ``cache_images`` mode."""
    from mmdet.registry import DATASETS
    cfg = load_config(args.config, size=args.size, batch=args.batch, workers=0)
    train = cfg.train_dataloader.dataset
    inner = unwrapped_dataset_cfg(train)
    inner.update(type='CocoJSONDataset', data_root='', ann_file=str(ann_file),
                 data_prefix=dict(img=f'{image_dir}/'))
    inner.pop('metainfo', None)
    cache_dir = str(ann_file.parent / 'image_cache')  # 'disk': in the run's temporary folder
    return train, {mode: DATASETS.build(dict(train, cache_images=mode, cache_dir=cache_dir))
                   for mode in modes}


def sample_seconds(datasets: dict, args) -> dict:
    """Median seconds of ``args.samples`` samples (the same random indexes) of each dataset, the
    datasets taking turns."""
    indexes = random.Random(0).choices(range(min(len(d) for d in datasets.values())), k=args.samples)

    def run(dataset):
        for index in indexes:
            dataset[index]

    calls = {key: (lambda d=dataset: run(d)) for key, dataset in datasets.items()}
    return {key: timing.seconds for key, timing in
            interleaved_medians(calls, warmup=1, repeats=args.repeats).items()}


def bench_official(args, out_dir: Path) -> None:
    """Samples/s of the config's training dataset against the official ``LoadImagesAndLabels``."""
    from yolov7_mmdet.datasets.sources import read_yolo_txt, save_as_coco
    official = import_official_datasets(args.official_repo)
    image_dir = Path(args.official_data) / 'images' / 'train'
    ann_file = out_dir / 'official_data.json'
    save_as_coco(read_yolo_txt(image_dir, classes='coco'), ann_file, name=image_dir.parent.parent.name,
                 image_root=image_dir)
    train, ours = our_train_datasets(args, ann_file, image_dir, ('auto', False, 'disk'))
    hyp = official_hyp(train.pipeline)
    # a layout each: the official loader writes a label cache that torch >= 2.6 cannot read back
    theirs = {cache: official.LoadImagesAndLabels(
        str(official_layout(Path(args.official_data), out_dir / f'official_{cache}')), args.size,
        args.batch, augment=True, hyp=hyp, cache_images=cache) for cache in (False, True)}
    print(f'(a2) training samples one at a time ({args.samples} per run), {args.size} px, '
          f'{image_dir} ({len(ours[False])} images), official hyp {hyp}')
    seconds = sample_seconds({**{('ours', mode): d for mode, d in ours.items()},
                              **{('official', cache): d for cache, d in theirs.items()}}, args)
    rows = [(('ours', 'auto'), ('official', False), "ours, cache_images='auto' (config)",
             'official (no image cache)'),
            (('ours', False), ('official', False), 'ours, cache_images=False',
             'official (no image cache)'),
            (('ours', 'disk'), ('official', False), "ours, cache_images='disk'",
             'official (no image cache)'),
            (('ours', 'auto'), ('official', True), "ours, cache_images='auto' (config)",
             'official, cache_images=True')]
    for ours_key, their_key, name, baseline in rows:
        print_row(name, args.samples, seconds[ours_key], baseline, seconds[their_key])


def bench_cache(args, out_dir: Path) -> None:
    """Samples/s of the config's training dataset with its image cache in RAM against none."""
    from yolov7_mmdet.datasets.sources import read_voc, save_as_coco, voc_annotation_files
    root = Path(args.cache_data)
    xml_files = voc_annotation_files(root / 'annotations', root / 'splits' / 'train.txt')
    ann_file = out_dir / 'cache_data.json'
    save_as_coco(read_voc(xml_files, image_dir=root / 'images'), ann_file, name=root.name,
                 image_root=root / 'images')
    _, ours = our_train_datasets(args, ann_file, root / 'images', ('ram', False))
    print(f'(e) image cache: training samples one at a time ({args.samples} per run), {args.size} px, '
          f'{root} ({len(ours[False])} images)')
    seconds = sample_seconds(ours, args)
    print_row("cache_images='ram'", args.samples, seconds['ram'], 'cache_images=False', seconds[False])


def head_layout(pred: Tensor) -> Tensor:
    """The same (B, A, H, W, 5+C) values laid out as the head emits them: a permuted view of the
    conv output (B, A*(5+C), H, W), so that each channel is a contiguous plane."""
    return pred.permute(0, 1, 4, 2, 3).contiguous().permute(0, 1, 3, 4, 2)


def bench_loss(args) -> None:
    print(f'(b) loss forward + backward, batch {args.batch}, {args.size} px, YOLOv7-L levels, 80 classes, '
          f'{args.layout} layout')
    device = torch.device(args.device)
    loss = MODELS.build(dict(type='YOLOv7Loss', num_classes=80, img_size=args.size,
                             aux_assigner=None)).to(device)
    reference = ReferenceLoss(num_classes=80, img_size=args.size)
    for num_gts in args.gts:
        prob = assigner_bench.random_problem(args.batch, num_gts, img_size=args.size)
        preds = [(head_layout(p) if args.layout == 'head' else p).to(device).requires_grad_()
                 for p in prob.pop('preds')]
        prob = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in prob.items()}

        def fwd_bwd(fn=None):
            for p in preds:
                p.grad = None
            sum(fn(preds, **prob).values()).backward()

        t_ours, t_ref = median_seconds([lambda: fwd_bwd(loss), lambda: fwd_bwd(reference)],
                                       args.repeats, device)
        print_row(f'YOLOv7Loss, {num_gts} GTs/img', args.batch, t_ours, 'per-image reference', t_ref)


def bench_step(args, model: nn.Module, step: TrainStep) -> float:
    """Prints (c); returns the synthetic step's median seconds."""
    device = next(model.parameters()).device
    num_gts = args.gts[0]
    print(f'(c) full step, synthetic batch {args.batch} x {args.size}, {num_gts} GTs/img, '
          f'{Path(args.config).stem}')
    inputs = torch.randn(args.batch, 3, args.size, args.size, device=device)
    samples = random_gt_samples(args.batch, num_gts, args.size, model.bbox_head.num_classes,
                                device=device)
    head = model.bbox_head
    ours = head.loss_module
    variants = {'reference': ReferenceLoss(num_classes=head.num_classes, img_size=args.size),
                'stand-in': StandInLoss()}

    def run(loss_module):
        head.loss_module = loss_module
        step(inputs, samples)

    times = median_seconds([lambda: run(ours)] + [lambda m=m: run(m) for m in variants.values()],
                           args.repeats, device)
    head.loss_module = ours
    print_row('YOLOv7Loss', args.batch, times[0], 'per-image reference loss', times[1])
    print(f'  stand-in loss (no assignment, no loss terms): {args.batch / times[2]:.2f} img/s; loss share '
          f'of the step {1 - times[2] / times[0]:.0%} (reference loss: {1 - times[2] / times[1]:.0%}; '
          f'a negative share is run-to-run noise)')
    return times[0]


def bench_loader(args, model: nn.Module, step: TrainStep, splits: dict, t_synthetic: float) -> None:
    print(f'(d) full step with the real dataloader ({args.workers} workers, BCCD images)')
    cfg = load_config(args.config, size=args.size, batch=args.batch, workers=args.workers,
                      splits=splits)
    batches = endless_batches(cfg)

    def real_step():
        data = model.data_preprocessor(next(batches), True)
        step(data['inputs'], data['data_samples'])

    t_real, = median_seconds([real_step], args.repeats, next(model.parameters()).device)
    print_row('real dataloader', args.batch, t_real, 'synthetic batches (c)', t_synthetic)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init_default_scope('mmdet')
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init report
    print(f'{args.config}, device {device}, {torch.get_num_threads()} threads, median of '
          f'{args.repeats}, amp {args.amp}, channels_last {args.channels_last}, compile {args.compile}')
    with tempfile.TemporaryDirectory() as tmp:
        needs_data = {'data', 'loader'} & set(args.parts)
        splits = convert_bccd(Path(tmp)) if needs_data else None
        if 'data' in args.parts:
            bench_data(args, splits)
            if args.official_repo:
                bench_official(args, Path(tmp))
        if 'cache' in args.parts:
            bench_cache(args, Path(tmp))
        if 'loss' in args.parts:
            bench_loss(args)
        if {'step', 'loader'} & set(args.parts):
            options = dict(channels_last=args.channels_last, compile_backbone_neck=args.compile)
            cfg = load_config(args.config, size=args.size, batch=args.batch, workers=args.workers,
                              model_options=options)
            model = build_model(cfg, device)
            step = TrainStep(model, amp=AMP_DTYPES.get(args.amp))
            t_synthetic = bench_step(args, model, step)
            if 'loader' in args.parts:
                bench_loader(args, model, step, splits, t_synthetic)


if __name__ == '__main__':
    main()
