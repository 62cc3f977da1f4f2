"""Each format reads the shared real datasets it fits, with the image, box and class counts of
``../shared/datasets/README.md`` (tests skip when ``../shared`` is absent)."""
import numpy as np
import pytest

from yolov7_mmdet.datasets.sources import read_voc, read_yolo_txt, voc_annotation_files

COCO_FIRST_NAMES = ('person', 'bicycle', 'car', 'motorcycle', 'airplane')


def assert_boxes_valid(data):
    """Every kept box is inside its image, at least 1 px wide and high, with a known class."""
    for record in data.images:
        boxes = record.bboxes
        assert (boxes[:, 2:] - boxes[:, :2] >= 1).all()
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= record.width).all()
        assert (boxes[:, [1, 3]] <= record.height).all()
        assert ((record.labels >= 0) & (record.labels < len(data.classes))).all()


@pytest.mark.parametrize('split, images, boxes', [('train', 160, 173), ('val', 40, 44)])
def test_raccoon_splits(shared_datasets, split, images, boxes):
    root = shared_datasets / 'raccoon'
    data = read_voc(voc_annotation_files(root / 'annotations', root / 'splits' / f'{split}.txt'),
                    image_dir=root / 'images')
    assert (len(data.images), data.num_boxes, data.classes) == (images, boxes, ('raccoon',))
    assert data.issues.as_dict() == {}
    assert_boxes_valid(data)


def test_raccoon_splits_cover_the_dataset(shared_datasets):
    """160 + 40 images and 173 + 44 = 217 boxes, the README's totals."""
    root = shared_datasets / 'raccoon'
    data = read_voc(voc_annotation_files(root / 'annotations'), image_dir=root / 'images',
                    decode=False)
    assert (len(data.images), data.num_boxes) == (200, 217)


def test_bccd_devkit_layout_drops_its_two_degenerate_boxes(shared_datasets):
    root = shared_datasets / 'bccd'
    data = read_voc(voc_annotation_files(root / 'Annotations'), image_dir=root / 'JPEGImages')
    assert len(data.images) == 364
    assert data.num_boxes == 4888 - 2
    assert data.issues.as_dict() == dict(degenerate_box=2)
    assert data.classes == ('Platelets', 'RBC', 'WBC')  # sorted names found in the data
    assert {(record.width, record.height) for record in data.images} == {(640, 480)}
    assert_boxes_valid(data)


@pytest.mark.parametrize('split, images', [('train', 205), ('val', 87), ('test', 72)])
def test_bccd_split_files(shared_datasets, split, images):
    root = shared_datasets / 'bccd'
    files = voc_annotation_files(root / 'Annotations', root / 'ImageSets' / 'Main' / f'{split}.txt')
    data = read_voc(files, image_dir=root / 'JPEGImages', classes=['RBC', 'WBC', 'Platelets'],
                    decode=False)
    assert len(data.images) == images
    assert data.classes == ('RBC', 'WBC', 'Platelets')  # a given order is kept


def test_cards_xml_beside_images_with_label_map(shared_datasets):
    root = shared_datasets / 'cards'
    splits = {split: read_voc(voc_annotation_files(root / 'images' / split),
                              classes=root / 'training' / 'labelmap.pbtxt')
              for split in ('train', 'test')}
    assert [len(splits[split].images) for split in ('train', 'test')] == [296, 67]
    assert sum(data.num_boxes for data in splits.values()) == 670
    assert splits['train'].classes == ('nine', 'ten', 'jack', 'queen', 'king', 'ace')
    labels = np.concatenate([record.labels for data in splits.values() for record in data.images])
    assert set(labels.tolist()) == set(range(6))
    for data in splits.values():
        assert data.issues.as_dict() == {}
        assert_boxes_valid(data)


def test_coco128_yolo_txt(shared_datasets):
    root = shared_datasets / 'coco128'
    data = read_yolo_txt(root / 'images' / 'train', classes='coco')
    assert len(data.images) == 128
    assert data.classes[:5] == COCO_FIRST_NAMES and len(data.classes) == 80
    # 941 label rows, of which 3 + 9 are in the two label files that have no image
    assert data.num_boxes == 941 - 12
    assert data.issues.as_dict() == dict(background_image=2, orphan_label_file=2)
    present = {int(label) for record in data.images for label in record.labels}
    assert len(present) == 71
    assert_boxes_valid(data)
