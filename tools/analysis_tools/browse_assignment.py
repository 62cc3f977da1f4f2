"""See YOLOv7's label assignment on real images: candidates, positives, objectness targets.

    python tools/analysis_tools/browse_assignment.py CONFIG [--checkpoint CKPT] [--dataset train|val]
           [--index I [I ...] | --image PATH] [--out DIR] [--tag TAG]
           [--constraint-gt G [--constraint-level L]] [--cfg-options k=v ...]

For each image of the config's dataset (loaded with the config's *test* pipeline: resize and letterbox,
no random augmentation, so the boxes are the network input's), the model is run in eval mode and the
loss's own assigners (``bbox_head.loss_module.assigner`` / ``aux_assigner``) assign the GTs from its
predictions, exactly as the loss does (``yolov7_mmdet.visualization.assign_image``). Written to
``--out`` (default ``work_dirs/browse_assignment``):

* ``<image>[_<tag>]_assignment.png``: one row per level; left the lead head's fine candidates (3 cells per GT,
  dashed blue) and its SimOTA positives (filled red), right the aux head's coarse candidates (5 cells,
  dashed orange) and positives (filled purple) -- for P5 models without an aux head, the coarse
  candidates only. A positive is labelled ``a<anchor> <objectness target>`` (the CIoU the loss trains
  its objectness towards).
* ``<image>[_<tag>]_summary.txt`` (also printed): per GT and level, fine / coarse candidates and positives;
* with ``--constraint-gt G``: ``<image>[_<tag>]_gt<G>_decoder_constraint.png``, for each fine and
  coarse candidate cell of GT G on one level, the region its decoder can reach (-0.5 .. 1.5 cells) and
  whether the GT centre lies in it.

Without ``--checkpoint`` the model has its initial weights (epoch 0); with one, the positives come from
the trained model's predictions, so the dynamic k (positives per GT) grows as the model learns.
``--image`` picks the dataset image with that file name (its annotations are needed). Real data from
``../shared`` works after ``tools/dataset_converters/to_coco.py``, with ``--cfg-options`` pointing
the split's dataset at the JSON (see ``docs/label_assignment.md``).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import os.path as osp
import sys
from typing import Optional, Sequence

import torch
from mmengine.config import Config, DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import yolov7_mmdet  # noqa: E402,F401  (registers the plugin)
from yolov7_mmdet.visualization import (assign_image, assignment_summary, busiest_level,  # noqa: E402
                                       constraint_cells, draw_assignment)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw YOLOv7 label assignments on dataset images')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--checkpoint', help='weights to predict with (default: initial weights)')
    parser.add_argument('--dataset', choices=('train', 'val'), default='val',
                        help='which split of the config (always with the test pipeline)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--index', type=int, nargs='+', default=[0], help='dataset indices')
    which.add_argument('--image', help='the dataset image with this file name (or path)')
    parser.add_argument('--out', default=osp.join('work_dirs', 'browse_assignment'), help='output dir')
    parser.add_argument('--constraint-gt', type=int, metavar='G',
                        help='also draw the decoder constraint of GT G (index in the summary)')
    parser.add_argument('--constraint-level', type=int, metavar='L',
                        help='level index for --constraint-gt (default: its busiest level)')
    parser.add_argument('--tag', default='', help='added to the output names: <image>_<tag>_assignment.png')
    parser.add_argument('--seed', type=int, default=0, help='seed of the initial weights')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    return parser.parse_args(argv)


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """The config in the square evaluation protocol with ``--cfg-options`` applied; mmdet's scope
    made the default."""
    from mmengine.registry import init_default_scope

    from yolov7_mmdet.datasets.rect_eval import set_eval_protocol

    cfg = Config.fromfile(config)
    set_eval_protocol(cfg, 'square')  # one image at a time, letterboxed as in training
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def build_dataset(cfg: Config, split: str):
    """The split's dataset with the config's test pipeline (deterministic, boxes of the input)."""
    from mmdet.registry import DATASETS

    dataset_cfg = cfg[f'{split}_dataloader'].dataset
    while 'dataset' in dataset_cfg:  # unwrap mosaic / repeat wrappers of the train split
        dataset_cfg = dataset_cfg.dataset
    dataset_cfg = dataset_cfg.copy()
    dataset_cfg.pipeline = boxes_follow_image(cfg.test_dataloader.dataset.pipeline)
    dataset_cfg.test_mode = False  # the split's filter_cfg applies (e.g. no GT-less images, as in training)
    return DATASETS.build(dataset_cfg)


def boxes_follow_image(pipeline: list) -> list:
    """The test pipeline with the annotations loaded right after the image, so that resize and
    letterbox move the boxes into the network input (evaluation loads them last, in image pixels)."""
    load_annotations = [t for t in pipeline if t['type'] == 'LoadAnnotations']
    if not load_annotations:
        raise SystemExit('the test pipeline has no LoadAnnotations: the tool needs the GT boxes')
    rest = [t for t in pipeline if t['type'] != 'LoadAnnotations']
    return rest[:1] + load_annotations + rest[1:]


def find_image(dataset, image: str) -> int:
    """Index of the dataset entry whose image path ends with ``image``; a clear error otherwise."""
    name = osp.normpath(image)
    paths = [osp.normpath(dataset.get_data_info(index)['img_path']) for index in range(len(dataset))]
    for matches in ([i for i, path in enumerate(paths) if path == name or path.endswith(os.sep + name)],
                    [i for i, path in enumerate(paths) if osp.basename(path) == osp.basename(name)]):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise SystemExit(f'--image {image}: {len(matches)} images match ({paths[matches[0]]}, '
                             f'{paths[matches[1]]}, ...): give more of the path')
    raise SystemExit(f'--image {image}: not in the {len(dataset)} images of this dataset split '
                     '(the tool needs its annotations; point --cfg-options at a dataset holding it)')


def build_model(cfg: Config, checkpoint: Optional[str], seed: int):
    """The config's detector in eval mode, with the checkpoint's weights or seeded initial ones."""
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger
    from mmengine.runner import load_checkpoint

    from yolov7_mmdet.utils.launch import check_checkpoint_fits

    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    if checkpoint is None:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # init_weights logs every parameter at INFO
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        check_checkpoint_fits(model, checkpoint)
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return model.eval()


@torch.no_grad()
def browse_sample(model, sample: dict):
    """Predict on one dataset sample and assign its GTs as the loss would.

    Returns:
        (ImageAssignment, RGB network input (H, W, 3) uint8, image path).
    """
    data = model.data_preprocessor(dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]),
                                   training=False)
    data_sample = data['data_samples'][0]
    lead_maps, aux_maps = model.bbox_head(model.extract_feat(data['inputs']))
    assignment = assign_image(model.bbox_head, lead_maps, aux_maps, data_sample.gt_instances,
                              tuple(data_sample.batch_input_shape))
    image = sample['inputs'].permute(1, 2, 0).flip(-1).numpy()  # (3, H, W) BGR -> (H, W, 3) RGB
    return assignment, image, data_sample.img_path


def main(argv: Optional[Sequence[str]] = None) -> list[str]:
    """Run the tool; returns the written PNG paths."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    dataset = build_dataset(cfg, args.dataset)
    indices = [find_image(dataset, args.image)] if args.image else args.index
    for index in indices:
        if not 0 <= index < len(dataset):
            raise SystemExit(f'--index {index}: the {args.dataset} split has {len(dataset)} images')
    model = build_model(cfg, args.checkpoint, args.seed)
    class_names = dataset.metainfo.get('classes')
    os.makedirs(args.out, exist_ok=True)
    weights = osp.basename(args.checkpoint) if args.checkpoint else 'initial weights'
    written = []
    for index in indices:
        assignment, image, img_path = browse_sample(model, dataset[index])
        stem = osp.join(args.out, '_'.join(filter(None, [osp.splitext(osp.basename(img_path))[0], args.tag])))
        summary = assignment_summary(assignment, class_names)
        print(f'{img_path} ({weights})\n{summary}\n')
        with open(f'{stem}_summary.txt', 'w') as f:
            f.write(summary + '\n')
        draw_assignment(image, assignment, f'{stem}_assignment.png', class_names=class_names,
                        title=f'{osp.basename(img_path)} - {osp.basename(args.config)} - {weights}')
        written.append(f'{stem}_assignment.png')
        if args.constraint_gt is not None:
            written.append(draw_constraint(assignment, args.constraint_gt, args.constraint_level, stem))
    return written


