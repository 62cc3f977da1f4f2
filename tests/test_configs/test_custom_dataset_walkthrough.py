"""docs/custom_dataset.md, run as written: issue #20's "Done when: docs/custom_dataset.md runs as
written on a one-folder VOC set and on a Roboflow export with a test split, from a config in another
folder".

Each flow runs the doc's commands as subprocesses (``to_coco.py`` -> ``create_config.py`` ->
``train.py`` -> ``test.py``) on small synthetic files, with the config written into a folder outside
the repository and the tools started from a third folder (neither the repository nor the config's).
Only what keeps it fast departs from the doc: 64 px, batch 2, one epoch, no DataLoader workers.
"""
from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_engine'))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_datasets'))
from source_fixtures import write_image, write_voc_xml  # noqa: E402
from tiny_run import REPO_ROOT, run_tool  # noqa: E402

FAST = ['--model', 'tiny', '--size', '64', '--batch', '2', '--epochs', '1', '--nominal-batch', '2']
NO_WORKERS = [f'{loader}.{key}'
              for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
              for key in ('num_workers=0', 'persistent_workers=False')]
METRIC = re.compile(r'coco/bbox_mAP: (-?\d+\.\d+)')


def run_ok(args: list, cwd: Path):
    result = run_tool(args, cwd=cwd)
    assert result.returncode == 0, f'{args}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}'
    return result.stdout + result.stderr


def box_image(path: Path, boxes, size=(96, 80)) -> Path:
    """A JPEG with a white rectangle per box (x1, y1, x2, y2) on a dark background."""
    write_image(path, size=size, white_box=boxes[0])
    if len(boxes) > 1:
        pixels = np.array(Image.open(path))
        for x1, y1, x2, y2 in boxes[1:]:
            pixels[y1:y2, x1:x2] = 255
        Image.fromarray(pixels).save(path, quality=95)
    return path


def truncated_jpeg(path: Path) -> Path:
    """A noise JPEG cut in half: a valid header, then the data stops (as in the converter tests)."""
    noise = np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    return path


def boxes_of(index: int):
    boxes = [(4 + index, 6, 40 + index, 50)]
    if index % 2:
        boxes.append((50, 20, 90, 70))
    return boxes


@pytest.fixture(scope='module')
def places(tmp_path_factory):
    """The user's data, a config folder elsewhere, and the folder the commands run from."""
    root = tmp_path_factory.mktemp('walkthrough')
    folders = {name: root / name for name in ('user_data', 'converted', 'elsewhere', 'cwd', 'work')}
    for folder in folders.values():
        folder.mkdir()
    assert not str(folders['cwd']).startswith(str(REPO_ROOT))
    return folders


def test_one_folder_voc_set_with_val_fraction(places):
    voc = places['user_data'] / 'kangaroos'  # images and XMLs side by side, no split lists
    for index in range(12):
        box_image(voc / f'k{index:02d}.jpg', boxes_of(index))
        write_voc_xml(voc / f'k{index:02d}.xml', filename=f'k{index:02d}.jpg', size=(96, 80),
                      objects=[('kangaroo', box) for box in boxes_of(index)])
    truncated_jpeg(voc / 'k12.jpg')
    write_voc_xml(voc / 'k12.xml', filename='k12.jpg', size=(96, 80),
                  objects=[('kangaroo', (4, 4, 30, 30))])
    data = places['converted'] / 'voc'
    cwd, config = places['cwd'], places['elsewhere'] / 'cfgs' / 'mine.py'

    out = run_ok(['tools/dataset_converters/to_coco.py', 'voc', voc, '--val-fraction', '0.25',
                  '--seed', '0', '--out', data], cwd)
    train, val = (json.loads((data / name).read_text()) for name in ('train.json', 'val.json'))
    names = [image['file_name'] for split in (train, val) for image in split['images']]
    assert sorted(names) == [f'k{index:02d}.jpg' for index in range(12)]  # k12 skipped
    assert len(val['images']) == 3 and len(train['images']) == 9
    assert len(train['annotations']) + len(val['annotations']) == sum(
        len(boxes_of(index)) for index in range(12))
    assert [c['name'] for c in train['categories']] == ['kangaroo'] == [
        c['name'] for c in val['categories']]
    report = (data / 'issues.txt').read_text()
    assert '1 truncated image files' in report and '[truncated_image]' in report, report
    assert str(voc / 'k12.jpg') in report and 'truncated' in out

    out = run_ok(['tools/misc/create_config.py', '--data', data / 'train.json',
                  data / 'val.json', *FAST, '--out', config], cwd)
    assert f'wrote {config}' in out
    cfg = Config.fromfile(str(config))
    assert cfg.classes == ('kangaroo',) and cfg.model.bbox_head.num_classes == 1
    assert cfg.test_ann_file is None and cfg.test_evaluator.ann_file == str(data / 'val.json')

    work = places['work'] / 'voc'
    out = run_ok(['tools/train.py', config, '--work-dir', work, '--cfg-options', *NO_WORKERS], cwd)
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file(), sorted(p.name for p in work.iterdir())
    assert 'coco/bbox_mAP' in out  # validated after the (last) epoch

    results = places['work'] / 'voc_results.pkl'
    out = run_ok(['tools/test.py', config, checkpoint, '--work-dir', places['work'] / 'voc_test',
                  '--out', results, '--cfg-options', *NO_WORKERS], cwd)
    assert METRIC.search(out) and 'coco/bbox_mAP_50' in out, out[-2000:]
    with open(results, 'rb') as file:
        predictions = pickle.load(file)
    assert sorted(Path(p['img_path']).name for p in predictions) == sorted(
        image['file_name'] for image in val['images'])  # without --test: the val images


