"""The helpers of ``tools/main_job.py`` (the full job runs in ``tools/run_demo.sh``, not here)."""
import importlib.util
import os
from pathlib import Path

import pytest
from mmengine.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('main_job', REPO_ROOT / 'tools' / 'main_job.py')
main_job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(main_job)


def test_data_root_options_reach_every_dataset_and_evaluator(tmp_path):
    cfg = Config.fromfile(main_job.DEFAULT_CONFIG)
    cfg.merge_from_dict(main_job.parse_options(main_job.data_root_options(str(tmp_path))))
    root = str(tmp_path) + '/'
    assert cfg.train_dataloader.dataset.dataset.data_root == root
    assert cfg.val_dataloader.dataset.data_root == cfg.test_dataloader.dataset.data_root == root
    assert cfg.val_evaluator.ann_file == cfg.test_evaluator.ann_file == \
        str(tmp_path / 'annotations' / 'val.json')


def test_latest_checkpoint_prefers_the_newest_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        main_job.latest_checkpoint(str(tmp_path))
    best = tmp_path / 'best_coco_bbox_mAP_epoch_2.pth'
    last = tmp_path / 'epoch_3.pth'
    best.write_bytes(b'0')
    last.write_bytes(b'0')
    (tmp_path / 'last_checkpoint').write_text(str(last))
    os.utime(best, (1, 1))
    assert main_job.latest_checkpoint(str(tmp_path)) == str(last)
    os.utime(best, (2e9, 2e9))
    assert main_job.latest_checkpoint(str(tmp_path)) == str(best)
