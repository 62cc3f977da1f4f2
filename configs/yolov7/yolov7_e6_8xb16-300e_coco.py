# YOLOv7-E6 (P6, aux head), 1280: hyp.scratch.p6 (lrf 0.2, mixup 0.15, translate 0.2, scale 0.9).
# 8 GPUs x 16 images: the official total batch 128 (its README trains P5 models on 4 x 32 and P6
# models on 8 x 16, with --sync-bn); fewer images per step are accumulated to the nominal batch 64.
# 300 epochs; COCO bbox mAP on val2017 with the official test settings (score 0.001, NMS IoU 0.65,
# at most 300 boxes); the best checkpoint is kept.
_base_ = [
    '../_base_/models/yolov7_e6.py',
    '../_base_/datasets/yolov7_coco_p6.py',
    '../_base_/schedules/yolov7_p6_300e.py',
]

default_hooks = dict(checkpoint=dict(save_best='coco/bbox_mAP', rule='greater'))
sync_bn = 'torch'  # the official multi-GPU commands pass --sync-bn
