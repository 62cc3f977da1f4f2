# YOLOX-S's PAFPN and decoupled head on the YOLOv7-tiny backbone, mmdet's YOLOX-S recipe otherwise.
# YOLOv7-tiny's stages 2-4 have exactly CSPDarknet-S's widths: strides (8, 16, 32), channels
# (128, 256, 512) = YOLOv7Backbone(arch='tiny').out_channels / .strides. Both use BN(eps 1e-3,
# momentum 0.03); tiny keeps its LeakyReLU(0.1).
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'

custom_imports = dict(imports=['yolov7_mmdet'], allow_failed_imports=False)

model = dict(
    # YOLOv7 networks take RGB in [0, 1] (the official `img / 255`).
    data_preprocessor=dict(mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='YOLOv7Backbone',
        arch='tiny',
        out_indices=(2, 3, 4),
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(in_channels=[128, 256, 512]))

# This package's safety hooks, as in every config it ships (README "Safety hooks in any config"):
# atomic checkpoints, a clear error when num_classes or the annotations do not fit, stop on NaN.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = _base_.custom_hooks + [
    dict(type='CheckpointLoadCheckHook'), dict(type='DatasetClassesCheckHook'),
    dict(type='StopOnNonFiniteLossHook')]