def draw_constraint(assignment, gt: int, level: Optional[int], stem: str) -> str:
    """Draw the decoder constraint of one GT of the image on one level; returns the PNG path."""
    from yolov7_mmdet.visualization.doc_figures import draw_decoder_constraint

    num_gts = assignment.gt_bboxes.shape[0]
    if not 0 <= gt < num_gts or not assignment.gt_valid[gt]:
        raise SystemExit(f'--constraint-gt {gt}: the image has {num_gts} GTs; valid ones are '
                         f'{assignment.gt_valid.nonzero().flatten().tolist()}')
    level = busiest_level(assignment, gt) if level is None else level
    if not 0 <= level < len(assignment.level_shapes):
        raise SystemExit(f'--constraint-level {level}: the model has {len(assignment.level_shapes)} levels')
    cells = constraint_cells(assignment, level, gt)
    if not cells:
        raise SystemExit(f'--constraint-gt {gt}: no candidate cell on level {level} (no anchor fits)')
    stride = float(assignment.strides[level])
    out_file = f'{stem}_gt{gt}_decoder_constraint.png'
    draw_decoder_constraint(out_file, gt_box=assignment.gt_bboxes[gt].tolist(), stride=stride, cells=cells,
                            title=f'GT {gt} on P{int(math.log2(stride))}')
    return out_file


if __name__ == '__main__':
    main()
