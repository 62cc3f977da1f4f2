"""Each dirty-data case is skipped or repaired, counted, and reported in one warning."""
from unittest import mock

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from PIL import Image, ImageOps

from source_fixtures import white_region, write_image, write_voc_xml, write_yolo_labels
from yolov7_mmdet.datasets.sources import (DataIssues, exif_to_decoded_frame, probe_image,
                                           read_voc, read_yolo_txt)


def decode_like_training(path) -> np.ndarray:
    """The pixels the training pipeline sees (mmcv's LoadImageFromFile, cv2 back-end)."""
    return LoadImageFromFile()(dict(img_path=str(path)))['img']


def yolo_dataset(tmp_path, labels_of_image: dict, classes=('a', 'b')):
    """``images/<name>.jpg`` (64x48) with ``labels/<name>.txt`` rows (``None``: no label file)."""
    for name, rows in labels_of_image.items():
        write_image(tmp_path / 'images' / f'{name}.jpg')
        if rows is not None:
            write_yolo_labels(tmp_path / 'labels' / f'{name}.txt', rows)
    return read_yolo_txt(tmp_path / 'images', classes=classes)


def test_background_images_are_kept_and_counted(tmp_path):
    data = yolo_dataset(tmp_path, {'no_label_file': None, 'empty': [], 'boxed': ['0 .5 .5 .5 .5']})
    assert [len(record.bboxes) for record in data.images] == [1, 0, 0]  # boxed, empty, no_label
    assert data.issues['background_image'] == 2


def test_label_files_without_images_are_skipped_and_counted(tmp_path):
    write_yolo_labels(tmp_path / 'labels' / 'ghost.txt', ['0 .5 .5 .5 .5'])
    write_yolo_labels(tmp_path / 'labels' / 'classes.txt', ['a', 'b'])  # labelImg's, not a label
    data = yolo_dataset(tmp_path, {'real': ['1 .5 .5 .5 .5']})
    assert len(data.images) == 1 and data.num_boxes == 1
    assert data.issues['orphan_label_file'] == 1


def test_voc_file_whose_image_is_missing_is_skipped(tmp_path):
    write_voc_xml(tmp_path / 'gone.xml', filename='gone.jpg', objects=[('a', (1, 1, 9, 9))])
    write_image(tmp_path / 'here.jpg')
    write_voc_xml(tmp_path / 'here.xml', filename='here.jpg', objects=[('a', (1, 1, 9, 9))])
    data = read_voc(sorted(tmp_path.glob('*.xml')))
    assert [record.path.name for record in data.images] == ['here.jpg']
    assert data.issues['missing_image'] == 1


def test_degenerate_boxes_are_dropped(tmp_path):
    write_image(tmp_path / 'img.jpg')
    objects = [('a', (10, 10, 10, 30)), ('a', (10, 20, 30, 20)), ('a', (30, 10, 20, 20)),
               ('a', (10, 10, 30, 30))]  # zero width, zero height, x2 < x1, fine
    data = read_voc([write_voc_xml(tmp_path / 'img.xml', filename='img.jpg', objects=objects)])
    np.testing.assert_array_equal(data.images[0].bboxes, [[10, 10, 30, 30]])
    assert data.issues['degenerate_box'] == 3


def test_boxes_outside_the_image_are_clipped_or_dropped(tmp_path):
    write_image(tmp_path / 'img.jpg', size=(64, 48))
    objects = [('a', (-5, 10, 20, 60)), ('a', (70, 10, 90, 20)), ('a', (5, -20, 30, -1)),
               ('a', (63.5, 5, 80, 20))]  # partly out, right of it, above it, 0.5 px left inside
    data = read_voc([write_voc_xml(tmp_path / 'img.xml', filename='img.jpg', objects=objects)])
    np.testing.assert_allclose(data.images[0].bboxes, [[0, 10, 20, 48]])
    assert data.issues['clipped_box'] == 1
    assert data.issues['outside_box'] == 3  # the 0.5 px sliver is under the 1 px minimum


