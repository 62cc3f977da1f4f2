"""Deterministic weights keyed by *official* YOLOv7 parameter names (pure torch, no yolov7_mmdet import).

Used both by the script that made ``tests/fixtures/official_yolov7_*.pt`` (run against the official
code) and by ``test_official_conversion.py``: the same name gives the same tensor on both sides, so
only the official outputs need to be stored, not the weights.
"""
import zlib

import torch

TABLE_SIZE = 65521  # values drawn per tensor, then repeated: fast even for 166M parameters


def official_weight(key: str, shape) -> torch.Tensor:
    """A well-scaled value for the official tensor ``key`` (conv weights: variance ~1 / fan_in)."""
    shape = torch.Size(shape)
    if key.endswith('num_batches_tracked'):
        return torch.zeros((), dtype=torch.long)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    table = torch.rand(min(shape.numel(), TABLE_SIZE), generator=generator, dtype=torch.float64).float()
    noise = table.repeat(-(-shape.numel() // table.numel()))[:shape.numel()].view(shape)
    if len(shape) == 4:  # conv kernels (Conv, RepConv branches, detect convs)
        return (2 * noise - 1) * (3.0 / shape[1:].numel()) ** 0.5
    if key.endswith('implicit'):
        return 1 + 0.2 * (noise - 0.5) if '.im.' in key else 0.2 * (noise - 0.5)
    if key.endswith('running_var'):
        return 0.5 + noise
    if key.endswith('weight'):  # BN scale
        return 0.8 + 0.4 * noise
    return 0.2 * noise - 0.1  # BN shift / running mean, detect conv biases


def official_input(size: int = 64) -> torch.Tensor:
    """The fixtures' input image ``(1, 3, size, size)`` in [0, 1)."""
    generator = torch.Generator().manual_seed(4242)
    return torch.rand(1, 3, size, size, generator=generator, dtype=torch.float64).float()
