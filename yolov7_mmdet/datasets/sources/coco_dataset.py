"""``CocoJSONDataset``: mmdet's ``CocoDataset`` whose class names come from the annotation file.

mmdet's ``CocoDataset`` takes its classes from ``metainfo`` and, when none are given, uses the 80
COCO names and keeps only the categories with those names: a converted raccoon or VOC dataset would
silently lose every box. This subclass differs in one thing: without ``metainfo['classes']`` it uses
the file's ``categories`` in id order (what the converters in ``tools/dataset_converters`` write).
Given ``metainfo['classes']``, it behaves exactly like ``CocoDataset``. On the COCO files (whose
categories are the 80 COCO names in id order) it also has ``CocoDataset``'s classes and palette,
which is why the COCO configs of this project use it too.

An image that fails to load stops training with one error naming the file and the fix, instead
of mmcv's bare assertion or ``FileNotFoundError`` deep in a data-loader worker: a missing file
(wrong image folder, or deleted after conversion) is called missing; a file that cannot be decoded
(a truncated or corrupt file that a converter run with ``--no-decode`` let through) is called so.
"""
import os.path as osp

import cv2

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS


@DATASETS.register_module()
class CocoJSONDataset(CocoDataset):
    """COCO-format dataset with the class names of its annotation file (unless given).

    Takes the arguments of mmdet's ``CocoDataset``. The annotation file is read once: the classes
    are taken from the COCO API object that ``CocoDataset.load_data_list`` builds.
    """

    METAINFO = dict(classes=None, palette=None)  # classes: from the file unless given

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except (AssertionError, OSError, cv2.error) as error:
            if isinstance(error, AssertionError) and 'failed to load image' not in str(error):
                raise  # another transform's check, not the image file
            path = self.get_data_info(idx).get('img_path')
            raise RuntimeError(image_load_error(path, self.ann_file, error)) from error

    def COCOAPI(self, ann_file: str) -> COCO:  # noqa: N802  (CocoDataset's name for its API)
        """mmdet's COCO API on ``ann_file``; sets the classes from its categories if not given."""
        coco = COCO(ann_file)
        if not self._metainfo.get('classes'):
            categories = sorted(coco.dataset.get('categories') or [], key=lambda c: c['id'])
            if not categories:
                raise ValueError(f'{self.ann_file} has no `categories`; give '
                                 'metainfo=dict(classes=...)')
            classes = tuple(category['name'] for category in categories)
            self._metainfo['classes'] = classes
            if classes == CocoDataset.METAINFO['classes']:
                self._metainfo['palette'] = CocoDataset.METAINFO['palette']
        return coco


def image_load_error(path: str, ann_file: str, error: Exception) -> str:
    """The message for an image of ``ann_file`` that failed to load: missing, or not decodable."""
    if path and not osp.exists(path):
        return (f'{path}: image file not found ({ann_file} names it). Check the image folder '
                '(data_prefix=dict(img=...), the image root that to_coco.py printed), or convert '
                'again if images were moved or deleted since.')
    return (f'{path}: image could not be decoded ({error}); it is probably truncated or corrupt. '
            f'If {ann_file} was converted with --no-decode, convert it again without '
            '--no-decode: every image is then decoded and unreadable ones are skipped and listed.')
