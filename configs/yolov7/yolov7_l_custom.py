# Written by tools/misc/create_config.py from configs/yolov7/yolov7_tiny_custom.py.
# YOLOv7 on your own COCO-JSON dataset (tools/dataset_converters/to_coco.py makes one from VOC XML,
# YOLO txt or COCO); docs/custom_dataset.md. configs/yolov7/yolov7_tiny_custom.py (yolov7-tiny on
# the cards dataset) is the template of tools/misc/create_config.py, which writes a copy of it with
# the first block set for your data and model.
# Change the variables of the first block; every other field derives from them. Edit this file
# rather than inheriting it and re-assigning a variable: mmengine does not re-evaluate the fields
# below in a child config (InputSizeCheckHook then refuses the sizes that disagree).
# The model, the official augmentation of its hyp file (the dataset base) and its schedule:
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
test_ann_file = None  # what tools/test.py evaluates (e.g. a test split); None: the val files
test_img_dir = None
classes = ('nine', 'ten', 'jack', 'queen', 'king', 'ace')  # in category-id order
img_scale = (640, 640)  # (width, height) of every input, a multiple of 32
train_batch_size_per_gpu = 16
max_epochs = 100
# Images per optimizer step (gradients of nominal_batch_size / batch iterations are summed); the
# official 64 is a few steps per epoch of a small dataset, the batch size is one step per iteration.
nominal_batch_size = 64
# Warmup iterations; None: min(3, max(1, max_epochs // 10)) epochs (official: 3 epochs and at least
# 1000 iterations, which would be the whole run of a small dataset).
warmup_iters = None
# Fine-tune from converted official weights (docs/pretrained.md says how to make them), e.g.
# 'work_dirs/pretrained/yolov7-tiny_mmdet.pth' (-l, -x); None trains from scratch.
load_from = None
auto_anchor = True  # re-fit the anchors to the training boxes when they fit badly (BPR < 0.98)

# ---------------------------------------------------------------- derived from the above
val_interval = max(1, max_epochs // 10)  # and after the last epoch
warmup_epochs = min(3, max(1, max_epochs // 10)) if warmup_iters is None else 0
num_workers = 2

model = dict(bbox_head=dict(num_classes=len(classes), loss=dict(img_size=img_scale[0])))

# The affine and mixup strengths are those of the model's official hyp file (its dataset base).
mosaic_affine = [
    dict(type='YOLOv7Mosaic', img_scale=img_scale, mosaic9_prob=0.2, prob=1.0, pad_val=114.0),
    dict(_base_.mosaic_affine[1], img_scale=img_scale),  # YOLOv7RandomAffine
]
train_pipeline = [
    *mosaic_affine,
    dict(type='YOLOv7MixUp', prob=_base_.train_pipeline[2].prob, alpha=8.0, beta=8.0,
         pre_transform=mosaic_affine),
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
    persistent_workers=num_workers > 0,
    dataset=dict(
        dataset=dict(
            type='CocoJSONDataset', data_root='', ann_file=train_ann_file,
            data_prefix=dict(img=train_img_dir), metainfo=dict(classes=classes)),
        pipeline=train_pipeline))
# square letterbox, one image shape: the whole loader, without the COCO base's rectangular
# batch sampler and collate (DetInferencer reads test_dataloader's collate_fn as a registry name)
val_dataloader = dict(
    _delete_=True,
    persistent_workers=num_workers > 0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    batch_size=train_batch_size_per_gpu,
    num_workers=num_workers,
    dataset=dict(
        type='CocoJSONDataset', data_root='', ann_file=val_ann_file, test_mode=True,
        data_prefix=dict(img=val_img_dir), metainfo=dict(classes=classes),
        pipeline=test_pipeline, backend_args=None))
test_dataloader = val_dataloader if test_ann_file is None else dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file=test_ann_file,
                                 data_prefix=dict(img=test_img_dir)))
val_evaluator = dict(ann_file=val_ann_file)
test_evaluator = dict(ann_file=val_ann_file if test_ann_file is None else test_ann_file)

optim_wrapper = dict(batch_size_per_gpu=train_batch_size_per_gpu,
                     nominal_batch_size=nominal_batch_size)
train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=10),
    param_scheduler=dict(warmup_epochs=warmup_epochs, min_warmup_iters=warmup_iters or 0),
    checkpoint=dict(save_best='coco/bbox_mAP', rule='greater'))
custom_hooks = _base_.custom_hooks + ([dict(type='AutoAnchorHook')] if auto_anchor else [])
env_cfg = dict(cudnn_benchmark=True)  # fixed-size inputs
sync_bn = 'torch'  # multi-GPU (tools/dist_train.sh); ignored on one GPU or CPU
