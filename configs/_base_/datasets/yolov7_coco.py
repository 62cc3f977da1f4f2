# COCO 2017 detection for the YOLOv7 P5 models (tiny's and the P6 models' files inherit this one).
# Augmentation of the official data/hyp.scratch.p5.yaml: mosaic 1.0 (4 images 80%, 9 images 20%),
# random affine (translate 0.2, scale 0.9 -> s ~ U(0.1, 2.0), no rotation / shear / perspective),
# mixup 0.15 with Beta(8, 8), HSV gains 0.015 / 0.7 / 0.4, paste_in 0.15, horizontal flip 0.5.
# Instance polygons (COCO's segmentations, the official coco2017labels-segments) are loaded where the
# annotations have them: boxes are then made from the warped polygons (kept above 1% of their area)
# and paste_in cuts objects out along them; box-only annotations (e.g. a converted VOC or YOLO-txt
# dataset) take the box-only path and paste nothing, as the official (docs/data_pipeline.md).
# Evaluation: the official test.py protocol of the published numbers (`--img 640 --batch 32`):
# images sorted by aspect ratio into batches of 32, each batch padded to its own rectangle (grey 114;
# see yolov7_mmdet/datasets/rect_eval.py), COCO bbox mAP with mmdet's CocoMetric. `test_pipeline` is
# the square letterbox (every image 640 x 640: what exported models take; tools/test.py
# --eval-protocol square).
# mmdet's CocoDataset, with the same classes and palette on the COCO files, whose errors for an
# image that fails to load say which file and whether it is missing or corrupt
dataset_type = 'CocoJSONDataset'
data_root = 'data/coco/'
img_scale = (640, 640)  # (width, height)
backend_args = None

# What the wrapped dataset does for every image (the current one and the extra mosaic / mixup /
# paste-in ones): decode (or read the image cache), fit into the mosaic's img_scale (the official
# load_image; the wrapper sets the size from YOLOv7Mosaic), load the boxes, and the polygons where
# every instance of the image has one, and scale them with the image.
load_pipeline = [
    dict(type='YOLOv7LoadImageAndAnnotations',
         load_image=dict(type='LoadImageFromFile', backend_args=backend_args),
         load_annotations=dict(type='YOLOv7LoadAnnotations', backend_args=backend_args)),
]
# One mosaic made into one training-size image; also makes mixup's second image.
mosaic_affine = [
    dict(type='YOLOv7Mosaic', img_scale=img_scale, mosaic9_prob=0.2, prob=1.0, pad_val=114.0),
    dict(type='YOLOv7RandomAffine', img_scale=img_scale, max_translate_ratio=0.2,
         scaling_ratio_range=(0.1, 2.0), border_val=(114, 114, 114)),
]
train_pipeline = [
    *mosaic_affine,
    dict(type='YOLOv7MixUp', prob=0.15, alpha=8.0, beta=8.0, pre_transform=mosaic_affine),
    dict(type='YOLOv7HSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
    dict(type='YOLOv7PasteIn', prob=0.15, img_scale=img_scale),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False),
    # after the resize, so that the boxes stay in original-image pixels (mmdet's convention)
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param')),
]
# The official test-time loading: long side to 640 (floored sizes, INTER_AREA when shrinking); the
# batch sampler and collate below make the official rectangular batches (stride: the largest, 32).
official_test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='YOLOv7ResizeLongSide', scale=img_scale),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param')),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        # mmdet's MultiImageMixDataset without its copies of every image; 'auto': the fitted images
        # are cached in RAM when they need at most 30% of the available memory (docs/data_pipeline.md)
        type='YOLOv7MixDataset',
        cache_images='auto',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            filter_cfg=dict(filter_empty_gt=False),  # background images are trained on, as official
            pipeline=load_pipeline,
            backend_args=backend_args),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,  # test.py --batch 32: the batch shapes depend on it
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    batch_sampler=dict(type='YOLOv7RectBatchSampler'),
    collate_fn=dict(type='yolov7_rect_collate', img_size=img_scale[0], stride=32),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=official_test_pipeline,
        backend_args=backend_args))
# tools/test.py evaluates as the config validates (the official protocol above; --eval-protocol
# square for the other). test_dataloader itself is the square letterbox, one shape per image, for
# what reads it without our tools: DetInferencer / init_detector, export, mmdet's own tools.
test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(val_dataloader['dataset'], pipeline=test_pipeline))

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

# `tools/test.py --tta`: the image and its mirror image, merged by NMS at the test IoU. (The official
# `test.py --augment` also rescales by 0.83 and 0.67 and merges before NMS; not reproduced.)
tta_model = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.65), max_per_img=300))
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='TestTimeAug',
         transforms=[
             # flipped before the letterbox, so that pad_param describes the flipped image
             [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
             [dict(type='Resize', scale=img_scale, keep_ratio=True)],
             [dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False)],
             [dict(type='LoadAnnotations', with_bbox=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'pad_param', 'flip', 'flip_direction'))],
         ])
]
