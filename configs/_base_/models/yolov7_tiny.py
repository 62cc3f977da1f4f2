# YOLOv7-tiny (LeakyReLU 0.1), official cfg/training/yolov7-tiny.yaml: 6,228,762 parameters
# (80 classes) in training, 6,219,709 after switch_to_deploy(). Loss gains of hyp.scratch.tiny.yaml.
_base_ = './yolov7_l.py'

tiny_act_cfg = dict(type='LeakyReLU', negative_slope=0.1)
model = dict(
    backbone=dict(arch='tiny'),
    neck=dict(arch='tiny', in_channels=(128, 256, 512), act_cfg=tiny_act_cfg),
    bbox_head=dict(
        in_channels=(64, 128, 256),
        feat_channels=(128, 256, 512),
        use_repconv=False,
        act_cfg=tiny_act_cfg,
        anchors=[[(10, 13), (16, 30), (33, 23)],
                 [(30, 61), (62, 45), (59, 119)],
                 [(116, 90), (156, 198), (373, 326)]],
        loss=dict(cls_gain=0.5, obj_gain=1.0)))
