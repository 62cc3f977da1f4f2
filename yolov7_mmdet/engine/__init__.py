"""Training engine pieces where YOLOv7 differs from mmengine: param groups, warmup, hooks."""
from . import hooks, model_wrappers, optimizers  # noqa: F401  (registration)
