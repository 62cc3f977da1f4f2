# RetinaNet's head on the whole YOLOv7-tiny feature extractor: backbone *and* YOLOv7's PAFPN neck.
# The YOLOv7 neck returns a different width per level (tiny: 64, 128, 256 at strides 8, 16, 32;
# L: 128, 256, 512), while mmdet's RetinaHead (like most mmdet heads) expects one width on every
# level: without the ChannelMapper it fails with a channel-mismatch error in its first conv.
# mmdet builds a list of necks as a sequence: YOLOv7PAFPN, then ChannelMapper to 256 channels
# (a 1x1 ConvModule per level). docs/neck.md, "Using the neck with other heads".
_base_ = './retinanet_yolov7-l_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='tiny', out_indices=(2, 3, 4)),
    neck=[
        dict(type='YOLOv7PAFPN', arch='tiny', in_channels=(128, 256, 512),
             act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
        dict(type='ChannelMapper', in_channels=[64, 128, 256], out_channels=256, kernel_size=1),
    ],
    # three levels (strides 8, 16, 32) instead of the FPN's five
    bbox_head=dict(anchor_generator=dict(strides=[8, 16, 32])))
