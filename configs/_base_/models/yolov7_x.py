# YOLOv7-X, official cfg/training/yolov7x.yaml: 71,347,394 parameters (80 classes) in training,
# 71,311,741 after switch_to_deploy(). Plain 3x3 head convs (no RepConv).
_base_ = './yolov7_l.py'

model = dict(
    backbone=dict(arch='x'),
    neck=dict(arch='x', in_channels=(640, 1280, 1280)),
    bbox_head=dict(in_channels=(160, 320, 640), feat_channels=(320, 640, 1280), use_repconv=False))
