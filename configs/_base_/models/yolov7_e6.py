# YOLOv7-E6, official cfg/training/yolov7-e6.yaml: 111,898,292 parameters (80 classes) with the aux
# head, 97,202,940 after switch_to_deploy(). DownC transitions, 6-conv ELANs.
_base_ = './yolov7_w6.py'

model = dict(
    backbone=dict(arch='e6'),
    neck=dict(arch='e6', in_channels=(320, 640, 960, 1280)),
    bbox_head=dict(
        in_channels=(160, 320, 480, 640),
        feat_channels=(320, 640, 960, 1280),
        aux_in_channels=(160, 320, 480, 640),
        aux_feat_channels=(320, 640, 960, 1280)))
