"""YOLOv7's gradient accumulation to a nominal batch of 64 images (official ``train.py``).

YOLOv7 (arXiv:2207.02696) trains with the YOLOv5 recipe: whatever the real batch, gradients of
``accumulate = max(round(64 / total_batch), 1)`` iterations are summed before one optimizer step, and
the weight decay is scaled by ``total_batch * accumulate / 64``. mmengine's ``OptimWrapper`` has
gradient accumulation too (``accumulative_counts``), but with different semantics; the mixin below
keeps mmengine's wrappers (fp32 and AMP) and changes only what differs, each point being what the
official loop does:

1. The optimizer steps after iteration ``i`` (counted from 0 since the start of training) when
   ``i % accumulate == 0``. mmengine steps when ``(i + 1) % accumulate == 0`` and also at the very
   last iteration.
2. ``accumulate`` may change every iteration: :class:`YOLOv7ParamSchedulerHook` ramps it from 1 up to
   the nominal value during warmup.
3. Losses are summed over the accumulated iterations, not averaged (the YOLOv7 loss is already
   multiplied by the batch size), and multiplied by the world size because DDP averages gradients over
   GPUs where the official recipe wants their sum.
"""
from __future__ import annotations

from mmengine.dist import get_world_size
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor, nn

from mmdet.registry import OPTIM_WRAPPERS


def nominal_accumulation(total_batch_size: int, nominal_batch_size: int = 64) -> int:
    """Iterations accumulated per optimizer step: ``max(round(nominal / total), 1)``.

    ``round`` is Python's (half to even), as in the official code: a total batch of 128 with a
    nominal batch of 64 gives 1, a total batch of 26 gives ``round(2.46) = 2``.

    Args:
        total_batch_size (int): Images per iteration over all GPUs.
        nominal_batch_size (int): Images per optimizer step the recipe is tuned for. Defaults to 64.

    Raises:
        ValueError: If either size is not a positive integer.
    """
    if total_batch_size < 1 or nominal_batch_size < 1:
        raise ValueError('batch sizes must be positive, got total_batch_size='
                         f'{total_batch_size}, nominal_batch_size={nominal_batch_size}')
    return max(round(nominal_batch_size / total_batch_size), 1)


class NominalBatchAccumulation:
    """Mixin for mmengine optimizer wrappers: the official YOLOv7 gradient accumulation.

    See the module docstring for the three differences from mmengine. The number of accumulated
    iterations is :attr:`accumulate`; it starts at :func:`nominal_accumulation` and may be changed
    between iterations (never inside one).

    Args:
        total_batch_size (int): Images per iteration over all GPUs.
        nominal_batch_size (int): Images per optimizer step the recipe is tuned for. Defaults to 64.
        **kwargs: The wrapped mmengine wrapper's arguments (``optimizer``, ``clip_grad``, ...),
            except ``accumulative_counts``, which follows from the batch sizes.
    """

    def __init__(self, *, total_batch_size: int, nominal_batch_size: int = 64, **kwargs) -> None:
        if 'accumulative_counts' in kwargs:
            raise ValueError('YOLOv7 optimizer wrappers derive the accumulation from '
                             '`nominal_batch_size / total_batch_size`; do not set `accumulative_counts`')
        super().__init__(
            accumulative_counts=nominal_accumulation(total_batch_size, nominal_batch_size), **kwargs)
        self.total_batch_size = total_batch_size
        self.nominal_batch_size = nominal_batch_size

    @property
    def accumulate(self) -> int:
        """Iterations whose gradients are summed before the next optimizer step."""
        return self._accumulative_counts

    @accumulate.setter
    def accumulate(self, value: int) -> None:
        if value < 1:
            raise ValueError(f'accumulate must be >= 1, got {value}')
        self._accumulative_counts = int(value)

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Set the iteration counter (``init_counts`` is the iteration training starts or resumes at).

        mmengine's version also plans a final step on the remainder iterations; the official loop
        takes none, so only the counters are kept.
        """
        self._inner_count = init_counts
        self._max_counts = max_counts

    def should_sync(self) -> bool:
        """Before backward (``_inner_count`` is the current iteration): is this a stepping iteration?"""
        return self._inner_count % self._accumulative_counts == 0

    def should_update(self) -> bool:
        """After backward (``_inner_count`` was incremented): did/does this iteration step?"""
        return (self._inner_count - 1) % self._accumulative_counts == 0

    def scale_loss(self, loss: Tensor) -> Tensor:
        """Sum, do not average, over accumulated iterations; undo DDP's average over GPUs."""
        return loss * get_world_size()


@OPTIM_WRAPPERS.register_module()
class YOLOv7OptimWrapper(NominalBatchAccumulation, OptimWrapper):
    """fp32 :class:`~mmengine.optim.OptimWrapper` with YOLOv7's nominal-batch accumulation."""


@OPTIM_WRAPPERS.register_module()
class YOLOv7AmpOptimWrapper(NominalBatchAccumulation, AmpOptimWrapper):
    """Mixed-precision :class:`~mmengine.optim.AmpOptimWrapper` with YOLOv7's accumulation.

    The official recipe trains with ``torch.cuda.amp`` (dynamic loss scale); as there, a step the
    loss scaler skips for inf/NaN gradients still counts as a step (the EMA is updated after it).
    """
