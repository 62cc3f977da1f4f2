"""Read official YOLOv7 ``.pt`` files (github WongKinYiu/yolov7) without the official code and safely.

The released weights (``yolov7.pt``, ``yolov7_training.pt``, ...) and the checkpoints of the official
``train.py`` pickle whole modules (``models.yolo.Model``, ``models.common.Conv``, ``torch.nn`` layers).
Unpickling them normally imports those classes and lets the file call any function it names. Here:

1. Before anything is unpickled, every global the pickle names is listed (``pickletools``) and checked
   against an explicit allowlist; any other global (``os.system``, ``builtins.eval``,
   ``subprocess.Popen``, a YOLOv5 layer, ...) is refused with an error that names it.
2. The file is then loaded by torch's ``weights_only`` unpickler, where each allowlisted module class
   is bound to an :class:`InertModule` subclass: it only keeps the parameters, buffers and child
   modules that ``nn.Module.__setstate__`` would restore, so no official or ``torch.nn`` code runs.

What is allowed, and why:

* the layers of the official ``cfg/training`` and ``cfg/deploy`` graphs of the seven YOLOv7 models
  (``models.yolo.Model`` / ``IDetect`` / ``IAuxDetect`` / ``Detect``, ``models.common.Conv``, ...) and
  the ``torch.nn`` modules they hold (Conv2d, BatchNorm2d, activations, pooling, Upsample, containers):
  all become inert placeholders, never the real classes;
* torch's tensor, parameter and storage rebuild functions, dtypes, ``torch.Size``/``torch.device``,
  ``collections.OrderedDict`` and ``set`` (module state, optimizer state);
* numpy's array reconstruction (``ndarray``, ``dtype``, ``_reconstruct``, ``scalar``) and
  ``_codecs.encode`` (the bytes of a protocol-2 numpy array): ``train.py`` stores ``best_fitness`` as a
  numpy array. torch's own ``weights_only`` load allows ``_codecs.encode`` by default.

Public interface::

    read_official_checkpoint(path) -> the unpickled object (dicts, tensors, InertModule trees)
    official_state_dict(path, *, use_ema=False) -> {'model.{i}....': float32 tensor}
"""
from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from .checkpoint import UnsafeCheckpointError, numpy_globals, refusal_reason

# Classes of the official cfg/training and cfg/deploy graphs (models/yolo.py, models/common.py).
OFFICIAL_MODULES = (
    'models.yolo.Model', 'models.yolo.Detect', 'models.yolo.IDetect', 'models.yolo.IAuxDetect',
    'models.common.Conv', 'models.common.RepConv', 'models.common.SPPCSPC', 'models.common.MP',
    'models.common.SP', 'models.common.DownC', 'models.common.ReOrg', 'models.common.Shortcut',
    'models.common.Concat', 'models.common.ImplicitA', 'models.common.ImplicitM')
# The torch.nn modules those classes hold.
TORCH_NN_MODULES = (
    'torch.nn.modules.conv.Conv2d', 'torch.nn.modules.batchnorm.BatchNorm2d',
    'torch.nn.modules.activation.SiLU', 'torch.nn.modules.activation.LeakyReLU',
    'torch.nn.modules.linear.Identity', 'torch.nn.modules.pooling.MaxPool2d',
    'torch.nn.modules.upsampling.Upsample', 'torch.nn.modules.container.Sequential',
    'torch.nn.modules.container.ModuleList')
# Non-module globals, by name; torch's weights_only unpickler resolves them (plus the numpy ones).
_TENSOR_AND_CONTAINER_GLOBALS = frozenset({
    'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state', 'torch.Size', 'torch.device',
    'torch.nn.parameter.Parameter', 'collections.OrderedDict', 'builtins.set', '_codecs.encode'})
# The official Model.fuse() sets `m.forward = m.fuseforward` on every fused layer: a bound method, which
# pickles as builtins.getattr(module, 'fuseforward') (the name stored as its utf-8 bytes).
_FUSED_FORWARD = b'fuseforward'
# numpy 1.x wrote its reconstruction functions under numpy.core, numpy 2 under numpy._core.
_NUMPY_NAMES = ('multiarray._reconstruct', 'multiarray.scalar')


