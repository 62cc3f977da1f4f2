"""``to_coco.py --val-fraction F --seed S``: a one-folder dataset split into train.json and
val.json, stratified by class, the same for the same seed (issue #20 item 3), and the classes that
the val split lacks reported (item 7)."""
import json
from pathlib import Path

import numpy as np
import pytest

from source_fixtures import write_image, write_voc_xml
from test_converter_rough_edges import run_cli
from yolov7_mmdet.datasets.sources import (DetectionData, ImageRecord, coco_box_counts,
                                           image_groups, read_voc, split_by_class,
                                           split_class_warnings)


def toy_data(labels_of_image):
    """In-memory images (no files) with the given box labels; classes a, b, c, d."""
    records = [ImageRecord(path=Path(f'{index:03d}.jpg'), width=64, height=48,
                           bboxes=np.tile(np.float32([1, 1, 9, 9]), (len(labels), 1)),
                           labels=np.array(labels, np.int64), ignore=np.zeros(len(labels), bool))
               for index, labels in enumerate(labels_of_image)]
    return DetectionData(classes=('a', 'b', 'c', 'd'), images=records)


# 80 images of class a, 10 with a rare b (and an a), 1 with c, 9 background images
LABELS = [[0]] * 80 + [[0, 1]] * 10 + [[2]] + [[]] * 9


def names(data):
    return [record.path.name for record in data.images]


def test_groups_are_the_rarest_class_of_each_image():
    groups = image_groups(toy_data(LABELS))
    assert (groups[:80] == 0).all() and (groups[80:90] == 1).all() and groups[90] == 2
    assert (groups[91:] == -1).all()


def test_split_is_stratified_disjoint_complete_and_seeded():
    data = toy_data(LABELS)
    train, val = split_by_class(data, val_fraction=0.2, seed=3)
    assert len(val.images) == 20 and len(train.images) == 80
    assert sorted(names(train) + names(val)) == names(data)
    val_groups = image_groups(data)[[int(name[:3]) for name in names(val)]]
    # each group sends about a fifth: 16 of 80 a, 2 of 10 b, 2 of 9 background; c (1 image) stays
    assert np.bincount(val_groups + 1, minlength=4).tolist() == [2, 16, 2, 0]
    assert names(split_by_class(data, val_fraction=0.2, seed=3)[1]) == names(val)
    assert names(split_by_class(data, val_fraction=0.2, seed=4)[1]) != names(val)
    assert train.classes == val.classes == data.classes and train.issues is data.issues


@pytest.mark.parametrize('fraction', [0.0, 1.0, 0.001, float('nan')])
def test_fractions_that_leave_a_part_empty_are_refused(fraction):
    with pytest.raises(ValueError, match='val fraction'):
        split_by_class(toy_data(LABELS), val_fraction=fraction)


def test_classes_missing_from_a_split_are_a_warning():
    counts = dict(train=np.array([5, 3, 1, 0]), val=np.array([2, 0, 0, 0]),
                  test=np.array([1, 1, 1, 0]))
    warnings = split_class_warnings(('a', 'b', 'c', 'd'), counts)
    assert warnings == ["2 of 4 classes have boxes in train but none in val: ['b', 'c'] "
                        '(val mAP does not measure them)']


def test_box_counts_of_coco_files_feed_the_same_check():
    coco = dict(categories=[dict(id=7, name='b'), dict(id=3, name='a')],
                annotations=[dict(category_id=3), dict(category_id=3), dict(category_id=99), 'x'])
    assert coco_box_counts(coco, 'val.json').tolist() == [2, 0]  # a (id 3), b (id 7)


def voc_folder(root, labels_of_image):
    for index, labels in enumerate(labels_of_image):
        write_image(root / f'{index:02d}.jpg')
        write_voc_xml(root / f'{index:02d}.xml', filename=f'{index:02d}.jpg',
                      objects=[(name, (2 + 4 * k, 2, 12 + 4 * k, 12)) for k, name in
                               enumerate(labels)])
    return root


def test_cli_writes_train_and_val_json_beside_one_report(tmp_path, capsys):
    folder = voc_folder(tmp_path / 'voc', [['cat']] * 8 + [['dog']] * 4 + [['cat', 'emu']])
    out = tmp_path / 'data'
    argv = ['voc', folder, '--val-fraction', 0.25, '--seed', 1, '--out', out]
    status, stdout, err = run_cli(argv, capsys)
    assert status == 0, err
    train, val = (json.loads((out / name).read_text()) for name in ('train.json', 'val.json'))
    assert len(train['images']) == 10 and len(val['images']) == 3
    files = {image['file_name'] for image in train['images']} | {image['file_name']
                                                                 for image in val['images']}
    assert len(files) == 13 and train['info'] == val['info']  # one image root for both
    assert train['categories'] == val['categories']
    # emu is in one image only: it stays in train, and the val split lacks it
    report = (out / 'issues.txt').read_text()
    assert "classes have boxes in train but none in val: ['emu']" in report
    lines = [line for line in stdout.splitlines() if line.startswith('dataset=')]
    assert len(lines) == 2 and "train.json'" in lines[0] and "val.json'" in lines[1]
    assert "10 images" in lines[0] and "3 images" in lines[1]
    before = {name: (out / name).read_bytes() for name in ('train.json', 'val.json')}
    assert run_cli(argv, capsys)[0] == 0  # the same seed: the same files
    assert {name: (out / name).read_bytes() for name in before} == before


def test_cli_split_needs_a_folder_and_a_fraction_in_range(tmp_path, capsys):
    folder = voc_folder(tmp_path / 'voc', [['cat']] * 4)
    for extra, words in ((['--val-fraction', 0.5, '--out', tmp_path / 'x.json'], 'is a folder'),
                         (['--val-fraction', 1.5, '--out', tmp_path / 'x'], 'between 0 and 1'),
                         (['--out', tmp_path / 'x'], 'not a .json file'),
                         (['--seed', 1, '--out', tmp_path / 'x.json'], 'it does nothing')):
        status, _, err = run_cli(['voc', folder] + extra, capsys)
        assert status == 2 and words in err, err
    assert not (tmp_path / 'x').exists() and not (tmp_path / 'x.json').exists()


def test_shared_raccoon_split_keeps_every_image_once(shared_datasets, tmp_path):
    root = shared_datasets / 'raccoon'
    data = read_voc(sorted((root / 'annotations').glob('*.xml')), image_dir=root / 'images',
                    decode=False)
    train, val = split_by_class(data, val_fraction=0.2, seed=0)
    assert (len(train.images), len(val.images)) == (160, 40)
    assert not set(names(train)) & set(names(val))


def test_a_split_run_that_fails_while_writing_changes_neither_file(tmp_path, capsys, monkeypatch):
    from yolov7_mmdet.datasets.sources import output_files
    folder = voc_folder(tmp_path / 'voc', [['cat']] * 8 + [['dog']] * 4)
    out = tmp_path / 'data'
    assert run_cli(['voc', folder, '--val-fraction', 0.25, '--out', out], capsys)[0] == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    real_write = output_files.atomic_write_bytes

    def write_failing_for_val(path, data):
        if '.val.json.' in path:  # the hidden staging file of val.json, written after train.json's
            raise OSError('disk full')
        real_write(path, data)

    monkeypatch.setattr(output_files, 'atomic_write_bytes', write_failing_for_val)
    status, _, err = run_cli(['voc', folder, '--val-fraction', 0.25, '--seed', 7, '--out', out],
                             capsys)
    assert status == 2 and 'disk full' in err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # nothing staged left
