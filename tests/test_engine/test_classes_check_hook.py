"""A model whose num_classes does not fit the dataset's classes is stopped with a clear error."""
import json
import logging
from types import SimpleNamespace

import pytest
from torch import nn

from yolov7_mmdet.engine.hooks import DatasetClassesCheckHook, check_num_classes


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


# Annotation files that train on zero boxes under mmdet's CocoDataset without a word.

def write_coco(path, *, categories, annotations):
    images = [dict(id=index, file_name=f'{index}.jpg', width=64, height=64) for index in (1, 2)]
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return str(path)


BOX = dict(id=1, image_id=1, category_id=1, bbox=[4, 4, 20, 20], area=400, iscrowd=0)
RACCOON = [dict(id=1, name='raccoon')]


def coco_dataset(ann_file, classes=('raccoon',)):
    from mmdet.datasets import CocoDataset
    return CocoDataset(ann_file=ann_file, metainfo=dict(classes=classes), data_prefix=dict(img=''),
                       filter_cfg=dict(filter_empty_gt=False), pipeline=[])


def hook_runner(dataset, num_classes=1):
    loader = SimpleNamespace(dataset=dataset)
    return SimpleNamespace(model=Detector(num_classes), train_dataloader=loader,
                           val_dataloader=loader, test_dataloader=loader)


@pytest.mark.parametrize('categories', [[], [dict(id=1, name='Raccoon')]])
@pytest.mark.parametrize('stage', ['before_train', 'before_val', 'before_test'])
def test_file_without_the_configured_categories_is_refused(tmp_path, categories, stage):
    ann_file = write_coco(tmp_path / 'ann.json', categories=categories, annotations=[BOX])
    runner = hook_runner(coco_dataset(ann_file))
    with pytest.raises(ValueError, match=r"ann\.json'\): none of the classes \('raccoon',\)"):
        getattr(DatasetClassesCheckHook(), stage)(runner)


def test_training_set_without_boxes_is_refused_and_names_the_file(tmp_path):
    ann_file = write_coco(tmp_path / 'no_boxes.json', categories=RACCOON, annotations=[])
    runner = hook_runner(coco_dataset(ann_file))
    with pytest.raises(ValueError, match=r'no_boxes\.json.*has 2 images and not one box'):
        DatasetClassesCheckHook().before_train(runner)
    DatasetClassesCheckHook().before_val(runner)  # evaluation data may lack boxes


def test_allow_no_boxes_trains_with_a_warning(tmp_path, monkeypatch):
    from yolov7_mmdet.engine.hooks import classes_check_hook
    logged = []
    monkeypatch.setattr(classes_check_hook, 'print_log',
                        lambda message, **kwargs: logged.append((message, kwargs['level'])))
    ann_file = write_coco(tmp_path / 'no_boxes.json', categories=RACCOON, annotations=[])
    DatasetClassesCheckHook(allow_no_boxes=True).before_train(hook_runner(coco_dataset(ann_file)))
    [(message, level)] = logged
    assert level == logging.WARNING
    assert 'not one box' in message and 'allowed by allow_no_boxes' in message


def test_wrapped_datasets_are_checked_and_one_box_is_enough(tmp_path):
    from mmdet.datasets import ConcatDataset, MultiImageMixDataset
    empty = coco_dataset(write_coco(tmp_path / 'empty.json', categories=RACCOON, annotations=[]))
    boxed = coco_dataset(write_coco(tmp_path / 'boxed.json', categories=RACCOON, annotations=[BOX]))
    DatasetClassesCheckHook().before_train(hook_runner(ConcatDataset([empty, boxed])))
    with pytest.raises(ValueError, match='empty.json'):
        DatasetClassesCheckHook().before_train(hook_runner(MultiImageMixDataset(empty, pipeline=[])))


def test_lazily_initialised_dataset_is_checked_for_its_categories(tmp_path):
    """``lazy_init=True`` datasets have no ``cat_ids`` until read: the hook reads them first."""
    from mmdet.datasets import CocoDataset
    ann_file = write_coco(tmp_path / 'lazy.json', categories=[], annotations=[BOX])
    dataset = CocoDataset(ann_file=ann_file, metainfo=dict(classes=('raccoon',)), lazy_init=True,
                          data_prefix=dict(img=''), filter_cfg=dict(filter_empty_gt=False), pipeline=[])
    with pytest.raises(ValueError, match=r"lazy\.json'\): none of the classes"):
        DatasetClassesCheckHook().before_val(hook_runner(dataset))
