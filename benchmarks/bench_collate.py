"""Main-process cost of a training batch's collate + data preprocessing: ``yolov7_collate`` vs mmengine's.

    python benchmarks/bench_collate.py [--batch 16] [--size 640] [--repeats 5] [--device cpu]

The data loader's workers run the collate function; the main process then runs mmdet's
``DetDataPreprocessor`` (BGR->RGB, /255, pad to 32). With ``pseudo_collate`` the preprocessor gets a
list and works image by image; with ``yolov7_collate`` it gets one stacked uint8 tensor. Prints the
median times of both (preprocessing = main process; collate = a worker) and their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData

from yolov7_mmdet.datasets.collate import yolov7_collate


def make_batch(batch: int, size: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size)))
        sample.gt_instances = InstanceData(bboxes=torch.rand(10, 4, generator=generator) * size,
                                           labels=torch.zeros(10, dtype=torch.long))
        image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
        samples.append(dict(inputs=image, data_samples=sample))
    return samples


def time_it(collate, samples, preprocessor, repeats: int) -> tuple[float, float]:
    collate_times, preprocess_times = [], []
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        data = collate(samples)
        middle = time.perf_counter()
        preprocessor(data, training=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        end = time.perf_counter()
        collate_times.append(middle - start)
        preprocess_times.append(end - middle)
    return statistics.median(collate_times[1:]), statistics.median(preprocess_times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    preprocessor = DetDataPreprocessor(mean=[0, 0, 0], std=[255, 255, 255], bgr_to_rgb=True,
                                       pad_size_divisor=32).to(args.device)
    samples = make_batch(args.batch, args.size)
    results = {name: time_it(fn, samples, preprocessor, args.repeats)
               for name, fn in (('pseudo_collate', pseudo_collate), ('yolov7_collate', yolov7_collate))}
    for name, (collate, preprocess) in results.items():
        print(f'{name:15s} collate (worker) {collate * 1e3:7.1f} ms   '
              f'preprocess (main) {preprocess * 1e3:7.1f} ms')
    ratio = results['pseudo_collate'][1] / results['yolov7_collate'][1]
    print(f'main-process preprocessing: yolov7_collate is {ratio:.2f}x faster '
          f'(batch {args.batch}, {args.size}x{args.size}, {args.device})')


if __name__ == '__main__':
    main()
