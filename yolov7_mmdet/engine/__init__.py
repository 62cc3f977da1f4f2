"""Training engine pieces where YOLOv7 differs from mmengine: param groups, warmup, hooks, visualizer."""
from . import hooks, model_wrappers, optimizers, visualizer  # noqa: F401  (registration)
