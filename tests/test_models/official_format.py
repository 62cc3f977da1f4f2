"""Write official-format ``.pt`` files without the official code (test helper).

The official ``train.py`` saves ``{'model': Model.half(), 'ema': ..., 'optimizer': ..., ...}``, where
``Model`` is a pickled tree of ``models.yolo`` / ``models.common`` modules holding ``torch.nn`` layers.
Here that tree is rebuilt from an official-keyed state dict (``model.{i}.conv.weight``, ...): each
official layer is an ``nn.Module`` subclass whose ``__module__`` / ``__qualname__`` are the official
names, registered in ``sys.modules`` only while ``torch.save`` runs, so the file names exactly the
globals a real one does, and nothing called ``models`` is importable when it is read back. The
``torch.nn`` layers are the real classes (created without running their ``__init__``).
The real official files were checked once as well (tests/fixtures/make_official_format_files.md).
"""
from __future__ import annotations

import contextlib
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

OFFICIAL_CLASSES = {
    module: {name: type(name, (nn.Module, ), dict(__module__=module, __qualname__=name)) for name in names}
    for module, names in (('models.yolo', ('Model', 'Detect', 'IDetect', 'IAuxDetect', 'DetectionModel')),
                          ('models.common', ('Conv', 'RepConv', 'SPPCSPC', 'DownC', 'Concat', 'ImplicitA',
                                             'ImplicitM', 'C3')))}


def official_class(full_name: str) -> type:
    module, _, name = full_name.rpartition('.')
    return OFFICIAL_CLASSES[module][name]


def bare_module(cls: type, parameters=(), buffers=(), children=()) -> nn.Module:
    """An instance of ``cls`` with these tensors and children, without running ``cls.__init__``."""
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    for name, tensor in parameters:
        module._parameters[name] = nn.Parameter(tensor, requires_grad=False)
    for name, tensor in buffers:
        module._buffers[name] = tensor
    for name, child in children:
        module._modules[name] = child
    return module


def _leaf(tensors: dict) -> nn.Module:
    """A torch.nn leaf: BatchNorm2d (running statistics), Conv2d (a 4-d weight) or an implicit vector."""
    if 'running_var' in tensors:
        params = [(k, tensors[k]) for k in ('weight', 'bias')]
        return bare_module(nn.BatchNorm2d, params, [(k, tensors[k]) for k in tensors if k not in ('weight', 'bias')])
    if set(tensors) == {'implicit'}:
        return tensors['implicit']
    return bare_module(nn.Conv2d, list(tensors.items()))


def _tree(tensors: dict) -> dict:
    """Nest ``{'a.b.c': t}`` as ``{'a': {'b': {'c': t}}}``."""
    tree: dict = OrderedDict()
    for key, value in tensors.items():
        node = tree
        *path, name = key.split('.')
        for part in path:
            node = node.setdefault(part, OrderedDict())
        node[name] = value
    return tree


def _module(tree: dict, cls: type, implicit: str = 'ImplicitA') -> nn.Module:
    children, tensors = [], {}
    for name, value in tree.items():
        if isinstance(value, dict):
            children.append((name, _child(name, value, implicit)))
        else:
            tensors[name] = value
    buffers = [(k, v) for k, v in tensors.items() if k in ('anchors', 'anchor_grid')]
    return bare_module(cls, [(k, v) for k, v in tensors.items() if k not in dict(buffers)], buffers, children)


def _child(name: str, tree: dict, implicit: str = 'ImplicitA') -> nn.Module:
    if all(not isinstance(v, dict) for v in tree.values()):
        leaf = _leaf(tree)
        if isinstance(leaf, torch.Tensor):  # ia.{i} / im.{i}
            return bare_module(official_class(f'models.common.{implicit}'), [('implicit', leaf)])
        return leaf
    if all(key.isdigit() for key in tree):
        return _module(tree, nn.Sequential if name.startswith('rbr') else nn.ModuleList,
                       'ImplicitM' if name == 'im' else 'ImplicitA')
    if {'conv', 'bn'} <= set(tree):  # a Conv: conv + bn + activation
        conv = _module(tree, official_class('models.common.Conv'))
        conv._modules['act'] = bare_module(nn.SiLU)
        return conv
    if 'rbr_dense' in tree:
        return _module(tree, official_class('models.common.RepConv'))
    if 'cv7' in tree:
        return _module(tree, official_class('models.common.SPPCSPC'))
    if 'm' in tree:
        kind = 'IAuxDetect' if 'm2' in tree else 'IDetect' if 'ia' in tree else 'Detect'
        return _module(tree, official_class(f'models.yolo.{kind}'))
    return _module(tree, official_class('models.common.DownC'))


def official_model(state: dict, *, model_class: str = 'models.yolo.Model') -> nn.Module:
    """The pickled form of the official ``Model`` holding ``state`` (keys ``model.{i}....``).

    Layers without tensors (Concat, MP, Upsample) are ``Concat`` stand-ins so indices stay contiguous.
    """
    layers = _tree({key[len('model.'):]: value for key, value in state.items()})
    count = max(int(index) for index in layers) + 1
    sequential = bare_module(nn.Sequential, children=[
        (str(i), _child(str(i), layers[str(i)]) if str(i) in layers else bare_module(official_class(
            'models.common.Concat'))) for i in range(count)])
    model = bare_module(official_class(model_class), children=[('model', sequential)])
    model.yaml = dict(nc=80, depth_multiple=1.0, backbone=[[-1, 1, 'Conv', [32, 3, 1]]])
    model.names = [f'class{i}' for i in range(80)]
    model.hyp = dict(lr0=0.01, box=0.05)
    model.stride = torch.tensor([8., 16., 32.])
    return model


def train_py_checkpoint(model: nn.Module, *, half: bool = True) -> dict:
    """What the official ``train.py`` saves every epoch (``last.pt``): model, EMA, optimizer state."""
    ema = model.half() if half else model
    optimizer = dict(state={0: dict(momentum_buffer=torch.zeros(4))},
                     param_groups=[dict(lr=0.01, momentum=0.937, nesterov=True, weight_decay=0.0005,
                                        params=[0])])
    return {'epoch': 3, 'best_fitness': np.array([0.4231]), 'training_results': '0/299 ...\n',
            'model': ema, 'ema': ema, 'updates': 1200, 'optimizer': optimizer, 'wandb_id': None}


def stripped_checkpoint(model: nn.Module) -> dict:
    """What the official ``strip_optimizer`` leaves (the released ``*_training.pt``): fp16 EMA as model."""
    checkpoint = train_py_checkpoint(model, half=True)
    checkpoint.update(model=checkpoint['ema'], optimizer=None, training_results=None, wandb_id=None, ema=None,
                      updates=None, epoch=-1)
    return checkpoint


@contextlib.contextmanager
def official_modules_importable():
    """Register ``models``, ``models.yolo`` and ``models.common`` (the stand-ins) while saving."""
    fakes = {'models': types.ModuleType('models')}
    for module, classes in OFFICIAL_CLASSES.items():
        fakes[module] = types.ModuleType(module)
        fakes[module].__dict__.update(classes)
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = previous


def save_official(obj, path, **kwargs) -> None:
    """``torch.save`` with the official module names resolvable, as the official code saves."""
    with official_modules_importable():
        torch.save(obj, path, **kwargs)
