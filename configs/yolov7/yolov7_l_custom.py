# yolov7-l on your own COCO-JSON dataset (tools/dataset_converters/to_coco.py makes one from
# VOC XML, YOLO txt or COCO), written by tools/misc/create_config.py; docs/custom_dataset.md.
# Change the variables of the first block; every other field derives from them. Edit this file
# rather than inheriting it and re-assigning a variable: mmengine does not re-evaluate the fields
# below in a child config (InputSizeCheckHook then refuses the sizes that disagree).
_base_ = [
    '../_base_/models/yolov7_l.py',
    '../_base_/datasets/yolov7_coco.py',
    '../_base_/schedules/yolov7_300e.py',
]

# ---------------------------------------------------------------- what you change
train_ann_file = 'data/cards/train.json'  # COCO JSON (to_coco.py --out)
train_img_dir = '../shared/datasets/cards/images/train/'  # the folder its file_names are relative to
val_ann_file = 'data/cards/val.json'
val_img_dir = '../shared/datasets/cards/images/test/'
classes = ('nine', 'ten', 'jack', 'queen', 'king', 'ace')  # in category-id order
img_scale = (640, 640)  # (width, height) of every input, a multiple of 32
train_batch_size_per_gpu = 16
max_epochs = 100
# Fine-tune from converted official weights (docs/pretrained.md says how to make them), e.g.
# 'work_dirs/pretrained/yolov7-l_mmdet.pth'; None trains from scratch.
load_from = None
auto_anchor = True  # re-fit the anchors to the training boxes when they fit badly (BPR < 0.98)

# ---------------------------------------------------------------- derived from the above
nominal_batch_size = 64  # official: gradients are accumulated to 64 images per optimizer step
val_interval = max(1, max_epochs // 10)  # and after the last epoch
warmup_epochs = min(3, max(1, max_epochs // 10))  # official: 3 (and >= 1000 iterations, dropped)
num_workers = 2

model = dict(bbox_head=dict(num_classes=len(classes), loss=dict(img_size=img_scale[0])))

mosaic_affine = [
    dict(type='YOLOv7Mosaic', img_scale=img_scale, mosaic9_prob=0.2, prob=1.0, pad_val=114.0),
    dict(type='YOLOv7RandomAffine', img_scale=img_scale, max_translate_ratio=0.2,
         scaling_ratio_range=(0.1, 2.0), border_val=(114, 114, 114)),
]
train_pipeline = [
    *mosaic_affine,
    dict(type='YOLOv7MixUp', prob=0.15, alpha=8.0, beta=8.0, pre_transform=mosaic_affine),
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
tta_pipeline = [
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
    num_workers=num_workers,
    dataset=dict(
        dataset=dict(
            type='CocoJSONDataset', data_root='', ann_file=train_ann_file,
            data_prefix=dict(img=train_img_dir), metainfo=dict(classes=classes)),
        pipeline=train_pipeline))
# square letterbox, one image shape (the COCO configs' official rectangular batches are replaced)
val_dataloader = dict(
    batch_sampler=None,
    collate_fn=dict(_delete_=True, type='pseudo_collate'),
    batch_size=train_batch_size_per_gpu,
    num_workers=num_workers,
    dataset=dict(
        type='CocoJSONDataset', data_root='', ann_file=val_ann_file,
        data_prefix=dict(img=val_img_dir), metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=val_ann_file)
test_evaluator = val_evaluator

optim_wrapper = dict(batch_size_per_gpu=train_batch_size_per_gpu,
                     nominal_batch_size=nominal_batch_size)
train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=10),
    param_scheduler=dict(warmup_epochs=warmup_epochs, min_warmup_iters=0),
    checkpoint=dict(save_best='coco/bbox_mAP', rule='greater'))
custom_hooks = _base_.custom_hooks + ([dict(type='AutoAnchorHook')] if auto_anchor else [])
env_cfg = dict(cudnn_benchmark=True)  # fixed-size inputs
sync_bn = 'torch'  # multi-GPU (tools/dist_train.sh); ignored on one GPU or CPU
