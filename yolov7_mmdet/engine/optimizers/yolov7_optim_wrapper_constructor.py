"""YOLOv7's three optimizer parameter groups and its batch-scaled weight decay (official ``train.py``).

The official recipe (the YOLOv5 one, arXiv:2207.02696 section 5.1) splits the parameters into
three SGD groups, in this order:

    0 ``no_decay``: BatchNorm weights and the implicit vectors (ImplicitA / ImplicitM), no weight decay
    1 ``decay``:    conv (and linear) weights, weight decay ``5e-4 * total_batch * accumulate / 64``
    2 ``bias``:     every bias (convs and BatchNorm), no weight decay; its warmup starts from lr 0.1

mmengine's ``DefaultOptimWrapperConstructor`` can zero the decay of norms and biases
(``norm_decay_mult`` / ``bias_decay_mult``) but makes one group per parameter, so the warmup hook
could not tell the bias group apart, and it knows neither implicit vectors nor the batch scaling;
hence this constructor. Differences from the official grouping, all documented fallbacks: every
norm layer (also SyncBN, GroupNorm, LayerNorm) counts as BatchNorm, and a parameter that is none of
weight / bias / norm / implicit (which the official code silently leaves out of training) goes to
``no_decay`` with a log line naming it.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from ...models.layers.implicit import ImplicitA, ImplicitM
from .yolov7_optim_wrapper import NominalBatchAccumulation, nominal_accumulation

_NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_IMPLICIT_TYPES = (ImplicitA, ImplicitM)

# mmengine's wrapper types -> the same wrapper with YOLOv7's accumulation, so that configs (and
# ``tools/train.py --amp``, which sets ``type='AmpOptimWrapper'``) keep the official recipe.
_YOLOV7_WRAPPER_OF = {
    'OptimWrapper': 'YOLOv7OptimWrapper',
    'AmpOptimWrapper': 'YOLOv7AmpOptimWrapper',
}


class YOLOv7ParamGroups(NamedTuple):
    """Parameters of a model split as the official ``pg0, pg1, pg2``."""
    no_decay: list[nn.Parameter]
    decay: list[nn.Parameter]
    bias: list[nn.Parameter]
    unclassified: list[str]  # names of parameters put into ``no_decay`` by the fallback


def yolov7_param_groups(model: nn.Module) -> YOLOv7ParamGroups:
    """Split ``model``'s parameters into YOLOv7's no-decay / decay / bias groups.

    Each parameter is classified by the module that directly owns it: norm weights and all
    parameters of ImplicitA / ImplicitM go to ``no_decay``, other ``bias`` parameters to ``bias``,
    other ``weight`` parameters to ``decay``. Frozen parameters are kept (as the official code does;
    SGD skips parameters without gradients) and shared parameters are listed once.

    Args:
        model (nn.Module): The model (not wrapped in DDP).

    Returns:
        YOLOv7ParamGroups: The three lists, and the names of parameters that fit no rule.
    """
    groups = YOLOv7ParamGroups([], [], [], [])
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, _IMPLICIT_TYPES):
                groups.no_decay.append(param)
            elif param_name == 'bias':
                groups.bias.append(param)
            elif param_name == 'weight':
                target = groups.no_decay if isinstance(module, _NORM_TYPES) else groups.decay
                target.append(param)
            else:
                groups.no_decay.append(param)
                groups.unclassified.append(f'{module_name}.{param_name}'.lstrip('.'))
    return groups


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOv7OptimWrapperConstructor:
    """Build YOLOv7's optimizer (three parameter groups) inside a nominal-batch optimizer wrapper.

    Config (the official hyper-parameters; ``batch_size_per_gpu`` must equal the train dataloader's,
    which :class:`YOLOv7ParamSchedulerHook` checks when training starts)::

        optim_wrapper = dict(
            type='YOLOv7OptimWrapper',            # 'OptimWrapper' / 'AmpOptimWrapper' are upgraded
            constructor='YOLOv7OptimWrapperConstructor',
            batch_size_per_gpu=16,
            nominal_batch_size=64,
            optimizer=dict(type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4, nesterov=True))

    The optimizer's ``weight_decay`` is the unscaled value; the ``decay`` group gets it times
    ``total_batch * accumulate / nominal_batch`` with ``total_batch = batch_size_per_gpu x world
    size``. Param groups carry ``group_name`` ('no_decay', 'decay', 'bias').

    Args:
        optim_wrapper_cfg (dict): The ``optim_wrapper`` config (see above).
        paramwise_cfg (dict, optional): Not supported: YOLOv7's groups are fixed. Must be empty.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if paramwise_cfg:
            raise ValueError('YOLOv7OptimWrapperConstructor builds the fixed YOLOv7 parameter groups '
                             f'and takes no paramwise_cfg, got {paramwise_cfg}')
        wrapper_cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        if 'optimizer' not in wrapper_cfg or 'batch_size_per_gpu' not in wrapper_cfg:
            raise ValueError('optim_wrapper needs `optimizer` and `batch_size_per_gpu` (the train '
                             f'dataloader batch size) for YOLOv7, got keys {sorted(wrapper_cfg)}')
        self.optimizer_cfg = wrapper_cfg.pop('optimizer')
        self.batch_size_per_gpu = int(wrapper_cfg.pop('batch_size_per_gpu'))
        self.nominal_batch_size = int(wrapper_cfg.pop('nominal_batch_size', 64))
        wrapper_type = wrapper_cfg.get('type', 'OptimWrapper')
        wrapper_cfg['type'] = _YOLOV7_WRAPPER_OF.get(wrapper_type, wrapper_type)
        wrapper_cls = OPTIM_WRAPPERS.get(wrapper_cfg['type'])
        if wrapper_cls is not None and not issubclass(wrapper_cls, NominalBatchAccumulation):
            raise TypeError(f'optim_wrapper type {wrapper_type!r} lacks YOLOv7\'s nominal-batch '
                            'accumulation; use YOLOv7OptimWrapper or YOLOv7AmpOptimWrapper')
        self.wrapper_cfg = wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper for ``model`` (a DDP wrapper is unwrapped)."""
        if is_model_wrapper(model):
            model = model.module
        total_batch_size = self.batch_size_per_gpu * get_world_size()
        accumulate = nominal_accumulation(total_batch_size, self.nominal_batch_size)

        optimizer_cfg = copy.deepcopy(self.optimizer_cfg)
        weight_decay = optimizer_cfg.pop('weight_decay', 0.) * (
            total_batch_size * accumulate / self.nominal_batch_size)
        groups = yolov7_param_groups(model)
        # group order and names as the official pg0, pg1, pg2; the bias group is found by name
        optimizer_cfg['params'] = [
            dict(params=groups.no_decay, weight_decay=0., group_name='no_decay'),
            dict(params=groups.decay, weight_decay=weight_decay, group_name='decay'),
            dict(params=groups.bias, weight_decay=0., group_name='bias'),
        ]
        optimizer = OPTIMIZERS.build(optimizer_cfg)

        wrapper_cfg = dict(self.wrapper_cfg, total_batch_size=total_batch_size,
                           nominal_batch_size=self.nominal_batch_size)
        wrapper = OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))

        print_log(
            f'YOLOv7 param groups: {len(groups.no_decay)} no-decay (norm weights, implicit), '
            f'{len(groups.decay)} decay (weight_decay {weight_decay:.6g}), {len(groups.bias)} bias; '
            f'{accumulate} iteration(s) of {total_batch_size} images per step '
            f'(nominal batch {self.nominal_batch_size})', logger='current')
        if groups.unclassified:
            print_log('Parameters that are no weight, bias, norm or implicit vector, trained without '
                      f'weight decay: {", ".join(groups.unclassified)}', logger='current')
        return wrapper
