# YOLOv7-D6, official cfg/training/yolov7-d6.yaml: 154,709,364 parameters (80 classes) with the aux
# head, 133,757,052 after switch_to_deploy(). 8-conv ELANs.
_base_ = './yolov7_w6.py'

model = dict(
    backbone=dict(arch='d6'),
    neck=dict(arch='d6', in_channels=(384, 768, 1152, 1536)),
    bbox_head=dict(
        in_channels=(192, 384, 576, 768),
        feat_channels=(384, 768, 1152, 1536),
        aux_in_channels=(192, 384, 576, 768),
        aux_feat_channels=(384, 768, 1152, 1536)))