ROBOFLOW_CLASSES = ['cat', 'dog']
SPLIT_SIZES = dict(train=8, valid=3, test=5)
OUT_NAME = dict(train='train', valid='val', test='test')  # doc: data/mine/{train,val,test}.json


def roboflow_export(export: Path) -> None:
    """``export/{train,valid,test}``, each with its images and an ``_annotations.coco.json`` as
    Roboflow writes it: category 0 is a placeholder named after the project (supercategory
    'none'), the real classes are 1.. with that name as their supercategory."""
    categories = [dict(id=0, name='pets-xyz', supercategory='none')] + [
        dict(id=index + 1, name=name, supercategory='pets-xyz')
        for index, name in enumerate(ROBOFLOW_CLASSES)]
    for split, count in SPLIT_SIZES.items():
        images, annotations = [], []
        for index in range(count):
            name = f'{split}_{index}_jpg.rf.{index:04x}.jpg'
            boxes = boxes_of(index)
            box_image(export / split / name, boxes)
            images.append(dict(id=index, license=1, file_name=name, height=80, width=96,
                               date_captured='2026-01-01T00:00:00+00:00'))
            for k, (x1, y1, x2, y2) in enumerate(boxes):
                annotations.append(dict(id=len(annotations), image_id=index, category_id=1 + k % 2,
                                        bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                                        segmentation=[], iscrowd=0))
        (export / split / '_annotations.coco.json').write_text(json.dumps(dict(
            info=dict(year='2026', version='1', description='Exported from roboflow.com'),
            licenses=[dict(id=1, name='CC BY 4.0')], categories=categories, images=images,
            annotations=annotations)))


def test_roboflow_export_with_a_test_split(places):
    export = places['user_data'] / 'export'
    roboflow_export(export)
    data = places['converted'] / 'pets'
    cwd, config = places['cwd'], places['elsewhere'] / 'cfgs' / 'pets.py'

    for split in SPLIT_SIZES:  # as the doc says; the placeholder category 0 is left out
        out = run_ok(['tools/dataset_converters/to_coco.py', 'coco',
                      export / split / '_annotations.coco.json', '--image-root', export / split,
                      '--out', data / f'{OUT_NAME[split]}.json'], cwd)
        assert "'pets-xyz' is the supercategory of every other category" in out, out
        assert 'have no box' not in out, out
    converted = {split: json.loads((data / f'{OUT_NAME[split]}.json').read_text())
                 for split in SPLIT_SIZES}
    for split, count in SPLIT_SIZES.items():
        assert len(converted[split]['images']) == count
        assert [c['name'] for c in converted[split]['categories']] == ROBOFLOW_CLASSES, split

    out = run_ok(['tools/misc/create_config.py', '--data', data / 'train.json', data / 'val.json',
                  '--test', data / 'test.json', *FAST, '--out', config], cwd)
    assert f'wrote {config}' in out
    cfg = Config.fromfile(str(config))
    assert cfg.classes == tuple(ROBOFLOW_CLASSES) and cfg.model.bbox_head.num_classes == 2
    assert cfg.test_evaluator.ann_file == str(data / 'test.json')
    assert cfg.val_evaluator.ann_file == str(data / 'val.json')

    work = places['work'] / 'pets'
    run_ok(['tools/train.py', config, '--work-dir', work, '--cfg-options', *NO_WORKERS], cwd)
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()

    results = places['work'] / 'pets_results.pkl'
    out = run_ok(['tools/test.py', config, checkpoint, '--work-dir', places['work'] / 'pets_test',
                  '--out', results, '--cfg-options', *NO_WORKERS], cwd)
    assert METRIC.search(out), out[-2000:]
    with open(results, 'rb') as file:
        predictions = pickle.load(file)
    test_files = {image['file_name'] for image in converted['test']['images']}
    assert len(predictions) == SPLIT_SIZES['test']
    assert {Path(p['img_path']).name for p in predictions} == test_files
    assert {Path(p['img_path']).parent for p in predictions} == {export / 'test'}
