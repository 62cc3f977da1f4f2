"""``DatasetClassesCheckHook``: stop before training when ``num_classes`` does not fit the data.

A head with more classes than the dataset trains without error and wastes outputs; one with fewer
fails deep inside the loss. Enable with ``custom_hooks = [dict(type='DatasetClassesCheckHook')]``.

It also refuses data that would train on nothing without a word under mmdet's ``CocoDataset``
(which keeps only the annotations whose category *name* is one of the configured classes): an
annotation file none of whose categories is a configured class (``categories: []``, other names),
in any split; and a training set without a single box. The latter is refused, not warned about:
a detector trained on no boxes only learns that nothing is there, losses look normal
(``loss_box: 0.0000``) and a warning scrolls away with the log; background images are fine as long
as some image has a box. ``allow_no_boxes=True`` lets such a training set through with a warning.

It differs from mmdet's ``NumClassCheckHook`` in what a user sees: it raises a ``ValueError`` (not
an ``assert``, which ``python -O`` removes) that names the module path and the config key to fix
and lists the dataset's class names; it checks once before the loops start (``before_train``,
``before_val``, ``before_test``) instead of every epoch, and it checks the test set too.
"""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS

from ...datasets.utils import leaf_datasets

# Modules whose ``num_classes`` is not the dataset's (an RPN is class-agnostic).
_SKIPPED_MODULE_SUFFIXES = ('rpn_head',)


@HOOKS.register_module()
class DatasetClassesCheckHook(Hook):
    """Raise a clear error when ``num_classes`` or the annotations do not fit (see the module doc).

    Args:
        allow_no_boxes (bool): Train on a training set without any box, with a warning, instead of
            refusing it. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, *, allow_no_boxes: bool = False) -> None:
        self.allow_no_boxes = allow_no_boxes

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        check_num_classes(runner.model, dataset, 'train')
        check_categories_match(dataset, 'train')
        try:
            check_has_boxes(dataset, 'train')
        except ValueError as error:
            if not self.allow_no_boxes:
                raise
            print_log(f'{error} (allowed by allow_no_boxes=True)', logger='current',
                      level=logging.WARNING)

    def before_val(self, runner) -> None:
        check_num_classes(runner.model, runner.val_dataloader.dataset, 'val')
        check_categories_match(runner.val_dataloader.dataset, 'val')

    def before_test(self, runner) -> None:
        check_num_classes(runner.model, runner.test_dataloader.dataset, 'test')
        check_categories_match(runner.test_dataloader.dataset, 'test')


def check_num_classes(model, dataset, split: Optional[str] = None) -> None:
    """Raise ``ValueError`` if a module of ``model`` has ``num_classes != len(dataset classes)``.

    Args:
        model (nn.Module): The detector (model wrappers are unwrapped).
        dataset: Any dataset with ``metainfo['classes']`` (mmdet datasets and their wrappers).
        split (str, optional): Named in the message (``'train'``, ``'val'``, ``'test'``).
    """
    if is_model_wrapper(model):
        model = model.module
    classes = dataset.metainfo.get('classes')
    where = f'the {split} dataset' if split else 'the dataset'
    if not classes or isinstance(classes, str):
        raise ValueError(f'{where} ({type(dataset).__name__}) has no tuple of class names in '
                         f"metainfo['classes'] (got {classes!r}); set metainfo=dict(classes=(...,))")
    mismatched = [(name, module.num_classes) for name, module in model.named_modules()
                  if isinstance(getattr(module, 'num_classes', None), int)
                  and not name.endswith(_SKIPPED_MODULE_SUFFIXES)
                  and module.num_classes != len(classes)]
    if mismatched:
        found = ', '.join(f'model.{name}.num_classes={count}' for name, count in mismatched)
        raise ValueError(
            f'{found}, but {where} ({type(dataset).__name__}) has {len(classes)} '
            f'class{"es" if len(classes) != 1 else ""}: '
            f'{tuple(classes)}. Set num_classes={len(classes)} in the model config '
            f'(e.g. model.bbox_head.num_classes={len(classes)}).')


def _describe(dataset) -> str:
    return f"{type(dataset).__name__}({getattr(dataset, 'ann_file', '?')!r})"


def check_categories_match(dataset, split: Optional[str] = None) -> None:
    """Raise ``ValueError`` if a COCO-style dataset found none of its classes in its annotation file.

    mmdet's ``CocoDataset`` maps the configured class names to the file's category ids
    (``cat_ids``) and silently drops every annotation of another category.
    """
    where = f'the {split} dataset' if split else 'the dataset'
    for leaf in leaf_datasets(dataset):
        if hasattr(leaf, 'full_init'):  # a lazily initialised dataset has no cat_ids yet
            leaf.full_init()
        if getattr(leaf, 'cat_ids', None) == []:
            raise ValueError(
                f'{where} {_describe(leaf)}: none of the classes '
                f"{tuple(leaf.metainfo.get('classes') or ())} is a category name of the annotation "
                'file (its `categories` are empty or named differently), so every box would be '
                'dropped. Fix the file, or set metainfo=dict(classes=...) to its category names.')


def _has_box(leaf) -> bool:
    """Whether any image of an mmengine ``BaseDataset`` has a box that is not ignored."""
    if hasattr(leaf, 'full_init'):
        leaf.full_init()
    for index in range(len(leaf)):
        instances = leaf.get_data_info(index).get('instances', [])
        if any(not instance.get('ignore_flag', 0) for instance in instances):
            return True
    return False


def check_has_boxes(dataset, split: Optional[str] = None) -> None:
    """Raise ``ValueError`` if no image of the dataset has a box.

    Stops at the first image with a box. Datasets without mmengine's ``get_data_info`` are not
    checked.
    """
    leaves = [leaf for leaf in leaf_datasets(dataset) if hasattr(leaf, 'get_data_info')]
    if not leaves or any(_has_box(leaf) for leaf in leaves):
        return
    where = f'the {split} dataset' if split else 'the dataset'
    images = sum(len(leaf) for leaf in leaves)
    raise ValueError(
        f'{where} ({", ".join(_describe(leaf) for leaf in leaves)}) has {images} images and not one '
        'box: training would only learn that nothing is there. Check ann_file, the annotations\' '
        'category ids and metainfo classes; DatasetClassesCheckHook(allow_no_boxes=True) allows it.')
