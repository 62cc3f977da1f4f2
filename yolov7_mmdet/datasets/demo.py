"""A small detection dataset drawn on the fly: coloured shapes on textured backgrounds, in COCO format.

The project's main job (``tools/main_job.py``) trains and evaluates on it, so that the whole loop runs
anywhere without a download. Everything is drawn from one seeded ``numpy`` generator, so the same
arguments give the same images and annotations on every machine (JPEG bytes may differ across
OpenCV builds; the annotations never do).

Each image (random size around ``image_size``) gets a background of smooth colour gradients, noise
and random lines, then 1-6 objects of 4 classes (``circle``, ``square``, ``triangle``, ``cross``)
with random size (about 10%-45% of the short side) and position. Each class has its own hue (red,
green, blue, yellow; brightness and saturation jittered), so that a small model learns it within the
few hundred iterations of the demo. An object overlaps earlier ones by at most 20% of its box (IoU),
so every annotated object stays visible.

Layout written under ``root``::

    images/train/000000.jpg ...   images/val/000000.jpg ...
    annotations/train.json         annotations/val.json      (COCO: images, annotations, categories)

Command line: ``python -m yolov7_mmdet.datasets.demo ROOT [--num-train N] [--num-val N]``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle', 'cross')
#: Bumped whenever the drawing changes, so that an old copy on disk is regenerated.
GENERATOR_VERSION = 2
MAX_OBJECTS = 6
MAX_IOU = 0.2
#: OpenCV hue (0-180) of each class: red, green, blue, yellow.
CLASS_HUES = (0, 60, 120, 30)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour gradient + Gaussian noise + a few random lines, BGR uint8 ``(H, W, 3)``."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    corner, dx, dy = (rng.uniform(40, 215, size=3).astype(np.float32) for _ in range(3))
    img = corner + (dx - corner) * xs + (dy - corner) * ys * 0.5
    img = img + rng.normal(0.0, 12.0, size=(height, width, 3)).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 9))):
        p1 = tuple(int(v) for v in rng.integers(0, (width, height)))
        p2 = tuple(int(v) for v in rng.integers(0, (width, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.line(img, p1, p2, colour, thickness=int(rng.integers(1, 4)))
    return img


def _draw_shape(img: np.ndarray, label: int, box: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Draw class ``label`` filling the box ``[x1, y1, x2, y2]`` (integers) with ``colour``."""
    x1, y1, x2, y2 = (int(v) for v in box)
    cx, cy, w, h = (x1 + x2) // 2, (y1 + y2) // 2, x2 - x1, y2 - y1
    name = CLASSES[label]
    if name == 'circle':
        cv2.ellipse(img, (cx, cy), (w // 2, h // 2), 0, 0, 360, colour, thickness=-1)
    elif name == 'square':
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, thickness=-1)
    elif name == 'triangle':
        points = np.array([[cx, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]], dtype=np.int32)
        cv2.fillPoly(img, [points], colour)
    else:  # cross: a horizontal and a vertical bar, each a third of the box thick
        cv2.rectangle(img, (x1, cy - h // 6), (x2 - 1, cy + h // 6), colour, thickness=-1)
        cv2.rectangle(img, (cx - w // 6, y1), (cx + w // 6, y2 - 1), colour, thickness=-1)


def _class_colour(rng: np.random.Generator, label: int) -> tuple[int, int, int]:
    """A BGR colour of the class's hue (+-8) with random saturation and brightness."""
    hue = (CLASS_HUES[label] + int(rng.integers(-8, 9))) % 180
    hsv = np.array([[[hue, rng.integers(150, 256), rng.integers(120, 256)]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one box ``(4,)`` with ``(N, 4)`` boxes, all ``[x1, y1, x2, y2]``."""
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    return inter / (area + np.prod(others[:, 2:] - others[:, :2], axis=1) - inter)


def draw_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray,
                                                                            np.ndarray]:
    """Draw one image; returns ``(img BGR uint8, boxes (N, 4) xyxy float, labels (N,) int)``."""
    img = _background(rng, height, width)
    boxes, labels = [], []
    short = min(height, width)
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        size = rng.uniform(0.1, 0.45) * short
        aspect = rng.uniform(0.7, 1.4)
        w, h = int(size * aspect), int(size / aspect)
        x1, y1 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        box = np.array([x1, y1, x1 + w, y1 + h], dtype=np.float64)
        if boxes and _iou(box, np.stack(boxes)).max() > MAX_IOU:
            continue
        label = int(rng.integers(len(CLASSES)))
        colour = _class_colour(rng, label)
        _draw_shape(img, label, box, colour)
        boxes.append(box)
        labels.append(label)
    return img, np.stack(boxes), np.array(labels, dtype=np.int64)


def _write_split(root: Path, split: str, num_images: int, image_size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    image_dir = root / 'images' / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        height = int(image_size * rng.uniform(0.75, 1.0))
        width = int(image_size * rng.uniform(0.75, 1.25))
        img, boxes, labels = draw_image(rng, height, width)
        file_name = f'{image_id:06d}.jpg'
        cv2.imwrite(str(image_dir / file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                                    bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                                    iscrowd=0))
    coco = dict(
        info=dict(description='yolov7_mmdet demo shapes', version=GENERATOR_VERSION, seed=seed,
                  num_images=num_images, image_size=image_size),
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)])
    ann_file = root / 'annotations' / f'{split}.json'
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(coco))
    return ann_file


def _is_current(ann_file: Path, *, num_images: int, image_size: int, seed: int) -> bool:
    """Whether ``ann_file`` was written by this generator with these arguments (and its images exist)."""
    if not ann_file.is_file():
        return False
    info = json.loads(ann_file.read_text()).get('info', {})
    wanted = dict(version=GENERATOR_VERSION, seed=seed, num_images=num_images, image_size=image_size)
    if any(info.get(key) != value for key, value in wanted.items()):
        return False
    image_dir = ann_file.parent.parent / 'images' / ann_file.stem
    return image_dir.is_dir() and len(list(image_dir.glob('*.jpg'))) >= num_images


def make_demo_dataset(root: str | Path, *, num_train: int = 400, num_val: int = 100,
                      image_size: int = 320, seed: int = 0) -> dict[str, Path]:
    """Write the demo dataset under ``root`` unless an identical copy is already there.

    Args:
        root: Output folder (created).
        num_train: Number of training images.
        num_val: Number of validation images (drawn from a different seed stream).
        image_size: Nominal image size; heights vary in ``[0.75, 1] x`` and widths in
            ``[0.75, 1.25] x`` of it, so that the letterbox has work to do.
        seed: Seed of the generator; the val split uses ``seed + 1``.

    Returns:
        ``{'train': path of train.json, 'val': path of val.json}``.
    """
    if num_train < 1 or num_val < 1 or image_size < 64:
        raise ValueError(f'need num_train, num_val >= 1 and image_size >= 64, got {num_train}, '
                         f'{num_val}, {image_size}')
    root = Path(root)
    paths = {}
    for split, num_images, split_seed in (('train', num_train, seed), ('val', num_val, seed + 1)):
        ann_file = root / 'annotations' / f'{split}.json'
        if not _is_current(ann_file, num_images=num_images, image_size=image_size, seed=split_seed):
            _write_split(root, split, num_images, image_size, split_seed)
        paths[split] = ann_file
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--image-size', type=int, default=320)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_demo_dataset(args.root, num_train=args.num_train, num_val=args.num_val,
                              image_size=args.image_size, seed=args.seed)
    for split, path in paths.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
