# YOLOv7 (L), official cfg/training/yolov7.yaml: 37,622,682 parameters (80 classes) in training,
# 36,905,341 after switch_to_deploy(). Loss gains of data/hyp.scratch.p5.yaml.
# Components come from yolov7_mmdet (configs add custom_imports=dict(imports=['yolov7_mmdet'])).
model = dict(
    type='YOLOv7',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_value=114),
    backbone=dict(type='YOLOv7Backbone', arch='l'),
    neck=dict(type='YOLOv7PAFPN', arch='l', in_channels=(512, 1024, 1024)),
    bbox_head=dict(
        type='YOLOv7Head',
        num_classes=80,
        in_channels=(128, 256, 512),
        feat_channels=(256, 512, 1024),
        use_repconv=True,
        anchors=[[(12, 16), (19, 36), (40, 28)],
                 [(36, 75), (76, 55), (72, 146)],
                 [(142, 110), (192, 243), (459, 401)]],
        strides=(8, 16, 32),
        loss=dict(
            type='YOLOv7Loss',
            box_gain=0.05,
            obj_gain=0.7,
            cls_gain=0.3,
            img_size=640,
            assigner=dict(
                type='YOLOv7SimOTAAssigner',
                topk=10,
                candidate_region=dict(type='YOLOv7CandidateRegion', neighbour_offset=0.5, anchor_t=4.0)),
            aux_assigner=None)),
    train_cfg=dict(),
    # The official test.py protocol; split_thr keeps mmcv's batched_nms to one class-offset NMS.
    test_cfg=dict(
        multi_label=True,
        nms_pre=30000,
        score_thr=0.001,
        nms=dict(type='nms', iou_threshold=0.65, split_thr=10**9),
        max_per_img=300))
