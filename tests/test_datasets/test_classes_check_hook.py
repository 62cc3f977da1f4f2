"""A model whose num_classes does not fit the dataset's classes is stopped with a clear error."""
from types import SimpleNamespace

import pytest
from torch import nn

from yolov7_mmdet.datasets.sources import DatasetClassesCheckHook, check_num_classes


class Head(nn.Module):

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes


class Detector(nn.Module):

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.rpn_head = Head(1)  # class-agnostic: never checked
        self.bbox_head = Head(num_classes)


def dataset(classes):
    return SimpleNamespace(metainfo=dict(classes=classes))


def test_matching_num_classes_passes():
    check_num_classes(Detector(2), dataset(('cat', 'dog')))


def test_wrong_num_classes_names_module_config_key_and_classes():
    with pytest.raises(ValueError) as error:
        check_num_classes(Detector(80), dataset(('raccoon',)), 'train')
    message = str(error.value)
    assert 'model.bbox_head.num_classes=80' in message
    assert 'the train dataset' in message and "('raccoon',)" in message
    assert 'model.bbox_head.num_classes=1' in message  # the fix


@pytest.mark.parametrize('classes', [None, 'raccoon', ()])
def test_missing_or_string_classes_are_errors(classes):
    with pytest.raises(ValueError, match="metainfo\\['classes'\\]"):
        check_num_classes(Detector(1), dataset(classes))


@pytest.mark.parametrize('stage, loader', [('before_train', 'train_dataloader'),
                                           ('before_val', 'val_dataloader'),
                                           ('before_test', 'test_dataloader')])
def test_hook_checks_each_stage_with_its_own_dataset(stage, loader):
    good = SimpleNamespace(dataset=dataset(('a', 'b', 'c')))
    runner = SimpleNamespace(model=Detector(3), **{name: good for name in (
        'train_dataloader', 'val_dataloader', 'test_dataloader')})
    hook = DatasetClassesCheckHook()
    getattr(hook, stage)(runner)
    setattr(runner, loader, SimpleNamespace(dataset=dataset(('a', 'b'))))
    with pytest.raises(ValueError, match='num_classes=3'):
        getattr(hook, stage)(runner)


def test_hook_is_registered():
    from mmdet.registry import HOOKS
    assert isinstance(HOOKS.build(dict(type='DatasetClassesCheckHook')), DatasetClassesCheckHook)


def test_real_yolov7_tiny_config_with_coco_num_classes_on_one_class_data():
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from yolov7_mmdet import config_path
    cfg = Config.fromfile(config_path('yolov7/yolov7_tiny_8xb16-300e_coco.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match=r'model\.bbox_head\.num_classes=80.*has 1 class: '):
        check_num_classes(model, dataset(('raccoon',)), 'train')
