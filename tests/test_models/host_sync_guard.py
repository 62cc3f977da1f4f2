"""Test helper: fail on any operation that would make the host wait for the device.

On CUDA, reading a value on the host (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``, ``.cpu()``,
``.numpy()``) and ops whose output size depends on the data (``nonzero`` without a size, boolean-mask
indexing, ``masked_select``, ``unique``, ``repeat_interleave`` without ``output_size``) synchronise the
host with the device. On the CPU they cost nothing, so a CPU test has to look for them: two guards,

* a torch *function* mode for the Python-level calls (``.cpu()`` / ``.numpy()`` / ``.tolist()`` are
  no-ops or host reads on the CPU and never reach an aten op; ``.to(device)`` counts only when it
  copies a device tensor to the host; ``torch.tensor`` / ``as_tensor`` / ``new_tensor`` of Python
  data are a blocking copy to the device there), and
* a torch *dispatch* mode for the aten ops they all end in (``_local_scalar_dense`` is what ``item``,
  ``bool``, ``int`` and ``float`` call; boolean-mask indexing calls ``nonzero``), which also sees
  autograd's backward pass and code written in C++.
"""
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode


class HostSyncError(RuntimeError):
    """An operation that synchronises the host with the device ran inside :func:`forbid_host_sync`."""


_HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy,
               torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__,
               torch.Tensor.__index__}
_DATA_DEPENDENT_OPS = {'aten::_local_scalar_dense', 'aten::nonzero', 'aten::masked_select',
                       'aten::_unique', 'aten::_unique2', 'aten::unique_dim',
                       'aten::unique_consecutive', 'aten::argwhere'}
_FROM_HOST_DATA = {torch.tensor, torch.as_tensor, torch.Tensor.new_tensor}
_INDEXING_OPS = {'aten::index', 'aten::index_put', 'aten::index_put_', 'aten::_index_put_impl_'}


class _NoHostReads(TorchFunctionMode):

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _HOST_READS:
            raise HostSyncError(f'{func.__name__} reads a tensor on the host')
        if func in _FROM_HOST_DATA and not isinstance(_data_argument(func, args, kwargs), torch.Tensor):
            raise HostSyncError(f'{func.__name__} from Python data is a blocking copy to the device')
        if func is torch.Tensor.to and not _is_cpu(args[0].device) and any(
                _is_cpu(a) for a in list(args[1:]) + list((kwargs or {}).values())):
            raise HostSyncError('.to(cpu) copies a tensor to the host')
        return func(*args, **(kwargs or {}))


class _NoDataDependentOps(TorchDispatchMode):

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in _DATA_DEPENDENT_OPS:
            raise HostSyncError(f'{name} waits for the device (its result size or value is data)')
        if name in _INDEXING_OPS and any(_is_mask(index) for index in args[1]):
            raise HostSyncError(f'{name} with a boolean mask waits for the device (it counts the mask)')
        if name == 'aten::repeat_interleave' and (kwargs or {}).get('output_size') is None:
            raise HostSyncError('repeat_interleave without output_size waits for the device')
        return func(*args, **(kwargs or {}))


def _data_argument(func, args, kwargs):
    """The ``data`` of ``torch.tensor(data)``, ``torch.as_tensor(data)``, ``t.new_tensor(data)``."""
    position = 1 if func is torch.Tensor.new_tensor else 0
    return args[position] if len(args) > position else (kwargs or {}).get('data')


def _is_mask(index) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def _is_cpu(value) -> bool:
    return (isinstance(value, torch.device) and value.type == 'cpu') or value == 'cpu'


@contextmanager
def forbid_host_sync():
    """Raise :class:`HostSyncError` on any host synchronisation inside the block."""
    with _NoHostReads(), _NoDataDependentOps():
        yield
