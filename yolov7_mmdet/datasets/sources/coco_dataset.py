"""``CocoJSONDataset``: mmdet's ``CocoDataset`` whose class names come from the annotation file.

mmdet's ``CocoDataset`` takes its classes from ``metainfo`` and, when none are given, uses the 80
COCO names and keeps only the categories with those names: a converted raccoon or VOC dataset would
silently lose every box. This subclass differs in one thing: without ``metainfo['classes']`` it uses
the file's ``categories`` in id order (what the converters in ``tools/dataset_converters`` write).
Given ``metainfo['classes']``, it behaves exactly like ``CocoDataset``.

An image that fails to load (a truncated or corrupt file that a converter run with ``--no-decode``
let through) stops training with an error naming the file and the fix, instead of mmcv's bare
assertion deep in a data-loader worker.
"""
import json
from typing import List

import cv2

from mmengine.fileio import get_local_path
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class CocoJSONDataset(CocoDataset):
    """COCO-format dataset with the class names of its annotation file (unless given).

    Takes the arguments of mmdet's ``CocoDataset``. The annotation file is read twice when the
    classes come from it (once here for ``categories``); give ``metainfo=dict(classes=...)`` to
    avoid that on very large files.
    """

    METAINFO = dict(classes=None, palette=None)  # classes: from the file unless given

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except (AssertionError, OSError, cv2.error) as error:
            if isinstance(error, AssertionError) and 'failed to load image' not in str(error):
                raise  # another transform's check, not the image file
            path = self.get_data_info(idx).get('img_path')
            raise RuntimeError(
                f'{path}: image could not be loaded ({error}); it is probably truncated or '
                f'corrupt. If {self.ann_file} was converted with --no-decode, convert it again '
                'without --no-decode: every image is then decoded and unreadable ones are '
                'skipped and listed.') from error

    def load_data_list(self) -> List[dict]:
        if not self._metainfo.get('classes'):
            self._metainfo['classes'] = self._classes_of_ann_file()
        return super().load_data_list()

    def _classes_of_ann_file(self) -> tuple:
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            with open(local_path, encoding='utf-8') as file:
                categories = json.load(file).get('categories', [])
        if not categories:
            raise ValueError(f'{self.ann_file} has no `categories`; give metainfo=dict(classes=...)')
        return tuple(category['name'] for category in sorted(categories, key=lambda c: c['id']))
