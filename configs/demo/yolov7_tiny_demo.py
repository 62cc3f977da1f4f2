# yolov7-tiny on the embedded demo dataset (coloured shapes, 4 classes; made by
# `python -m yolov7_mmdet.datasets.demo data/demo_shapes`, or by tools/main_job.py), sized for about
# 10 minutes of training on 2 idle CPU cores. The official tiny recipe (mosaic 4/9, affine, mixup,
# HSV, flip; SGD, warmup, cosine, EMA), scaled down: 128 x 128 inputs, batch 8 with no gradient
# accumulation (nominal batch 8), a one-epoch warmup, 30 epochs, a checkpoint every epoch.
# Every size (train, test, test-time augmentation, loss img_size) is img_scale below.
# Measured runs are in configs/yolov7/README.md ("Demo").
_base_ = '../yolov7/yolov7_tiny_8xb16-300e_coco.py'

data_root = 'data/demo_shapes/'
classes = ('circle', 'square', 'triangle', 'cross')
img_scale = (128, 128)  # (width, height)
train_batch_size_per_gpu = 8
max_epochs = 30

model = dict(bbox_head=dict(num_classes=len(classes), loss=dict(img_size=img_scale[0])))

mosaic_affine = [
    dict(type='YOLOv7Mosaic', img_scale=img_scale, mosaic9_prob=0.2, prob=1.0, pad_val=114.0),
    dict(type='YOLOv7RandomAffine', img_scale=img_scale, max_translate_ratio=0.1,
         scaling_ratio_range=(0.5, 1.6), border_val=(114, 114, 114)),
]
train_pipeline = [
    *mosaic_affine,
    dict(type='YOLOv7MixUp', prob=0.05, alpha=8.0, beta=8.0, pre_transform=mosaic_affine),
    dict(type='YOLOv7HSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param')),
]
tta_pipeline = [  # tools/test.py --tta: at img_scale too (the base's is 640 px)
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
             [dict(type='Resize', scale=img_scale, keep_ratio=True)],
             [dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False)],
             [dict(type='LoadAnnotations', with_bbox=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'pad_param', 'flip', 'flip_direction'))],
         ])
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=2,
    dataset=dict(
        dataset=dict(
            data_root=data_root,
            ann_file='annotations/train.json',
            data_prefix=dict(img='images/train/'),
            metainfo=dict(classes=classes)),
        pipeline=train_pipeline))
# square letterbox, one image shape: the whole loader, without the COCO base's rectangular
# batch sampler and collate (DetInferencer reads test_dataloader's collate_fn as a registry name)
val_dataloader = dict(
    _delete_=True,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    batch_size=8,
    num_workers=1,
    dataset=dict(
        type='CocoJSONDataset',
        test_mode=True,
        data_root=data_root,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/'),
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(batch_size_per_gpu=train_batch_size_per_gpu, nominal_batch_size=train_batch_size_per_gpu)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2),  # tools/main_job.py may stop at a time budget
    param_scheduler=dict(warmup_epochs=1, min_warmup_iters=0))
env_cfg = dict(cudnn_benchmark=False)
sync_bn = None
