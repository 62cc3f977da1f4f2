"""The official P6 recipe (hyp.scratch.p6.yaml): the P5 one with lrf 0.2. See yolov7_300e.py."""
_base_ = './yolov7_300e.py'

lrf = 0.2
default_hooks = dict(param_scheduler=dict(final_lr_factor=lrf))
