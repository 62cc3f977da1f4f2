# COCO 2017 for yolov7-tiny (640): the augmentation of data/hyp.scratch.tiny.yaml, which is weaker
# than p5's: translate 0.1, scale 0.5 (s ~ U(0.5, 1.6)), mixup 0.05, paste_in 0.05.
_base_ = './yolov7_coco.py'

img_scale = (640, 640)  # (width, height)

mosaic_affine = [
    dict(type='YOLOv7Mosaic', img_scale=img_scale, mosaic9_prob=0.2, prob=1.0, pad_val=114.0),
    dict(type='YOLOv7RandomAffine', img_scale=img_scale, max_translate_ratio=0.1,
         scaling_ratio_range=(0.5, 1.6), border_val=(114, 114, 114)),
]
train_pipeline = [
    *mosaic_affine,
    dict(type='YOLOv7MixUp', prob=0.05, alpha=8.0, beta=8.0, pre_transform=mosaic_affine),
    dict(type='YOLOv7HSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
    dict(type='YOLOv7PasteIn', prob=0.05, img_scale=img_scale),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
