"""Reading detection datasets as users have them: Pascal VOC XML, YOLO txt, COCO JSON.

Every reader returns :class:`DetectionData` (class names + images with clean pixel boxes) and counts
what it skipped or repaired in :class:`DataIssues` (one warning summary). The converters in
``tools/dataset_converters`` write it as COCO JSON for :class:`CocoJSONDataset` (mmdet's
``CocoDataset``, class names from the file). See ``docs/datasets.md``.
"""
from .class_names import load_class_names
from .coco_dataset import CocoJSONDataset
from .coco_json import (class_warnings, issues_report_path, load_coco_dict, read_coco_json,
                        save_as_coco, to_coco_dict, write_coco_json)
from .image_probe import ImageProbe, exif_to_decoded_frame, probe_image
from .issues import ISSUE_CASES, DataIssues
from .records import DetectionData, ImageRecord, build_record
from .voc import read_voc, voc_annotation_files
from .yolo_txt import YoloDataYaml, list_yolo_images, read_data_yaml, read_yolo_txt, yolo_label_path

__all__ = [
    'CocoJSONDataset', 'DataIssues', 'class_warnings', 'issues_report_path', 'load_coco_dict', 'DetectionData', 'ISSUE_CASES',
    'ImageProbe', 'ImageRecord', 'YoloDataYaml', 'build_record',
    'exif_to_decoded_frame', 'list_yolo_images', 'load_class_names', 'probe_image', 'read_coco_json',
    'read_data_yaml', 'read_voc', 'read_yolo_txt', 'save_as_coco', 'to_coco_dict',
    'voc_annotation_files', 'write_coco_json', 'yolo_label_path'
]
