"""Converted data loads in mmdet's COCO stack (CocoJSONDataset) with the classes of the data."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DefaultScope

from source_fixtures import write_image, write_voc_xml, write_yolo_labels
from yolov7_mmdet.datasets.sources import read_coco_json, read_voc, save_as_coco

CONVERTER = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters' / 'to_coco.py'

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]


def load_converter():
    spec = importlib.util.spec_from_file_location('to_coco', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_dataset(**kwargs):
    from mmdet.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(dict(type='CocoJSONDataset', pipeline=PIPELINE, **kwargs))


@pytest.fixture
def voc_folder(tmp_path):
    """Three images beside their XML: two boxes (one difficult), one background, one broken."""
    folder = tmp_path / 'voc'
    write_image(folder / 'a.jpg', size=(64, 48))
    write_voc_xml(folder / 'a.xml', filename='a.jpg', size=(64, 48),
                  objects=[('zebra', (4, 6, 30, 40)), ('ant', (40, 2, 70, 20), True)])
    write_image(folder / 'b.jpg', size=(32, 32))
    write_voc_xml(folder / 'b.xml', filename='b.jpg', size=(32, 32))
    (folder / 'c.jpg').write_bytes(b'broken')
    write_voc_xml(folder / 'c.xml', filename='c.jpg', objects=[('ant', (1, 1, 5, 5))])
    return folder


def test_voc_to_coco_json_loads_with_classes_from_the_file(tmp_path, voc_folder):
    data = read_voc(sorted(voc_folder.glob('*.xml')))
    save_as_coco(data, tmp_path / 'out.json', name='toy')
    dataset = build_dataset(ann_file=str(tmp_path / 'out.json'),
                            data_prefix=dict(img=str(voc_folder) + '/'), test_mode=True)
    assert dataset.metainfo['classes'] == ('ant', 'zebra')
    assert len(dataset) == 2  # the broken image was skipped
    sample = dataset[0]
    assert sample['img'].shape == (48, 64, 3)
    np.testing.assert_allclose(sample['gt_bboxes'].tensor.numpy(), [[4, 6, 30, 40], [40, 2, 64, 20]])
    np.testing.assert_array_equal(sample['gt_bboxes_labels'], [1, 0])
    np.testing.assert_array_equal(sample['gt_ignore_flags'], [False, True])  # difficult -> iscrowd
    assert len(dataset[1]['gt_bboxes']) == 0  # background image


def test_training_filter_drops_background_like_coco_dataset(tmp_path, voc_folder):
    save_as_coco(read_voc(sorted(voc_folder.glob('*.xml'))), tmp_path / 'out.json', name='toy')
    dataset = build_dataset(ann_file=str(tmp_path / 'out.json'),
                            data_prefix=dict(img=str(voc_folder) + '/'),
                            filter_cfg=dict(filter_empty_gt=True, min_size=0))
    assert len(dataset) == 1


def test_given_classes_behave_like_mmdet_coco_dataset(tmp_path, voc_folder):
    save_as_coco(read_voc(sorted(voc_folder.glob('*.xml'))), tmp_path / 'out.json', name='toy')
    dataset = build_dataset(ann_file=str(tmp_path / 'out.json'), metainfo=dict(classes=('zebra',)),
                            data_prefix=dict(img=str(voc_folder) + '/'), test_mode=True)
    assert dataset.metainfo['classes'] == ('zebra',)
    np.testing.assert_array_equal(dataset[0]['gt_bboxes_labels'], [0])


def test_file_without_categories_is_a_clear_error(tmp_path):
    (tmp_path / 'empty.json').write_text(json.dumps(dict(images=[], annotations=[], categories=[])))
    with pytest.raises(ValueError, match='no `categories`'):
        build_dataset(ann_file=str(tmp_path / 'empty.json'))


def test_dirty_coco_json_is_cleaned(tmp_path):
    write_image(tmp_path / 'img' / 'x.jpg', size=(64, 48))
    coco = dict(
        images=[dict(id=1, file_name='x.jpg', width=64, height=48),
                dict(id=2, file_name='missing.jpg', width=10, height=10)],
        annotations=[dict(id=1, image_id=1, category_id=7, bbox=[50, 10, 30, 10]),
                     dict(id=2, image_id=1, category_id=7, bbox=[5, 5, 0, 10]),
                     dict(id=3, image_id=1, category_id=99, bbox=[5, 5, 10, 10]),
                     dict(id=4, image_id=3, category_id=7, bbox=[5, 5, 10, 10])],
        categories=[dict(id=7, name='cup')])
    (tmp_path / 'dirty.json').write_text(json.dumps(coco))
    data = read_coco_json(tmp_path / 'dirty.json', image_root=tmp_path / 'img')
    assert data.classes == ('cup',)
    np.testing.assert_allclose(data.images[0].bboxes, [[50, 10, 64, 20]])
    assert data.issues.as_dict() == dict(missing_image=1, malformed_row=1, unknown_class=1,
                                         degenerate_box=1, clipped_box=1)


def _roboflow_coco(placeholder_boxes: bool = False) -> dict:
    """A Roboflow export's annotations: category 0 the project's name, supercategory of the rest."""
    return dict(
        images=[dict(id=0, file_name='x.jpg', width=64, height=48)],
        annotations=[dict(id=0, image_id=0, category_id=2, bbox=[4, 4, 20, 20])] + (
            [dict(id=1, image_id=0, category_id=0, bbox=[30, 4, 20, 20])] if placeholder_boxes else []),
        categories=[dict(id=0, name='pets-xyz', supercategory='none'),
                    dict(id=1, name='cat', supercategory='pets-xyz'),
                    dict(id=2, name='dog', supercategory='pets-xyz')])


def test_roboflow_placeholder_category_is_not_a_class(tmp_path):
    write_image(tmp_path / 'x.jpg', size=(64, 48))
    (tmp_path / 'export.json').write_text(json.dumps(_roboflow_coco()))
    data = read_coco_json(tmp_path / 'export.json', image_root=tmp_path)
    assert data.classes == ('cat', 'dog') and data.images[0].labels.tolist() == [1]
    given = read_coco_json(tmp_path / 'export.json', image_root=tmp_path,
                           classes=['pets-xyz', 'dog'])  # --classes decides
    assert given.classes == ('pets-xyz', 'dog') and given.images[0].labels.tolist() == [1]
    (tmp_path / 'boxed.json').write_text(json.dumps(_roboflow_coco(placeholder_boxes=True)))
    assert read_coco_json(tmp_path / 'boxed.json', image_root=tmp_path).classes == (
        'pets-xyz', 'cat', 'dog')  # a category with boxes is a class, whatever its name
    one = dict(_roboflow_coco(), categories=[dict(id=0, name='cat', supercategory='none')])
    (tmp_path / 'one.json').write_text(json.dumps(one))
    assert read_coco_json(tmp_path / 'one.json', image_root=tmp_path).classes == ('cat', )


def test_converter_cli_yolo_data_yaml(tmp_path):
    write_image(tmp_path / 'ds' / 'images' / 'val' / 'p.jpg', size=(40, 20))
    write_yolo_labels(tmp_path / 'ds' / 'labels' / 'val' / 'p.txt', ['1 0.5 0.5 0.5 0.5'])
    (tmp_path / 'data.yaml').write_text('path: ds\nval: images/val\nnc: 2\nnames: [cat, dog]\n')
    snippet = load_converter().main(['yolo', '--data', str(tmp_path / 'data.yaml'), '--split', 'val',
                                     '--out', str(tmp_path / 'val.json')])
    coco = json.loads((tmp_path / 'val.json').read_text())
    assert [c['name'] for c in coco['categories']] == ['cat', 'dog']
    assert coco['images'] == [dict(id=1, width=40, height=20, file_name='p.jpg')]
    assert coco['annotations'][0]['bbox'] == [10, 5, 20, 10]
    assert coco['annotations'][0]['category_id'] == 2
    assert "type='CocoJSONDataset'" in snippet


def test_converter_cli_voc_with_split_and_class_list(tmp_path, voc_folder):
    (tmp_path / 'split.txt').write_text('a\n')
    load_converter().main(['voc', str(voc_folder), '--split', str(tmp_path / 'split.txt'),
                           '--classes', 'zebra', 'ant', '--out', str(tmp_path / 'a.json')])
    coco = json.loads((tmp_path / 'a.json').read_text())
    assert [c['name'] for c in coco['categories']] == ['zebra', 'ant']
    assert [a['category_id'] for a in coco['annotations']] == [1, 2]
    assert [a['iscrowd'] for a in coco['annotations']] == [0, 1]


def test_converter_cli_yolo_images_need_classes(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_converter().main(['yolo', '--images', str(tmp_path), '--out', str(tmp_path / 'o.json')])
    assert exit_info.value.code == 2
    assert 'needs --classes' in capsys.readouterr().err


def test_shared_raccoon_converts_and_loads(shared_datasets, tmp_path):
    root = shared_datasets / 'raccoon'
    load_converter().main(['voc', str(root / 'annotations'), '--img-dir', str(root / 'images'),
                           '--split', str(root / 'splits' / 'val.txt'), '--no-decode',
                           '--out', str(tmp_path / 'val.json')])
    dataset = build_dataset(ann_file=str(tmp_path / 'val.json'),
                            data_prefix=dict(img=str(root / 'images') + '/'), test_mode=True)
    assert dataset.metainfo['classes'] == ('raccoon',)
    assert len(dataset) == 40
    assert sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset))) == 44
    sample = dataset[0]
    assert sample['img'].shape[:2] == sample['ori_shape']


def test_nothing_to_write_is_a_clear_error(tmp_path):
    write_image(tmp_path / 'voc' / 'a.jpg')
    xml = write_voc_xml(tmp_path / 'voc' / 'a.xml', filename='a.jpg')
    with pytest.raises(ValueError, match='no class names'):
        save_as_coco(read_voc([xml]), tmp_path / 'out.json', name='empty')
    (tmp_path / 'voc' / 'a.jpg').unlink()
    with pytest.raises(ValueError, match='no usable image'):
        save_as_coco(read_voc([xml], classes=['a']), tmp_path / 'out.json', name='empty')
