"""YOLOv7's model EMA (official ``utils/torch_utils.ModelEMA``) on top of mmdet / mmengine.

The official EMA keeps ``ema = d * ema + (1 - d) * model`` over every floating-point entry of the
state dict (parameters and BN running statistics), with ``d = 0.9999 * (1 - exp(-updates / 2000))``
and ``updates`` counted from 1, and updates it after every optimizer step. mmdet's
``ExpMomentumEMA(momentum=1e-4, gamma=2000, update_buffers=True)`` weighs the model by
``(1 - 1e-4) * exp(-(1 + steps) / 2000) + 1e-4`` with ``steps`` counted from 0, which is exactly
``1 - d(steps + 1)``. Three things differ, fixed here:

1. mmengine copies the model at its first update instead of averaging (the official first update
   keeps ``d(1) ~ 5e-4`` of the starting weights): :class:`YOLOv7ModelEMA` averages from the first.
2. mmengine's ``EMAHook`` copies the model in ``before_run``, before the runner initialises the
   weights; the official EMA starts from the weights training starts from: :class:`YOLOv7EMAHook`
   re-copies them when training starts, unless a resumed EMA was loaded.
3. ``EMAHook`` updates after every iteration; the official EMA only after optimizer steps (every
   ``accumulate`` iterations): :class:`YOLOv7EMAHook` asks the optimizer wrapper.

Evaluation and saved checkpoints use the EMA weights (``EMAHook`` swaps them in; a checkpoint's
``state_dict`` holds the EMA, ``ema_state_dict`` the raw model, for resuming).
"""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import EMAHook
from torch import nn

from mmdet.models.layers import ExpMomentumEMA
from mmdet.registry import HOOKS, MODELS


@MODELS.register_module()
class YOLOv7ModelEMA(ExpMomentumEMA):
    """mmdet's ``ExpMomentumEMA`` with the official first update (an average, not a copy).

    Args:
        model (nn.Module): The model to average.
        momentum (float): ``1 - 0.9999``: the model's weight once the ramp is over. Defaults to 1e-4.
        gamma (float): Ramp time constant in updates. Defaults to 2000.
        update_buffers (bool): Average the BN running statistics too (official). Defaults to True.
        **kwargs: ``interval`` / ``device`` of ``ExpMomentumEMA``.
    """

    def __init__(self, model: nn.Module, momentum: float = 1e-4, gamma: float = 2000,
                 update_buffers: bool = True, **kwargs) -> None:
        super().__init__(model, momentum=momentum, gamma=gamma, update_buffers=update_buffers,
                         **kwargs)
        self._steps_on_host: Optional[int] = None  # host copy of the ``steps`` buffer

    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model`` into the EMA; the first update is an average too (see module doc).

        The step count lives in the ``steps`` buffer (saved, resumed) and, for the decisions, in a
        host copy, so that an update never waits for the device to report the count.
        """
        steps = self._host_steps()
        if steps % self.interval == 0:
            source = model.state_dict() if self.update_buffers else dict(model.named_parameters())
            for name, averaged in self.avg_parameters.items():
                if averaged.dtype.is_floating_point:
                    self.avg_func(averaged.data, source[name].data.to(averaged.device), steps)
        if not self.update_buffers:
            for averaged, buffer in zip(self.module.buffers(), model.buffers()):
                averaged.data.copy_(buffer.data.to(averaged.device))
        self.steps += 1
        self._steps_on_host = steps + 1

    def _host_steps(self) -> int:
        """The update count as a Python int; read from the buffer once after creation or loading."""
        if self._steps_on_host is None:
            self._steps_on_host = int(self.steps)
        return self._steps_on_host

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._steps_on_host = None  # the loaded buffer is the truth


@HOOKS.register_module()
class YOLOv7EMAHook(EMAHook):
    """mmengine ``EMAHook`` that starts from the trained weights and updates after optimizer steps.

    Args:
        ema_type (str): Defaults to 'YOLOv7ModelEMA'.
        **kwargs: Other ``EMAHook`` arguments and the EMA model's (momentum, gamma, ...).
    """

    def __init__(self, ema_type: str = 'YOLOv7ModelEMA', **kwargs) -> None:
        super().__init__(ema_type=ema_type, **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.ema_model.steps == 0:  # not resumed: start from the (initialised / loaded) model
            self.ema_model.module.load_state_dict(self.src_model.state_dict())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # after backward, ``should_update`` says whether this iteration stepped the optimizer
        if runner.optim_wrapper.should_update():
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