class InertModule:
    """Stand-in for one pickled official or ``torch.nn`` module: keeps only its tensors and children.

    ``official_name`` says which class the file named (``models.common.Conv``, ...).
    """

    official_name = ''

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping):
            raise pickle.UnpicklingError(f'{self.official_name}: pickled state is a {type(state).__name__}, '
                                         f'not the attribute dict of a module')
        self.parameters = dict(state.get('_parameters') or {})
        self.buffers = dict(state.get('_buffers') or {})
        self.children = dict(state.get('_modules') or {})
        self.non_persistent_buffers = set(state.get('_non_persistent_buffers_set') or ())

    def named_tensors(self, prefix: str = '', ancestors: frozenset = frozenset()) -> Iterator[tuple[str, Tensor]]:
        """``(key, tensor)`` in ``nn.Module.state_dict()`` order: parameters, persistent buffers, children.

        Raises:
            ValueError: A parameter or buffer is not a tensor, a child not a module, or a module
                contains itself (only a crafted file does that).
        """
        if id(self) in ancestors:
            raise ValueError(f'{self.official_name} at {prefix!r} contains itself')
        tensors = [(name, value) for name, value in self.parameters.items()]
        tensors += [(name, value) for name, value in self.buffers.items() if name not in self.non_persistent_buffers]
        for name, tensor in tensors:
            if tensor is not None and not isinstance(tensor, Tensor):
                raise ValueError(f'{prefix}{name} of {self.official_name} is a {type(tensor).__name__}, not a tensor')
            if tensor is not None:
                yield prefix + name, tensor
        for name, child in self.children.items():
            if child is not None and not isinstance(child, InertModule):
                raise ValueError(f'{prefix}{name} in {self.official_name} is a {type(child).__name__}, not a module')
            if child is not None:
                yield from child.named_tensors(f'{prefix}{name}.', ancestors | {id(self)})

    def state_dict(self) -> dict[str, Tensor]:
        """The tensors ``nn.Module.state_dict()`` of the original module would have held."""
        return {key: tensor.detach() for key, tensor in self.named_tensors()}


def _inert_class(full_name: str) -> type:
    name = full_name.rpartition('.')[2]
    return type(name, (InertModule, ), dict(official_name=full_name, __module__=__name__))


_INERT_CLASSES = {name: _inert_class(name) for name in OFFICIAL_MODULES + TORCH_NN_MODULES}


def _numpy_aliases() -> list:
    """numpy's reconstruction functions also under their numpy 1.x names (``numpy.core.multiarray``)."""
    core = np._core if hasattr(np, '_core') else np.core
    return [(getattr(core.multiarray, name.split('.')[1]), f'numpy.core.{name}') for name in _NUMPY_NAMES]


def _allowed_non_module_global(name: str) -> bool:
    if name in _TENSOR_AND_CONTAINER_GLOBALS:
        return True
    module, _, attribute = name.rpartition('.')
    if module == 'torch':  # storage classes (torch.HalfStorage, ...) and dtypes (torch.float16, ...)
        value = getattr(torch, attribute, None)
        return isinstance(value, torch.dtype) or (isinstance(value, type) and attribute.endswith('Storage'))
    if module == 'numpy':
        return attribute in ('ndarray', 'dtype')
    return any(name == f'numpy.{core}.{tail}' for core in ('core', '_core') for tail in _NUMPY_NAMES)


def _pickled_globals(data: bytes) -> Iterator[str]:
    """Every global a pickle names (``module.name``), without unpickling anything.

    ``STACK_GLOBAL`` (protocol >= 4) takes its two names from the values pushed just before it, which
    may come from the memo; a name that is not a string found that way is ``<unresolved STACK_GLOBAL>``.
    """
    memo: dict = {}
    recent: list = []  # the values of the last two pushing opcodes
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ('GLOBAL', 'INST'):
            module, name = argument.split(' ', 1)
            yield f'{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}'  # __builtin__ -> builtins
        elif opcode.name == 'STACK_GLOBAL':
            resolved = len(recent) == 2 and all(isinstance(part, str) for part in recent)
            yield '.'.join(recent) if resolved else '<unresolved STACK_GLOBAL>'
        if opcode.name == 'MEMOIZE':
            memo[len(memo)] = recent[-1] if recent else None
        elif opcode.name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
            memo[argument] = recent[-1] if recent else None
        elif opcode.name != 'FRAME':
            value = memo.get(argument) if opcode.name in ('GET', 'BINGET', 'LONG_BINGET') else argument
            recent = (recent + [value])[-2:]


def _read_pickle_bytes(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith('data.pkl')]
            if len(names) != 1:
                raise ValueError(f'{path}: a zip file but not a torch checkpoint (no single data.pkl)')
            return archive.read(names[0])
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f'{path}: not a readable torch checkpoint (truncated or corrupt? torch >= 1.6 zip '
                         f'format expected: {error})') from None


