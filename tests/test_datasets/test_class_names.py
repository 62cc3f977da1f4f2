"""Class names from lists, YOLO data yamls, label maps, text files and the 'coco' alias."""
import pytest

from yolov7_mmdet.datasets.sources import load_class_names, read_data_yaml


def test_sequence_and_coco_alias():
    assert load_class_names(['b', 'a']) == ('b', 'a')
    coco = load_class_names('coco')
    assert len(coco) == 80 and coco[0] == 'person' and coco[-1] == 'toothbrush'


@pytest.mark.parametrize('text', ['names: [cat, dog]\nnc: 2\n', "names: {1: dog, 0: cat}\n"])
def test_yaml_names_list_or_mapping(tmp_path, text):
    (tmp_path / 'data.yaml').write_text(text)
    assert load_class_names(tmp_path / 'data.yaml') == ('cat', 'dog')


def test_yaml_nc_disagreeing_with_names_is_an_error(tmp_path):
    (tmp_path / 'data.yaml').write_text('nc: 3\nnames: [cat, dog]\n')
    with pytest.raises(ValueError, match='nc=3 but 2 names'):
        load_class_names(tmp_path / 'data.yaml')


def test_label_map_orders_by_id(tmp_path):
    (tmp_path / 'map.pbtxt').write_text(
        "item {\n  id: 2\n  name: 'ten'\n}\nitem {\n  name: \"nine\"\n  id: 1\n}\n")
    assert load_class_names(tmp_path / 'map.pbtxt') == ('nine', 'ten')


def test_label_map_with_gap_is_an_error(tmp_path):
    (tmp_path / 'map.pbtxt').write_text("item { id: 1 name: 'a' }\nitem { id: 3 name: 'b' }\n")
    with pytest.raises(ValueError, match='ids must be 1..2'):
        load_class_names(tmp_path / 'map.pbtxt')


def test_text_file_and_errors(tmp_path):
    (tmp_path / 'names.txt').write_text('cat\n\ndog\n')
    assert load_class_names(tmp_path / 'names.txt') == ('cat', 'dog')
    (tmp_path / 'twice.txt').write_text('cat\ncat\n')
    with pytest.raises(ValueError, match='repeat'):
        load_class_names(tmp_path / 'twice.txt')
    with pytest.raises(FileNotFoundError):
        load_class_names(tmp_path / 'absent.txt')


def test_data_yaml_resolves_splits_against_path_or_its_folder(tmp_path):
    (tmp_path / 'a.yaml').write_text('path: ../ds\ntrain: images/train\nval: [v1.txt, v2.txt]\n'
                                     'names: [x]\n')
    (tmp_path / 'b.yaml').write_text('train: images/train\nnames: [x]\n')
    with_root, beside = read_data_yaml(tmp_path / 'a.yaml'), read_data_yaml(tmp_path / 'b.yaml')
    assert with_root.splits['train'] == [tmp_path / '../ds' / 'images/train']
    assert with_root.splits['val'] == [tmp_path / '../ds' / 'v1.txt', tmp_path / '../ds' / 'v2.txt']
    assert beside.splits == {'train': [tmp_path / 'images/train']} and beside.names == ('x',)
