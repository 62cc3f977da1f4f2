# YOLOv7-W6, official cfg/training/yolov7-w6.yaml (trained with train_aux.py at 1280):
# 82,312,436 parameters (80 classes) with the aux head, 70,394,300 after switch_to_deploy().
# Four levels (strides 8-64); the aux head reads the neck's top-down taps, with the coarse assigner.
_base_ = './yolov7_l.py'

model = dict(
    data_preprocessor=dict(pad_size_divisor=64),
    backbone=dict(arch='w6'),
    neck=dict(arch='w6', in_channels=(256, 512, 768, 1024)),
    bbox_head=dict(
        in_channels=(128, 256, 384, 512),
        feat_channels=(256, 512, 768, 1024),
        use_repconv=False,
        aux_in_channels=(128, 256, 384, 512),
        aux_feat_channels=(320, 640, 960, 1280),
        anchors=[[(19, 27), (44, 40), (38, 94)],
                 [(96, 68), (86, 152), (180, 137)],
                 [(140, 301), (303, 264), (238, 542)],
                 [(436, 615), (739, 380), (925, 792)]],
        strides=(8, 16, 32, 64),
        loss=dict(
            img_size=1280,
            assigner=dict(topk=20),
            aux_assigner=dict(
                _delete_=True,  # the P5 base has no aux assigner (None)
                type='YOLOv7SimOTAAssigner',
                topk=20,
                candidate_region=dict(type='YOLOv7CandidateRegion', neighbour_offset=1.0, anchor_t=4.0)))))