def check_pickled_globals(path: Path, data: bytes) -> None:
    """Refuse ``data`` (the pickle of ``path``) if it names any global outside the allowlist.

    Raises:
        UnsafeCheckpointError: Names the first refused global; nothing has been unpickled.
        ValueError: The pickle is truncated or corrupt, or was saved after the official ``Model.fuse()``.
    """
    try:
        names = list(_pickled_globals(data))
    except Exception as error:  # pickletools raises ValueError / struct errors on broken data
        raise ValueError(f'{path}: not a readable torch checkpoint (truncated or corrupt? {error})') from None
    for name in names:
        if name in _INERT_CLASSES or _allowed_non_module_global(name):
            continue
        if name == 'builtins.getattr' and _FUSED_FORWARD in data:
            raise ValueError(
                f'{path}: saved after the official Model.fuse() (its layers\' forward is bound to fuseforward, '
                f'pickled as builtins.getattr; BN and RepConv branches are folded away): not convertible, '
                f'convert the file from before fuse() (the released .pt files are unfused); nothing was unpickled.')
        if name.startswith('models.'):
            raise UnsafeCheckpointError(
                f'{path}: {name} is not a layer of the official YOLOv7 graphs: a YOLOv5, YOLOR or other '
                f'model? Only YOLOv7 checkpoints are read; nothing was unpickled.')
        raise UnsafeCheckpointError(
            f'{path}: refusing global {name}: only official YOLOv7 layers, their torch.nn modules, tensors '
            f'and plain containers may appear in the pickle; nothing was unpickled.')


def read_official_checkpoint(path: str | Path) -> Any:
    """Unpickle an official ``.pt`` file safely (see the module docstring).

    Args:
        path: A file written by ``torch.save`` (zip format, torch >= 1.6), as the official ``train.py``,
            ``strip_optimizer`` and the released weights are.

    Returns:
        The unpickled object: a checkpoint dict whose modules are :class:`InertModule` trees, or a
        plain state dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: The pickle names a global outside the allowlist.
        ValueError: The file is not a (complete) torch checkpoint, or is a fused one (see check_pickled_globals).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    check_pickled_globals(path, _read_pickle_bytes(path))
    registered = set(torch.serialization.get_safe_globals())  # e.g. by allow_mmengine_checkpoints()
    # only the missing ones: leaving the context removes what it added, and must not remove those
    safe_globals = [name for name in [(cls, name) for name, cls in _INERT_CLASSES.items()] + numpy_globals()
                    + _numpy_aliases() if name not in registered]
    try:
        with torch.serialization.safe_globals(safe_globals):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:  # torch's second line of defence; its message spans lines
        raise UnsafeCheckpointError(f'{path}: {refusal_reason(error)}') from None
    except (RuntimeError, EOFError) as error:
        raise ValueError(f'{path}: not a readable torch checkpoint (truncated or corrupt? {error})') from None


def _as_state_dict(path: Path, obj: Any, use_ema: bool) -> Mapping[str, Tensor]:
    if isinstance(obj, dict) and ('model' in obj or 'ema' in obj):  # train.py / strip_optimizer
        model = obj.get('ema') if use_ema and obj.get('ema') is not None else obj.get('model')
        if model is None:
            raise ValueError(f'{path}: the checkpoint holds no model (keys {sorted(obj)})')
        obj = model
    elif isinstance(obj, dict) and 'state_dict' in obj:
        obj = obj['state_dict']
    if not isinstance(obj, InertModule):
        return obj
    try:
        return obj.state_dict()
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None


def official_state_dict(path: str | Path, *, use_ema: bool = False) -> dict[str, Tensor]:
    """The official state dict (``model.{i}....`` keys, floating tensors as float32) of a ``.pt`` file.

    Args:
        path: An official training checkpoint (``{'model': Model, 'ema': Model, ...}``, fp16 or fp32),
            a pickled ``Model``, or a plain state dict.
        use_ema: Take the checkpoint's ``ema`` model when it has one (``strip_optimizer`` already put
            the EMA into ``model``).

    Raises:
        ValueError: The file holds no official YOLOv7 state dict; see also
            :func:`read_official_checkpoint`.
    """
    path = Path(path)
    state = _as_state_dict(path, read_official_checkpoint(path), use_ema)
    if not isinstance(state, Mapping) or not any(str(key).startswith('model.') for key in state):
        raise ValueError(f'{path}: holds no official YOLOv7 state dict (keys model.{{i}}....)')
    not_tensors = [key for key, value in state.items() if not isinstance(value, Tensor)]
    if not_tensors:
        raise ValueError(f'{path}: state dict entries that are not tensors: {not_tensors[:3]}')
    return {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
