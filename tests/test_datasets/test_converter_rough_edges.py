"""The converter as a new user meets it (issue #10 items 1-6, #15's converter bullet).

One-class ``--classes NAME``, file names in warnings and in a report file, images whose every box
was dropped, empty / placeholder / look-alike classes, one-line errors with exit status 2, data
yamls written on another machine, and a truncated image let through by ``--no-decode``.
"""
import json
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from source_fixtures import write_image, write_voc_xml, write_yolo_labels
from test_coco_json import build_dataset, load_converter
from yolov7_mmdet.datasets.sources import (issues_report_path, load_class_names, read_voc,
                                           read_yolo_txt, save_as_coco)

PIPELINE_LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]


def run_cli(argv, capsys):
    """``(exit status, stdout, stderr)`` of the converter's command line."""
    try:
        load_converter().main([str(arg) for arg in argv])
        status = 0
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def one_class_voc(folder, names=('kangaroo',)):
    for index, name in enumerate(names):
        write_image(folder / f'k{index}.jpg')
        write_voc_xml(folder / f'k{index}.xml', filename=f'k{index}.jpg',
                      objects=[(name, (4, 4, 30, 30))])
    return folder


# 1 ------------------------------------------------------------------------------------------------
def test_a_single_class_name_is_a_class_not_a_file(tmp_path, capsys):
    assert load_class_names('kangaroo') == ('kangaroo',)
    with pytest.raises(FileNotFoundError, match='names.txt'):
        load_class_names('names.txt')  # looks like a file: a missing one is still an error
    folder = one_class_voc(tmp_path / 'voc')
    status, out, _ = run_cli(['voc', folder, '--classes', 'kangaroo', '--out', tmp_path / 'k.json'],
                             capsys)
    assert status == 0 and "1 class: kangaroo" in out
    coco = json.loads((tmp_path / 'k.json').read_text())
    assert [c['name'] for c in coco['categories']] == ['kangaroo'] and len(coco['annotations']) == 1


# 2 ------------------------------------------------------------------------------------------------
def test_warnings_name_the_files_and_a_report_lists_all_of_them(tmp_path, capsys):
    folder = one_class_voc(tmp_path / 'voc')
    broken = []
    for index in range(5):
        broken.append(folder / f'broken{index}.jpg')
        broken[-1].write_bytes(b'not an image')
        write_voc_xml(folder / f'broken{index}.xml', filename=broken[-1].name,
                      objects=[('kangaroo', (1, 1, 9, 9))])
    data = read_voc(sorted(folder.glob('*.xml')))
    assert data.issues['unreadable_image'] == 5
    assert data.issues.files('unreadable_image') == [str(path) for path in broken]
    summary = data.issues.summary('voc')
    assert str(broken[0]) in summary and str(broken[2]) in summary and '(+2 more)' in summary
    assert str(broken[4]) not in summary

    with mock.patch('yolov7_mmdet.datasets.sources.issues.print_log') as print_log:
        save_as_coco(data, tmp_path / 'out' / 'train.json', name='voc')
    report_path = issues_report_path(tmp_path / 'out' / 'train.json')
    assert report_path == tmp_path / 'out' / 'train.issues.txt'
    assert str(report_path) in print_log.call_args.args[0]
    report = report_path.read_text()
    assert all(str(path) in report for path in broken) and '     5 unreadable image files, skipped [unreadable_image]' in report


# 3 ------------------------------------------------------------------------------------------------
def yolo_with_bad_rows(root):
    """``good`` has one box; ``bad`` has only a NaN row and an unknown class id; ``empty`` none."""
    for name, rows in dict(good=['0 .5 .5 .5 .5'], bad=['0 nan .5 .5 .5', '7 .5 .5 .5 .5'],
                           empty=[]).items():
        write_image(root / 'images' / f'{name}.jpg')
        write_yolo_labels(root / 'labels' / f'{name}.txt', rows)
    return root / 'images'


def test_an_image_whose_every_box_was_dropped_is_skipped_not_made_background(tmp_path):
    images = yolo_with_bad_rows(tmp_path)
    data = read_yolo_txt(images, classes=['a'])
    assert sorted(record.path.stem for record in data.images) == ['empty', 'good']
    assert data.issues['all_boxes_dropped'] == 1 and data.issues['background_image'] == 1
    assert data.issues.files('all_boxes_dropped') == [str(images / 'bad.jpg')]


def test_keeping_images_with_bad_boxes_is_a_flag_and_still_counted(tmp_path, capsys):
    images = yolo_with_bad_rows(tmp_path)
    status, _, _ = run_cli(['yolo', '--images', images, '--classes', 'a',
                            '--no-drop-images-with-bad-boxes', '--out', tmp_path / 'o.json'], capsys)
    assert status == 0
    coco = json.loads((tmp_path / 'o.json').read_text())
    assert sorted(image['file_name'] for image in coco['images']) == ['bad.jpg', 'empty.jpg',
                                                                      'good.jpg']
    report = issues_report_path(tmp_path / 'o.json').read_text()
    assert all(line in report for line in ('1 images whose every annotation was dropped',
                                            '2 images without labels, kept as background images'))


