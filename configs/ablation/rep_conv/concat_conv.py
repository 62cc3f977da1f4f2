_base_ = './rep_ablation_base.py'
model = dict(backbone=dict(block_kind='concat', conv_kind='conv'))
