# Planned re-parameterization ablation (the paper's Fig. 4), small enough for a CPU: a four-stage
# RepAblationNet (plain / residual / concat blocks whose 3x3 convs are a plain conv, RepConv with
# identity or RepConvN) feeding YOLOv7's lead head directly (no neck), trained on the embedded demo
# shapes at 128 px with a plain pipeline (letterbox + flip; no mosaic, so few epochs learn something),
# 10 epochs, evaluated with COCO mAP on the demo val split. The nine configs beside this one set
# only the block and conv kinds. Run them all, with two seeds, and print the table:
#     python tools/analysis_tools/rep_conv_ablation.py --seeds 0 1
# Results and what they can and cannot show: docs/rep_conv.md.
_base_ = '../../demo/yolov7_tiny_demo.py'

block_kind = 'plain'
conv_kind = 'conv'
max_epochs = 10
img_scale = (128, 128)  # (width, height)
stage_channels = (16, 32, 64, 128)

model = dict(
    backbone=dict(_delete_=True, type='RepAblationNet', block_kind=block_kind, conv_kind=conv_kind,
                  stage_channels=stage_channels, blocks_per_stage=1),
    neck=None,
    bbox_head=dict(in_channels=stage_channels[1:], feat_channels=stage_channels[1:],
                   act_cfg=dict(_delete_=True, type='SiLU')))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='YOLOv7Letterbox', scale=img_scale, pad_val=114, allow_scale_up=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, type='CocoDataset', data_root='data/demo_shapes/',
                 ann_file='annotations/train.json', data_prefix=dict(img='images/train/'),
                 metainfo=dict(classes=('circle', 'square', 'triangle', 'cross')),
                 filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs, dynamic_intervals=None)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
