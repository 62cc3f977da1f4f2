"""Reading detection datasets as users have them: Pascal VOC XML, YOLO txt, COCO JSON.

Every reader returns :class:`DetectionData` (class names + images with clean pixel boxes) and counts
what it skipped or repaired in :class:`DataIssues` (one warning summary). The converters in
``tools/dataset_converters`` write it as COCO JSON for :class:`CocoJSONDataset` (mmdet's
``CocoDataset``, class names from the file). See ``docs/datasets.md``.
"""
from .class_names import load_class_names
from .coco_dataset import CocoJSONDataset
from .coco_json import (SPLIT_FILES, SPLIT_REPORT, class_warnings, coco_box_counts, config_line,
                        issues_report_path, load_coco_dict, read_coco_json, save_as_coco,
                        save_split_as_coco, to_coco_dict, write_coco_json)
from .image_probe import ImageProbe, exif_to_decoded_frame, probe_image
from .issues import ISSUE_CASES, DataIssues
from .output_files import refuse_overwriting_inputs, write_all_or_nothing
from .records import DetectionData, ImageRecord, build_record, unique_images
from .split import box_counts, image_groups, split_by_class, split_class_warnings
from .text_files import load_json, load_yaml, printable, read_text
from .voc import read_voc, voc_annotation_files
from .yolo_txt import YoloDataYaml, list_yolo_images, read_data_yaml, read_yolo_txt, yolo_label_path

__all__ = [
    'CocoJSONDataset', 'DataIssues', 'DetectionData', 'ISSUE_CASES',
    'ImageProbe', 'ImageRecord', 'SPLIT_FILES', 'SPLIT_REPORT', 'YoloDataYaml', 'box_counts',
    'build_record', 'class_warnings', 'coco_box_counts', 'config_line',
    'exif_to_decoded_frame', 'image_groups', 'issues_report_path', 'list_yolo_images',
    'load_class_names', 'load_coco_dict', 'load_json', 'load_yaml', 'printable', 'probe_image',
    'read_coco_json', 'read_data_yaml', 'read_text', 'read_voc', 'read_yolo_txt',
    'refuse_overwriting_inputs', 'save_as_coco', 'save_split_as_coco', 'split_by_class',
    'split_class_warnings', 'to_coco_dict', 'unique_images', 'voc_annotation_files',
    'write_all_or_nothing', 'write_coco_json', 'yolo_label_path'
]
