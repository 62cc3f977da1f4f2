"""``SwitchToDeployHook``: evaluate (and draw) the inference graph of the loaded checkpoint.

``tools/test.py --deploy`` adds it. Once the checkpoint is loaded (``before_test``), the model and the
EMA hook's copy of it (whose parameters ``EMAHook`` swaps with the model's around every evaluation) are
switched to the inference graph, so both keep the same structure.
"""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..models.deploy import switch_to_deploy


@HOOKS.register_module()
class SwitchToDeployHook(Hook):
    """Switch the runner's model (and any EMA copy) to its inference graph before testing."""

    priority = 'VERY_HIGH'  # before EMAHook swaps parameters (before_test_epoch comes later anyway)

    def before_test(self, runner) -> None:
        switch_to_deploy(runner.model.eval())  # reaches the detector inside any wrapper (DDP, TTA)
        for hook in runner.hooks:
            ema_model = getattr(hook, 'ema_model', None)
            if ema_model is not None:
                switch_to_deploy(ema_model.module.eval())
