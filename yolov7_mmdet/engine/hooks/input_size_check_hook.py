"""``InputSizeCheckHook``: stop before a loop starts when the config's input sizes disagree.

A YOLOv7 config states its input size in many places: the mosaic, affine, loading and paste-in
``img_scale`` of training, the ``Resize`` / ``YOLOv7Letterbox`` / ``YOLOv7ResizeLongSide``
``scale`` of validation, testing and test-time augmentation (and the ``img_size`` of the official
protocol's collate), and the loss's ``img_size`` (the objectness gain is scaled by ``(img_size / 640)^2``).
mmengine does not re-evaluate a base config's variables in a child config, so a child that changes
``img_scale`` without re-assigning every field leaves some at the old size, and trains or evaluates
silently wrong (a model trained at 128 px tested at 640 px scores 0 mAP). This hook compares every
size of the built runner's config with the loss's ``img_size`` and with the head's largest stride
(the network needs sizes divisible by it) and raises one ``ValueError`` listing each disagreement.

Which sections: ``train_dataloader`` and ``val_dataloader`` before training, ``val_dataloader``
before each validation, ``test_dataloader`` before testing (with ``--tta`` that is the
``tta_pipeline``). Models without a YOLOv7 loss (``img_size``) are not checked.
"""
from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS

# Transform type -> the argument that holds its output size (width, height); None (the loader's
# default: the wrapper sets it to the mosaic's) is not checked. The official evaluation's
# rectangular-batch collate is checked with them (its ``img_size``).
SIZED_TRANSFORMS = {'YOLOv7Mosaic': 'img_scale', 'YOLOv7RandomAffine': 'img_scale',
                    'YOLOv7LoadImageAndAnnotations': 'img_scale', 'YOLOv7PasteIn': 'img_scale',
                    'YOLOv7Letterbox': 'scale', 'Resize': 'scale', 'YOLOv7ResizeLongSide': 'scale',
                    'yolov7_rect_collate': 'img_size'}


@HOOKS.register_module()
class InputSizeCheckHook(Hook):
    """Raise a clear error when the pipelines' sizes, the loss ``img_size`` and the strides disagree."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_runner_input_sizes(runner, ('train_dataloader', 'val_dataloader'))

    def before_val(self, runner) -> None:
        check_runner_input_sizes(runner, ('val_dataloader',))

    def before_test(self, runner) -> None:
        check_runner_input_sizes(runner, ('test_dataloader',))


def check_runner_input_sizes(runner, sections: Sequence[str]) -> None:
    """Check the ``sections`` of ``runner.cfg`` against ``runner.model`` (see the module docstring)."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    model = getattr(model, 'module', model)  # DetTTAModel wraps the detector as ``module``
    head = getattr(model, 'bbox_head', None)
    img_size = getattr(getattr(head, 'loss_module', None), 'img_size', None)
    if img_size is None:
        return
    max_stride = int(max(head.strides.tolist())) if hasattr(head, 'strides') else 1
    problems = input_size_problems({name: runner.cfg.get(name) for name in sections},
                                   img_size=int(img_size), max_stride=max_stride)
    if problems:
        raise ValueError(
            f'The input sizes of this config disagree with the model, which is set up for '
            f'{img_size} x {img_size} (model.bbox_head.loss.img_size={img_size}, largest stride '
            f'{max_stride}):\n  ' + '\n  '.join(problems) + '\nDerive every size from one '
            'img_scale variable in the config that sets it (mmengine does not re-evaluate a base '
            "config's variables), as configs/yolov7/yolov7_tiny_custom.py does.")


def input_size_problems(sections: dict, *, img_size: int, max_stride: int) -> List[str]:
    """Each transform size in ``sections`` (config name -> config node) that is not ``img_size``
    square, or not divisible by ``max_stride``, as ``'<where>: <Type> <arg>=<size>'``."""
    problems = []
    for section, node in sections.items():
        for where, transform_type, size in sized_transforms(node, section):
            arg = SIZED_TRANSFORMS[transform_type]
            if size != (img_size, img_size):
                problems.append(f'{where}: {transform_type} {arg}={size}, not '
                                f'{(img_size, img_size)}')
            elif img_size % max_stride:
                problems.append(f'{where}: {transform_type} {arg}={size} is not a multiple of '
                                f'the stride {max_stride}')
    return problems


def sized_transforms(node, where: str) -> Iterator[Tuple[str, str, Tuple[int, int]]]:
    """``(path in the config, transform type, (width, height))`` of every sized transform under
    ``node`` (nested lists and dicts: dataset wrappers, mixup's ``pre_transform``, TTA lists)."""
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from sized_transforms(item, f'{where}[{index}]')
    elif isinstance(node, dict):
        arg = SIZED_TRANSFORMS.get(node.get('type'))
        if arg is not None and node.get(arg) is not None:
            yield where, node['type'], as_width_height(node[arg])
        for key, value in node.items():
            yield from sized_transforms(value, f'{where}.{key}')


def as_width_height(size) -> Tuple[int, int]:
    """A transform size as ``(width, height)`` (an int is a square)."""
    if isinstance(size, (int, float)):
        return int(size), int(size)
    width, height = size
    return int(width), int(height)
