"""``DatasetClassesCheckHook``: stop before training when ``num_classes`` does not fit the data.

A head with more classes than the dataset trains without error and wastes outputs; one with fewer
fails deep inside the loss. Enable with ``custom_hooks = [dict(type='DatasetClassesCheckHook')]``.

It differs from mmdet's ``NumClassCheckHook`` in what a user sees: it raises a ``ValueError`` (not
an ``assert``, which ``python -O`` removes) that names the module path and the config key to fix
and lists the dataset's class names; it checks once before the loops start (``before_train``,
``before_val``, ``before_test``) instead of every epoch, and it checks the test set too.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS

# Modules whose ``num_classes`` is not the dataset's (an RPN is class-agnostic).
_SKIPPED_MODULE_SUFFIXES = ('rpn_head',)


@HOOKS.register_module()
class DatasetClassesCheckHook(Hook):
    """Raise a clear error when a module's ``num_classes`` differs from the dataset's class count."""

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        check_num_classes(runner.model, runner.train_dataloader.dataset, 'train')

    def before_val(self, runner) -> None:
        check_num_classes(runner.model, runner.val_dataloader.dataset, 'val')

    def before_test(self, runner) -> None:
        check_num_classes(runner.model, runner.test_dataloader.dataset, 'test')


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
