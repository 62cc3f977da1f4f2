# Faster R-CNN (FPN) on the YOLOv7-L backbone (E-ELAN stages), mmdet's R50 1x recipe otherwise.
# The FPN reads stages 1-4: strides (4, 8, 16, 32), channels (256, 512, 1024, 1024), i.e.
# YOLOv7Backbone(arch='l', out_indices=(1, 2, 3, 4)).out_channels / .strides.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['yolov7_mmdet'], allow_failed_imports=False)

model = dict(
    # YOLOv7 networks take RGB in [0, 1] (the official `img / 255`), not ImageNet-normalised input.
    data_preprocessor=dict(mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='YOLOv7Backbone',
        arch='l',
        out_indices=(1, 2, 3, 4),
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(in_channels=[256, 512, 1024, 1024]))

# This package's safety hooks, as in every config it ships (README "Safety hooks in any config"):
# atomic checkpoints, a clear error when num_classes or the annotations do not fit, stop on NaN.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='CheckpointLoadCheckHook'), dict(type='DatasetClassesCheckHook'),
                dict(type='StopOnNonFiniteLossHook')]
