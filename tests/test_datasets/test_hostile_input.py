"""The converter on hostile and broken input (issue #19's converter items, #20 item 7).

Nothing is overwritten (atomic writes, outputs that are inputs refused), nothing is silently
wrong (duplicate COCO ids, ``names: person``, VOC file names leaving the image folder, images
named twice, images only OpenCV cannot read), and malformed files get one line naming the file
and the field instead of a traceback or an exhausted memory.
"""
import builtins
import errno
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from source_fixtures import write_image, write_voc_xml, write_yolo_labels
from test_coco_json import build_dataset
from test_converter_rough_edges import one_class_voc, run_cli
from yolov7_mmdet.datasets.sources import (issues_report_path, load_class_names, probe_image,
                                           read_coco_json, read_data_yaml, read_voc, read_yolo_txt)


REPO_ROOT = Path(__file__).resolve().parents[2]


def coco_file(path, images, annotations, categories=({'id': 1, 'name': 'cup'},)):
    path.write_text(json.dumps(dict(images=list(images), annotations=list(annotations),
                                    categories=list(categories))))
    return path


def cup(image_id, box=(4, 4, 20, 20), ann_id=None):
    return dict(id=ann_id or image_id, image_id=image_id, category_id=1, bbox=list(box),
                area=box[2] * box[3])


def noise_jpeg(path, size=(96, 64)):
    """A JPEG of noise (``size=(width, height)``): every byte of its scan data matters."""
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)
    return path


# Nothing overwritten or lost ----------------------------------------------------------------------
class _FullDisk(io.RawIOBase):
    """A file opened for writing on a full disk: opening (and truncating) works, writing fails."""

    def __init__(self, handle):
        self._handle = handle

    def writable(self):
        return True

    def write(self, data):
        raise OSError(errno.ENOSPC, 'No space left on device')

    def close(self):
        self._handle.close()
        super().close()


