"""The official tiny recipe (hyp.scratch.tiny.yaml): the P5 one with lrf 0.01. See yolov7_300e.py."""
_base_ = './yolov7_300e.py'

lrf = 0.01
default_hooks = dict(param_scheduler=dict(final_lr_factor=lrf))