def test_clipping_rounding_noise_is_not_reported(tmp_path):
    data = yolo_dataset(tmp_path, {'img': ['0 0.5 0.5 1.0000001 0.5']})
    np.testing.assert_allclose(data.images[0].bboxes, [[0, 12, 64, 36]])
    assert data.issues['clipped_box'] == 0


def test_png_named_jpg_is_kept_and_decodes_by_content(tmp_path):
    path = write_image(tmp_path / 'images' / 'png_inside.jpg', fmt='PNG', size=(32, 24),
                       white_box=(4, 4, 12, 20))
    write_yolo_labels(tmp_path / 'labels' / 'png_inside.txt', ['0 0.25 0.5 0.25 0.6667'])
    data = read_yolo_txt(tmp_path / 'images', classes=['a'])
    assert probe_image(path).format == 'PNG'
    assert data.issues['extension_mismatch'] == 1
    assert (data.images[0].width, data.images[0].height) == (32, 24)
    assert decode_like_training(path).shape == (24, 32, 3)


@pytest.mark.parametrize('content', [b'', b'not an image at all', 'truncated'])
def test_unreadable_images_are_skipped(tmp_path, content):
    path = tmp_path / 'images' / 'bad.jpg'
    if content == 'truncated':  # a valid JPEG header, then the data stops
        content = write_image(path, size=(256, 256)).read_bytes()[:600]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    write_image(tmp_path / 'images' / 'good.jpg')
    data = read_yolo_txt(tmp_path / 'images', classes=['a'])
    assert [record.path.name for record in data.images] == ['good.jpg']
    assert data.issues['unreadable_image'] == 1


def test_malformed_rows_unknown_classes_duplicates_and_polygons(tmp_path):
    rows = ['0 .5 .5 .5 .5', '0 .5 .5 .5 .5', 'x .5 .5 .5 .5', '0 .5 .5', '1.5 .5 .5 .5 .5',
            '7 .5 .5 .5 .5', '1 .25 .25 .75 .25 .5 .75', '0 nan .5 .5 .5', '']
    data = yolo_dataset(tmp_path, {'img': rows})
    record = data.images[0]
    np.testing.assert_allclose(record.bboxes, [[16, 12, 48, 36], [16, 12, 48, 36]])
    np.testing.assert_array_equal(record.labels, [0, 1])  # the polygon's bounds, class 1
    assert data.issues.as_dict() == dict(malformed_row=4, unknown_class=1, duplicate_box=1)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_box_transform_matches_pil_exif_transpose(tmp_path, orientation):
    stored_box = (5, 8, 25, 14)
    path = write_image(tmp_path / 'img.png', fmt='PNG', size=(40, 30), orientation=orientation,
                       white_box=stored_box)
    decoded = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    moved = exif_to_decoded_frame(np.array([stored_box], np.float32), orientation=orientation,
                                  stored_size=(40, 30))
    assert tuple(moved[0].astype(int)) == white_region(decoded)


def test_exif_rotated_yolo_labels_refer_to_the_decoded_image(tmp_path):
    # stored 64x48 with the object at x 4..20, y 30..46; EXIF 6 shows it 48x64 rotated clockwise
    path = write_image(tmp_path / 'images' / 'rot.jpg', orientation=6, white_box=(4, 30, 20, 46))
    decoded = decode_like_training(path)
    x1, y1, x2, y2 = white_region(decoded)
    height, width = decoded.shape[:2]
    row = f'0 {(x1 + x2) / 2 / width} {(y1 + y2) / 2 / height} {(x2 - x1) / width} {(y2 - y1) / height}'
    write_yolo_labels(tmp_path / 'labels' / 'rot.txt', [row])
    data = read_yolo_txt(tmp_path / 'images', classes=['a'])
    record = data.images[0]
    assert (record.width, record.height) == (width, height) == (48, 64)
    np.testing.assert_allclose(record.bboxes, [[x1, y1, x2, y2]], atol=1e-3)
    assert data.issues.as_dict() == dict(exif_oriented=1)