def fill_disk(monkeypatch, folder):
    """Every file opened for writing inside ``folder`` from now on fails to write."""
    real_open = io.open

    def open_on_full_disk(file, mode='r', *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and os.path.dirname(os.path.abspath(file)) \
            == str(folder)
        return _FullDisk(handle) if inside and set(mode) & set('wxa') else handle

    monkeypatch.setattr(builtins, 'open', open_on_full_disk)
    monkeypatch.setattr(io, 'open', open_on_full_disk)


def test_a_full_disk_leaves_the_earlier_output_and_report_as_they_were(tmp_path, capsys,
                                                                       monkeypatch):
    folder = one_class_voc(tmp_path / 'voc')
    (folder / 'broken.jpg').write_bytes(b'not an image')  # a data issue: there is a report
    write_voc_xml(folder / 'broken.xml', filename='broken.jpg',
                  objects=[('kangaroo', (1, 1, 9, 9))])
    out = tmp_path / 'out' / 'train.json'
    assert run_cli(['voc', folder, '--out', out], capsys)[0] == 0
    before = out.read_bytes(), issues_report_path(out).read_bytes()

    write_image(folder / 'k9.jpg')  # the second run has more to write
    write_voc_xml(folder / 'k9.xml', filename='k9.jpg', objects=[('kangaroo', (2, 2, 20, 20))])
    fill_disk(monkeypatch, out.parent)
    status, _, err = run_cli(['voc', folder, '--out', out], capsys)
    monkeypatch.undo()
    assert status == 2 and 'No space left' in err
    assert (out.read_bytes(), issues_report_path(out).read_bytes()) == before
    assert sorted(path.name for path in out.parent.iterdir()) == ['train.issues.txt', 'train.json']


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    write_image(tmp_path / 'img' / 'a.jpg')
    ann = coco_file(tmp_path / 'ann.json', [dict(id=1, file_name='a.jpg')], [cup(1)])
    original = ann.read_bytes()
    (tmp_path / 'link.json').symlink_to(ann)
    (tmp_path / 'sub').mkdir()
    for out in (ann, tmp_path / 'sub' / '..' / 'ann.json', tmp_path / 'link.json'):
        status, _, err = run_cli(['coco', ann, '--image-root', tmp_path / 'img', '--out', out],
                                 capsys)
        assert status == 2 and 'is an input of this run' in err, (out, err)
        assert ann.read_bytes() == original

    folder = one_class_voc(tmp_path / 'voc')  # an XML of the folder as --out
    xml = (folder / 'k0.xml').read_bytes()
    status, _, err = run_cli(['voc', folder, '--out', folder / 'k0.xml'], capsys)
    assert status == 2 and 'not a .json file' in err and (folder / 'k0.xml').read_bytes() == xml

    labels = write_yolo_labels(tmp_path / 'y' / 'labels' / 'p.txt', ['0 .5 .5 .5 .5'])
    write_image(tmp_path / 'y' / 'images' / 'p.jpg')
    status, _, err = run_cli(['yolo', '--images', tmp_path / 'y' / 'images', '--classes', 'a',
                              '--out', labels], capsys)
    assert status == 2 and labels.read_text() == '0 .5 .5 .5 .5\n'


def test_non_utf8_image_name_and_a_data_issue_write_everything_or_nothing(tmp_path, capsys):
    images = tmp_path / 'images'
    name = os.fsdecode(b'caf\xe9.jpg')  # a Latin-1 file name: not UTF-8
    write_image(images / name)
    # a box partly outside: a data issue of that file, named in the report
    write_yolo_labels(tmp_path / 'labels' / f'{name[:-4]}.txt', ['0 .5 .5 .5 .5', '0 .9 .5 .5 .5'])
    out = tmp_path / 'o.json'
    status, stdout, err = run_cli(['yolo', '--images', images, '--classes', 'a', '--out', out],
                                  capsys)
    assert status == 0, err
    coco = json.loads(out.read_text())
    assert coco['images'][0]['file_name'] == name  # written as \udce9, read back to the same name
    assert 'caf\\udce9.jpg' in issues_report_path(out).read_text(encoding='utf-8')
    dataset = build_dataset(ann_file=str(out), data_prefix=dict(img=str(images) + '/'))
    assert dataset[0]['img'].shape == (48, 64, 3)  # training finds the file by that name


# No silent wrong result ---------------------------------------------------------------------------
def test_coco_images_sharing_an_id_are_skipped_not_given_each_others_boxes(tmp_path):
    for name in 'abc':
        write_image(tmp_path / f'{name}.jpg')
    ann = coco_file(tmp_path / 'ann.json',
                    [dict(id=1, file_name='a.jpg'), dict(id=1, file_name='b.jpg'),
                     dict(id=2, file_name='c.jpg')],
                    [cup(1), cup(2, box=(1, 1, 30, 30))])
    data = read_coco_json(ann, image_root=tmp_path)
    assert [record.path.name for record in data.images] == ['c.jpg']
    assert data.issues['duplicate_image_id'] == 2 and data.issues['malformed_row'] == 0
    assert data.issues.files('duplicate_image_id') == [str(tmp_path / 'a.jpg'),
                                                       str(tmp_path / 'b.jpg')]


def test_data_yaml_names_as_a_string_is_refused_with_the_fix(tmp_path):
    (tmp_path / 'data.yaml').write_text('train: images\nnames: person\n')
    with pytest.raises(ValueError, match=r'data.yaml: `names` is the string .*names: \[person\]'):
        read_data_yaml(tmp_path / 'data.yaml')
    (tmp_path / 'names.yaml').write_text('names: [yes, no]\n')  # YAML 1.1 booleans
    with pytest.raises(ValueError, match=r'`names\[0\]` is True.*quote'):
        load_class_names(tmp_path / 'names.yaml')


@pytest.mark.parametrize('filename', ['../secret.jpg', 'ABSOLUTE'])
def test_voc_filename_leaving_the_image_folder_is_not_followed(tmp_path, filename):
    secret = write_image(tmp_path / 'secret.jpg')
    filename = str(secret) if filename == 'ABSOLUTE' else filename
    write_voc_xml(tmp_path / 'voc' / 'x.xml', filename=filename, objects=[('a', (1, 1, 9, 9))])
    data = read_voc([tmp_path / 'voc' / 'x.xml'], image_dir=tmp_path / 'voc')
    assert not data.images
    assert data.issues['filename_outside_image_dir'] == 1 and data.issues['missing_image'] == 1
    write_image(tmp_path / 'voc' / 'x.jpg')  # the image named like the XML is still found
    data = read_voc([tmp_path / 'voc' / 'x.xml'], image_dir=tmp_path / 'voc')
    assert [record.path for record in data.images] == [tmp_path / 'voc' / 'x.jpg']


def test_two_xml_files_naming_one_image_give_one_image(tmp_path):
    folder = tmp_path / 'voc'
    write_image(folder / 'a.jpg')
    for xml in ('a', 'a_copy'):
        write_voc_xml(folder / f'{xml}.xml', filename='a.jpg', objects=[('a', (1, 1, 9, 9))])
    data = read_voc(sorted(folder.glob('*.xml')))
    assert len(data.images) == 1 and data.issues['duplicate_image'] == 1


def test_overlapping_yolo_image_lists_give_each_image_once(tmp_path):
    write_image(tmp_path / 'images' / 'p.jpg')
    write_yolo_labels(tmp_path / 'labels' / 'p.txt', ['0 .5 .5 .5 .5'])
    (tmp_path / 'list.txt').write_text('images/p.jpg\n')
    data = read_yolo_txt([tmp_path / 'images', tmp_path / 'list.txt'], classes=['a'])
    assert len(data.images) == 1 and data.issues['duplicate_image'] == 1


def test_png_that_pillow_opens_but_opencv_cannot_is_skipped(tmp_path):
    path = write_image(tmp_path / 'cut.png', fmt='PNG')
    path.write_bytes(path.read_bytes()[:-12])  # the IEND chunk is missing
    with Image.open(path) as image:
        image.load()  # Pillow accepts it ...
    assert cv2.imread(str(path)) is None  # ... OpenCV, which training uses, does not
    assert probe_image(path).truncated
    write_yolo_labels(tmp_path / 'cut.txt', ['0 .5 .5 .5 .5'])
    data = read_yolo_txt(tmp_path, classes=['a'])
    assert not data.images and data.issues['truncated_image'] == 1


def test_png_whose_image_data_stops_early_is_unreadable(tmp_path):
    """A complete chunk structure (``IEND`` present) around too little pixel data."""
    import struct
    import zlib
    path = write_image(tmp_path / 'short.png', fmt='PNG')
    content = path.read_bytes()
    ihdr = content[8:8 + 25]  # signature, then the IHDR chunk (4 + 4 + 13 + 4 bytes)
    width, height = struct.unpack('>II', ihdr[8:16])
    rows = zlib.compress(b'\0' * (1 + width * 3) * (height // 2))  # half of the rows
    crc = struct.pack('>I', zlib.crc32(b'IDAT' + rows))
    idat = struct.pack('>I', len(rows)) + b'IDAT' + rows + crc
    path.write_bytes(content[:8] + ihdr + idat + content[-12:])
    with Image.open(path) as image:
        image.load()  # Pillow fills the missing rows
    assert probe_image(path) is None


# #20 item 7: a truncated JPEG is called truncated -------------------------------------------------
def test_truncated_jpeg_is_called_truncated(tmp_path):
    whole = noise_jpeg(tmp_path / 'whole.jpg')
    content = whole.read_bytes()
    (tmp_path / 'no_end.jpg').write_bytes(content[:-2])  # all the pixels, no end-of-image marker
    assert cv2.imread(str(tmp_path / 'no_end.jpg')) is not None  # OpenCV decodes it, warning only
    (tmp_path / 'half.jpg').write_bytes(content[:len(content) // 2])
    (tmp_path / 'tail.jpg').write_bytes(content + b'trailer of a camera \xff\xda\x00')
    for name in ('whole', 'no_end', 'half', 'tail'):
        write_yolo_labels(tmp_path / f'{name}.txt', ['0 .5 .5 .5 .5'])
    data = read_yolo_txt(tmp_path, classes=['a'])
    assert sorted(record.path.stem for record in data.images) == ['tail', 'whole']
    assert data.issues['truncated_image'] == 2 and data.issues['unreadable_image'] == 0
    assert data.issues.files('truncated_image') == [str(tmp_path / 'half.jpg'),
                                                    str(tmp_path / 'no_end.jpg')]


def test_exif_thumbnail_end_marker_does_not_hide_a_truncation(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    thumbnail = io.BytesIO()
    Image.fromarray(pixels[:16, :16]).save(thumbnail, 'JPEG')
    exif = Image.Exif()
    exif[0x0112] = 1
    path = tmp_path / 'thumb.jpg'
    Image.fromarray(pixels).save(path, exif=exif.tobytes() + thumbnail.getvalue(), quality=95)
    content = path.read_bytes()
    assert not probe_image(path).truncated
    path.write_bytes(content[:len(content) * 3 // 4])
    assert probe_image(path).truncated


# Clear errors instead of tracebacks ---------------------------------------------------------------
@pytest.mark.parametrize('coco, words', [
    (dict(images='a.jpg', annotations=[], categories=[{'id': 1, 'name': 'cup'}]),
     '`images` must be a list'),
    (dict(images=[], annotations='none', categories=[{'id': 1, 'name': 'cup'}]),
     '`annotations` must be a list'),
    (dict(images=[], annotations=[], categories=[{'id': [1], 'name': 'cup'}]),
     '`categories[0]` needs an integer `id`'),
    (dict(images=[], annotations=[], categories=[{'id': 1, 'name': 5}]),
     '`categories[0]` needs an integer `id` and a string `name`'),
])
def test_coco_fields_of_the_wrong_type_are_one_line(tmp_path, capsys, coco, words):
    (tmp_path / 'bad.json').write_text(json.dumps(coco))
    status, _, err = run_cli(['coco', tmp_path / 'bad.json', '--image-root', tmp_path,
                              '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and err.count('\n') == 1 and f'{tmp_path / "bad.json"}: ' in err, err
    assert words in err, err


def test_coco_rows_of_the_wrong_type_are_dropped_and_counted(tmp_path):
    for name in 'ab':
        write_image(tmp_path / f'{name}.jpg')
    images = [dict(id=1, file_name='a.jpg'), dict(id=[2], file_name='b.jpg'),
              dict(id=3, file_name=None), 'c.jpg']
    annotations = [cup(1), dict(id=2, image_id=1, category_id=1, bbox=['1', '1', '5', '5']),
                   dict(id=3, image_id=[1], category_id=1, bbox=[1, 1, 5, 5]),
                   dict(id=4, image_id=1, category_id=[1], bbox=[1, 1, 5, 5]),
                   dict(id=5, image_id=1, category_id=1, bbox=[1, 1, 5, 5], iscrowd='no'), 7]
    data = read_coco_json(coco_file(tmp_path / 'ann.json', images, annotations),
                          image_root=tmp_path)
    assert [record.path.name for record in data.images] == ['a.jpg'] and data.num_boxes == 1
    # 3 bad images, 2 annotations without an image, 2 bad bbox / iscrowd, 1 unknown category
    assert data.issues['malformed_row'] == 7 and data.issues['unknown_class'] == 1


def test_very_deep_json_and_yaml_are_one_line(tmp_path, capsys):
    (tmp_path / 'deep.json').write_text('[' * 200_000 + ']' * 200_000)
    status, _, err = run_cli(['coco', tmp_path / 'deep.json', '--image-root', tmp_path,
                              '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and 'nested too deeply' in err and 'deep.json' in err, err
    (tmp_path / 'deep.yaml').write_text('names: ' + '[' * 200_000 + ']' * 200_000 + '\n')
    status, _, err = run_cli(['yolo', '--data', tmp_path / 'deep.yaml',
                              '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and 'nested too deeply' in err and 'deep.yaml' in err, err


@pytest.mark.parametrize('text, words', [
    ('train: images\nnames: 5\n', '`names` must be a list of class names, got int'),
    ('train: images\npath: [a, b]\nnames: [a]\n', '`path` must be a folder'),
    ('train: {a: 1}\nnames: [a]\n', '`train` must be an image folder'),
    ('train: images\nnc: two\nnames: [a, b]\n', '`nc` must be the number of classes'),
    ('train: images\nnames: {0: a, x: b}\n', '`names` ids must be 0..1'),
    ('train: images\nnames: [a\n', 'not a valid dataset yaml'),
])
def test_data_yaml_fields_of_the_wrong_type_are_one_line(tmp_path, capsys, text, words):
    (tmp_path / 'data.yaml').write_text(text)
    status, _, err = run_cli(['yolo', '--data', tmp_path / 'data.yaml',
                              '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and err.count('\n') == 1 and f'{tmp_path / "data.yaml"}: ' in err, err
    assert words in err, err


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    # six levels of ten aliases: a million names once expanded (the real bomb has nine levels)
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    lines += [f'a{level}: &a{level} [{", ".join([f"*a{level - 1}"] * 10)}]'
              for level in range(1, 6)]
    (tmp_path / 'bomb.yaml').write_text('\n'.join(lines) + '\ntrain: images\nnames: *a5\n')
    status, _, err = run_cli(['yolo', '--data', tmp_path / 'bomb.yaml',
                              '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and 'aliases (*name) are not allowed' in err and 'bomb.yaml' in err, err


def test_non_utf8_files_are_one_line_or_their_rows_dropped(tmp_path, capsys):
    (tmp_path / 'names.txt').write_bytes('caf\u00e9\n'.encode('latin-1'))
    status, _, err = run_cli(['voc', one_class_voc(tmp_path / 'voc'), '--classes',
                              tmp_path / 'names.txt', '--out', tmp_path / 'o.json'], capsys)
    assert status == 2 and 'names.txt: the class names file is not UTF-8' in err, err
    write_image(tmp_path / 'y' / 'images' / 'p.jpg')
    write_yolo_labels(tmp_path / 'y' / 'labels' / 'p.txt', [])
    (tmp_path / 'y' / 'labels' / 'p.txt').write_bytes(b'0 .5 .5 .5 .5\n0 \xff.5 .5 .5 .5\n')
    data = read_yolo_txt(tmp_path / 'y' / 'images', classes=['a'])
    assert data.num_boxes == 1 and data.issues['malformed_row'] == 1


def test_missing_training_image_is_called_missing(tmp_path):
    write_image(tmp_path / 'a.jpg')
    ann = coco_file(tmp_path / 'ann.json', [dict(id=1, file_name='a.jpg', width=64, height=48)],
                    [cup(1)])
    dataset = build_dataset(ann_file=str(ann), data_prefix=dict(img=str(tmp_path) + '/'))
    (tmp_path / 'a.jpg').unlink()
    with pytest.raises(RuntimeError, match=r'a\.jpg: image file not found .*data_prefix') as error:
        dataset[0]
    assert 'corrupt' not in str(error.value)


def test_coco_configs_name_a_missing_or_corrupt_training_image(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import DATASETS
    config = Config.fromfile(REPO_ROOT / 'configs' / '_base_' / 'datasets' / 'yolov7_coco.py')
    coco_file(tmp_path / 'ann.json', [dict(id=1, file_name='gone.jpg', width=64, height=48),
                                      dict(id=2, file_name='bad.jpg', width=64, height=48)],
              [cup(1), cup(2)], categories=[dict(id=1, name='person')])
    (tmp_path / 'img').mkdir()
    (tmp_path / 'img' / 'bad.jpg').write_bytes(b'not an image')
    dataset_config = config.train_dataloader.dataset.dataset
    dataset_config.update(data_root=f'{tmp_path}/', ann_file='ann.json',
                          data_prefix=dict(img='img/'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_config)
    with pytest.raises(RuntimeError, match=r'gone\.jpg: image file not found'):
        dataset[0]
    with pytest.raises(RuntimeError, match=r'bad\.jpg: image could not be decoded'):
        dataset[1]
