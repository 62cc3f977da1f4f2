"""The embedded demo dataset: deterministic, COCO-valid, annotations over the drawn shapes."""
import json

import cv2
import numpy as np
import pytest

from yolov7_mmdet.datasets.demo import CLASS_HUES, CLASSES, make_demo_dataset


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    return root, make_demo_dataset(root, num_train=12, num_val=4, image_size=96, seed=5)


def test_same_arguments_give_the_same_dataset(demo, tmp_path):
    root, paths = demo
    again = make_demo_dataset(tmp_path, num_train=12, num_val=4, image_size=96, seed=5)
    for split in ('train', 'val'):
        assert json.loads(paths[split].read_text()) == json.loads(again[split].read_text())
    first = cv2.imread(str(root / 'images' / 'train' / '000003.jpg'))
    second = cv2.imread(str(tmp_path / 'images' / 'train' / '000003.jpg'))
    np.testing.assert_array_equal(first, second)


def test_existing_copy_is_reused_and_other_arguments_regenerate(demo):
    root, paths = demo
    before = paths['train'].stat().st_mtime_ns
    make_demo_dataset(root, num_train=12, num_val=4, image_size=96, seed=5)
    assert paths['train'].stat().st_mtime_ns == before
    make_demo_dataset(root, num_train=12, num_val=4, image_size=96, seed=6)
    assert json.loads(paths['train'].read_text())['info']['seed'] == 6
    make_demo_dataset(root, num_train=12, num_val=4, image_size=96, seed=5)  # restore for others


def test_coco_fields_and_every_image_annotated(demo):
    _, paths = demo
    coco = json.loads(paths['train'].read_text())
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    assert len(coco['images']) == 12
    sizes = {image['id']: (image['width'], image['height']) for image in coco['images']}
    assert {a['image_id'] for a in coco['annotations']} == set(sizes)
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        width, height = sizes[ann['image_id']]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert ann['area'] == w * h and ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= 4


def test_box_centres_show_their_class_hue(demo):
    root, paths = demo
    coco = json.loads(paths['train'].read_text())
    files = {image['id']: image['file_name'] for image in coco['images']}
    matches = []
    for ann in coco['annotations']:
        img = cv2.imread(str(root / 'images' / 'train' / files[ann['image_id']]))
        x, y, w, h = ann['bbox']
        hue = int(cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[int(y + h / 2), int(x + w / 2), 0])
        expected = CLASS_HUES[ann['category_id'] - 1]
        matches.append(min(abs(hue - expected), 180 - abs(hue - expected)) <= 12)
    # a later shape may cover an earlier one's centre (overlaps up to IoU 0.2 are allowed)
    assert np.mean(matches) >= 0.9


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='image_size'):
        make_demo_dataset(tmp_path, image_size=32)
