"""YOLOv7's three optimizer groups, the batch-scaled weight decay and the wrapper the constructor builds."""
from pathlib import Path

import pytest
import torch
from engine_toys import ToyDetector
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import init_default_scope
from torch import nn

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from yolov7_mmdet.engine.optimizers import (YOLOv7AmpOptimWrapper, YOLOv7OptimWrapper,
                                            nominal_accumulation, yolov7_param_groups)

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'

# (tensors, elements) per group of the official models; see tests/fixtures/make_engine_golden.md
OFFICIAL_GROUPS = {
    'yolov7_tiny': dict(no_decay=(61, 9053), decay=(58, 6211552), bias=(58, 8157)),
    'yolov7_l': dict(no_decay=(98, 27421), decay=(95, 37569632), bias=(95, 25629)),
    'yolov7_w6': dict(no_decay=(115, 38716), decay=(115, 82236544), bias=(115, 37176)),
}


def build_wrapper(model, *, batch_size_per_gpu=16, wrapper_type='YOLOv7OptimWrapper', **extra):
    cfg = dict(type=wrapper_type, batch_size_per_gpu=batch_size_per_gpu,
               optimizer=dict(type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4, nesterov=True),
               **extra)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='YOLOv7OptimWrapperConstructor', optim_wrapper_cfg=cfg))
    return constructor(model)


def ids(params):
    return {id(p) for p in params}


def test_groups_follow_the_official_rule():
    model = ToyDetector()
    groups = yolov7_param_groups(model)
    assert ids(groups.no_decay) == ids([model.bn.weight, model.implicit_a.implicit,
                                        model.implicit_m.implicit])
    assert ids(groups.decay) == ids([model.conv.weight, model.pred.weight])
    assert ids(groups.bias) == ids([model.bn.bias, model.pred.bias])
    assert groups.unclassified == []


def test_every_parameter_lands_in_exactly_one_group_and_odd_ones_are_named():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.GroupNorm(1, 3))
    model.scale = nn.Parameter(torch.ones(1))  # neither weight, bias, norm nor implicit
    model.add_module('shared', model[0])  # the same Linear twice: its parameters count once
    groups = yolov7_param_groups(model)
    grouped = groups.no_decay + groups.decay + groups.bias
    assert len(grouped) == len(ids(grouped)) == len(list(model.parameters()))
    assert ids(groups.decay) == ids([model[0].weight])
    assert ids(groups.no_decay) == ids([model[1].weight, model[2].weight, model.scale])
    assert groups.unclassified == ['scale']


def test_optimizer_groups_order_decay_and_hyper_parameters():
    model = ToyDetector()
    wrapper = build_wrapper(model, batch_size_per_gpu=16)  # 1 GPU: accumulate 4, 16 * 4 / 64 = 1
    assert isinstance(wrapper, YOLOv7OptimWrapper) and wrapper.accumulate == 4
    groups = wrapper.optimizer.param_groups
    assert [g['group_name'] for g in groups] == ['no_decay', 'decay', 'bias']
    assert [g['weight_decay'] for g in groups] == [0., 5e-4, 0.]
    assert all(g['lr'] == 0.01 and g['momentum'] == 0.937 and g['nesterov'] for g in groups)
    assert isinstance(wrapper.optimizer, torch.optim.SGD)


@pytest.mark.parametrize('batch, accumulate', [(1, 64), (8, 8), (16, 4), (26, 2), (40, 2), (48, 1),
                                               (64, 1), (128, 1)])
def test_weight_decay_scales_with_total_batch_times_accumulate(batch, accumulate):
    assert nominal_accumulation(batch) == max(round(64 / batch), 1) == accumulate
    wrapper = build_wrapper(ToyDetector(), batch_size_per_gpu=batch)
    assert wrapper.accumulate == accumulate and wrapper.total_batch_size == batch
    assert wrapper.optimizer.param_groups[1]['weight_decay'] == pytest.approx(
        5e-4 * batch * accumulate / 64, rel=1e-12)


def test_world_size_multiplies_the_batch(monkeypatch):
    import yolov7_mmdet.engine.optimizers.yolov7_optim_wrapper_constructor as constructor_module
    monkeypatch.setattr(constructor_module, 'get_world_size', lambda: 8)
    wrapper = build_wrapper(ToyDetector(), batch_size_per_gpu=16)  # 128 images: no accumulation
    assert wrapper.total_batch_size == 128 and wrapper.accumulate == 1
    assert wrapper.optimizer.param_groups[1]['weight_decay'] == pytest.approx(1e-3)


@pytest.mark.parametrize('wrapper_type', ['OptimWrapper', 'YOLOv7OptimWrapper'])
def test_mmengine_wrapper_type_is_upgraded(wrapper_type):
    assert type(build_wrapper(ToyDetector(), wrapper_type=wrapper_type)) is YOLOv7OptimWrapper


def test_amp_wrapper_type_keeps_the_yolov7_accumulation(monkeypatch):
    """``tools/train.py --amp`` sets type='AmpOptimWrapper', loss_scale='dynamic'."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)  # CPU test machine
    wrapper = build_wrapper(ToyDetector(), wrapper_type='AmpOptimWrapper', loss_scale='dynamic')
    assert type(wrapper) is YOLOv7AmpOptimWrapper and isinstance(wrapper, AmpOptimWrapper)
    assert wrapper.accumulate == 4


def test_bad_configs_get_clear_errors():
    with pytest.raises(ValueError, match='batch_size_per_gpu'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='YOLOv7OptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.01))))
    with pytest.raises(ValueError, match='paramwise_cfg'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='YOLOv7OptimWrapperConstructor', paramwise_cfg=dict(norm_decay_mult=0.),
            optim_wrapper_cfg=dict(batch_size_per_gpu=2, optimizer=dict(type='SGD', lr=0.01))))
    with pytest.raises(ValueError, match='accumulative_counts'):
        build_wrapper(ToyDetector(), accumulative_counts=2)
    with pytest.raises(TypeError, match='YOLOv7OptimWrapper'):
        build_wrapper(ToyDetector(), wrapper_type='PlainTestOptimWrapper')


@OPTIM_WRAPPERS.register_module(force=True)
class PlainTestOptimWrapper(OptimWrapper):
    """A wrapper without YOLOv7's accumulation (which the constructor must refuse)."""


@pytest.mark.parametrize('arch', sorted(OFFICIAL_GROUPS))
def test_group_sizes_match_the_official_models(arch):
    """Same parameters in each group as the official training models (no forward pass)."""
    config = CONFIGS / '_base_' / 'models' / f'{arch}.py'
    if not config.is_file():
        pytest.skip(f'{config} not written yet')
    from mmengine.config import Config

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(str(config)).model)
    groups = yolov7_param_groups(model)
    sizes = {name: (len(params), sum(p.numel() for p in params))
             for name, params in groups._asdict().items() if name != 'unclassified'}
    assert sizes == OFFICIAL_GROUPS[arch]
    assert groups.unclassified == []


def test_sync_batchnorm_weights_stay_without_decay():
    """Distributed runs convert BN to SyncBN before the optimizer is built (``sync_bn='torch'``)."""
    model = nn.SyncBatchNorm.convert_sync_batchnorm(ToyDetector())
    assert isinstance(model.bn, nn.SyncBatchNorm)
    groups = yolov7_param_groups(model)
    assert id(model.bn.weight) in ids(groups.no_decay) and id(model.bn.bias) in ids(groups.bias)