@pytest.mark.parametrize('annotated_frame', ['stored', 'decoded'])
def test_exif_rotated_voc_boxes_follow_the_size_they_were_drawn_at(tmp_path, annotated_frame):
    stored_box = (4, 30, 20, 46)
    path = write_image(tmp_path / 'rot.jpg', orientation=6, white_box=stored_box)
    decoded_box = white_region(decode_like_training(path))
    box, size = (stored_box, (64, 48)) if annotated_frame == 'stored' else (decoded_box, (48, 64))
    xml = write_voc_xml(tmp_path / 'rot.xml', filename='rot.jpg', objects=[('a', box)], size=size)
    data = read_voc([xml])
    np.testing.assert_allclose(data.images[0].bboxes, [decoded_box])
    assert data.issues['exif_boxes_rotated'] == (annotated_frame == 'stored')
    assert data.issues['exif_oriented'] == 1


def test_voc_size_mismatch_is_counted_and_boxes_stay_in_image_pixels(tmp_path):
    write_image(tmp_path / 'img.jpg', size=(64, 48))
    xml = write_voc_xml(tmp_path / 'img.xml', filename='img.jpg', size=(640, 480),
                        objects=[('a', (10, 10, 100, 20))])
    data = read_voc([xml])
    np.testing.assert_allclose(data.images[0].bboxes, [[10, 10, 64, 20]])
    assert data.issues['size_mismatch'] == 1 and data.issues['clipped_box'] == 1


def test_voc_difficult_unknown_class_and_image_found_by_stem(tmp_path):
    write_image(tmp_path / 'IMG_1.JPG')  # XML names a file that is not there; same stem is
    xml = write_voc_xml(tmp_path / 'IMG_1.xml', filename='renamed.jpg',
                        objects=[('cat', (1, 1, 20, 20), True), ('dog', (5, 5, 30, 30)),
                                 ('zebra', (2, 2, 9, 9))])
    data = read_voc([xml], classes=['cat', 'dog'])
    record = data.images[0]
    assert record.path.name == 'IMG_1.JPG'
    np.testing.assert_array_equal(record.labels, [0, 1])
    np.testing.assert_array_equal(record.ignore, [True, False])
    assert data.issues.as_dict() == dict(unknown_class=1)


def test_all_cases_are_reported_in_one_warning(tmp_path):
    write_yolo_labels(tmp_path / 'labels' / 'ghost.txt', ['0 .5 .5 .5 .5'])
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images' / 'broken.jpg').write_bytes(b'junk')
    data = yolo_dataset(tmp_path, {'bg': None, 'flat': ['0 .5 .5 0 .5', '0 .5 .5 .5 .5']})
    with mock.patch('yolov7_mmdet.datasets.sources.issues.print_log') as print_log:
        data.issues.log_summary('toy')
    print_log.assert_called_once()
    message, level = print_log.call_args.args[0], print_log.call_args.kwargs['level']
    assert level == 30  # logging.WARNING
    for case, count in dict(background_image=1, orphan_label_file=1, unreadable_image=1,
                            degenerate_box=1).items():
        assert f'{count:6d} ' in message and f'[{case}]' in message
    assert data.issues.as_dict() == dict(background_image=1, orphan_label_file=1,
                                         unreadable_image=1, degenerate_box=1)


def test_clean_data_logs_nothing():
    with mock.patch('yolov7_mmdet.datasets.sources.issues.print_log') as print_log:
        DataIssues().log_summary('clean')
    print_log.assert_not_called()


def test_unknown_issue_name_is_an_error():
    with pytest.raises(KeyError, match='unknown data issue'):
        DataIssues().add('typo_case')


def test_image_list_files_resolve_relative_lines_and_skip_the_orphan_check(tmp_path):
    write_image(tmp_path / 'images' / 'a.jpg')
    write_image(tmp_path / 'images' / 'b.jpg')
    write_yolo_labels(tmp_path / 'labels' / 'a.txt', ['0 .5 .5 .5 .5'])
    write_yolo_labels(tmp_path / 'labels' / 'b.txt', ['0 .5 .5 .5 .5'])  # b is in another split
    (tmp_path / 'train.txt').write_text('./images/a.jpg\n')
    data = read_yolo_txt(tmp_path / 'train.txt', classes=['a'])
    assert [record.path.name for record in data.images] == ['a.jpg']
    assert data.issues.as_dict() == {}