# 4 ------------------------------------------------------------------------------------------------
def test_zero_boxes_is_an_error(tmp_path, capsys):
    folder = tmp_path / 'voc'
    write_image(folder / 'bg.jpg')
    write_voc_xml(folder / 'bg.xml', filename='bg.jpg')  # no object: a background image
    status, out, err = run_cli(['voc', folder, '--classes', 'kangaroo', '--out', tmp_path / 'o.json'],
                               capsys)
    assert status == 2 and 'not a single box' in err and str(folder) in err
    assert not (tmp_path / 'o.json').exists()
    one_class_voc(folder)  # now with a kangaroo, but asked for another class: nothing usable
    status, out, err = run_cli(['voc', folder, '--classes', 'wallaby', '--out', tmp_path / 'o.json'],
                               capsys)
    assert status == 2 and 'all_boxes_dropped' in err and str(folder) in err


def test_empty_class_and_look_alike_names_are_warnings(tmp_path):
    folder = one_class_voc(tmp_path / 'voc', names=('Ace', 'ace', 'king'))
    data = read_voc(sorted(folder.glob('*.xml')), classes=['Ace', 'ace', 'king', 'placeholder'])
    with mock.patch('yolov7_mmdet.datasets.sources.coco_json.print_log') as print_log:
        save_as_coco(data, tmp_path / 'o.json', name='cards')
    warnings = [call.args[0] for call in print_log.call_args_list]
    assert len(warnings) == 2
    assert "1 of 4 classes have no box: ['placeholder']" in warnings[0]
    assert "['Ace', 'ace']" in warnings[1] and 'differ only in case' in warnings[1]
    assert "have no box: ['placeholder']" in issues_report_path(tmp_path / 'o.json').read_text()


# 5 ------------------------------------------------------------------------------------------------
def test_command_line_mistakes_are_one_line_and_status_2(tmp_path, capsys):
    (tmp_path / 'nc.yaml').write_text('train: images\nnc: 3\nnames: [a, b]\n')
    cases = [
        (['yolo', '--data', tmp_path / 'nc.yaml'], 'nc=3 but 2 names'),
        (['yolo', '--data', tmp_path / 'absent.yaml'], 'absent.yaml'),
        (['voc', tmp_path / 'no_such_dir'], 'no_such_dir'),
        (['voc', tmp_path, '--split', tmp_path / 'absent.txt'], 'absent.txt'),
    ]
    for argv, words in cases:
        status, _, err = run_cli(argv + ['--out', tmp_path / 'o.json'], capsys)
        assert status == 2, argv
        assert err.count('\n') == 1 and err.startswith('error: ') and words in err, err
        assert 'Traceback' not in err
    with pytest.raises(ValueError, match='nc=3'):  # --debug: the exception itself
        load_converter().main(['yolo', '--data', str(tmp_path / 'nc.yaml'), '--debug',
                               '--out', str(tmp_path / 'o.json')])


def test_data_yaml_of_another_machine_is_found_beside_the_yaml(tmp_path, capsys):
    export = tmp_path / 'export'
    write_image(export / 'train' / 'images' / 'p.jpg')
    write_yolo_labels(export / 'train' / 'labels' / 'p.txt', ['0 .5 .5 .5 .5'])
    write_image(export / 'valid' / 'images' / 'q.jpg')
    (export / 'data.yaml').write_text('train: /home/someone/datasets/export/train/images\n'
                                      'val: ../valid/images\nnc: 1\nnames: [p]\n')
    for split, image in (('train', 'p.jpg'), ('val', 'q.jpg')):
        out = tmp_path / f'{split}.json'
        status, _, err = run_cli(['yolo', '--data', export / 'data.yaml', '--split', split,
                                  '--out', out, '--no-drop-images-with-bad-boxes'], capsys)
        if split == 'val':  # q has no label file: a background image, and then no box at all
            assert status == 2 and 'not a single box' in err
            continue
        assert status == 0, err
        assert [i['file_name'] for i in json.loads(out.read_text())['images']] == [image]


# 6 ------------------------------------------------------------------------------------------------
def test_truncated_jpeg_let_through_by_no_decode_names_file_and_fix_in_training(tmp_path, capsys):
    folder = one_class_voc(tmp_path / 'voc')
    noise = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / 'k0.jpg', quality=95)
    jpeg = (folder / 'k0.jpg').read_bytes()
    (folder / 'k0.jpg').write_bytes(jpeg[:len(jpeg) // 2])  # a valid header, truncated pixels
    status, _, _ = run_cli(['voc', folder, '--no-decode', '--out', tmp_path / 'nd.json'], capsys)
    assert status == 0  # headers only: not caught here, as documented
    dataset = build_dataset(ann_file=str(tmp_path / 'nd.json'),
                            data_prefix=dict(img=str(folder) + '/'))
    with pytest.raises(RuntimeError, match=r'k0\.jpg.*without --no-decode'):
        dataset[0]
    status, _, _ = run_cli(['voc', folder, '--out', tmp_path / 'd.json'], capsys)
    assert status == 2  # decoded: the only image is skipped and nothing is left


# #15 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize('text, words', [
    ('', 'the file is empty'),
    ('{"images": [], "annotations": [], "categories": []}', 'no `categories`'),
    ('[1, 2]', 'a COCO file is a JSON object'),
    ('{"images": [', 'not valid JSON'),
])
def test_empty_or_category_less_coco_json_errors_name_the_file(tmp_path, capsys, text, words):
    (tmp_path / 'broken.json').write_text(text)
    status, _, err = run_cli(['coco', tmp_path / 'broken.json', '--image-root', tmp_path,
                              '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and str(tmp_path / 'broken.json') in err and words in err
