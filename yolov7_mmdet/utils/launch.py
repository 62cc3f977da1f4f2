"""What ``tools/train.py`` and ``tools/test.py`` share: config loading and runner building.

The flags and their meaning follow mmdet 3.3's own tools, so a user's muscle memory carries over.
"""
from __future__ import annotations

import os.path as osp
from typing import Mapping, Optional
from unittest import mock

import torch
from mmengine.config import Config
from mmengine.dist import init_dist, is_distributed
from mmengine.runner import Runner
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from mmdet.registry import MODELS, RUNNERS

from .checkpoint import CheckpointError, CheckpointNotFoundError
from .config import config_path


def load_config(config: str, *, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Load a config, apply ``--cfg-options`` and resolve the work dir.

    Args:
        config: Path of the config file.
        cfg_options: ``--cfg-options`` key/value overrides (dotted keys).
        work_dir: ``--work-dir``; when None the config's own, else ``./work_dirs/<config name>``.
        launcher: ``none``, ``pytorch``, ``slurm`` or ``mpi`` (mmengine's launchers).
    """
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


# Scoped: mmengine's runner looks model wrappers up in its root registry.
CPU_DDP_WRAPPER = 'mmdet.DeviceAwareDistributedDataParallel'


def configure_distributed(cfg: Config) -> None:
    """Let a distributed launch (``launcher`` other than ``none``) run on GPUs or on CPUs alone.

    With CUDA, nothing changes: mmengine initialises the config's backend (NCCL in mmdet's default
    runtime). Without CUDA: the backend becomes gloo (NCCL needs GPUs); the process group is
    initialised here by mmengine's ``init_dist`` (same environment variables for the pytorch, slurm
    and mpi launchers) with its ``torch.cuda.set_device`` call skipped, which a CPU build of torch
    lacks; and the model is wrapped by ``DeviceAwareDistributedDataParallel`` (no ``device_ids``,
    SyncBN reverted to BN with one warning) instead of ``MMDistributedDataParallel``.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = dict(env_cfg.get('dist_cfg', {}), backend='gloo')
    env_cfg['dist_cfg'] = dist_cfg
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        broadcast_buffers=False, find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper_cfg.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        cfg.model_wrapper_cfg = dict(wrapper_cfg, type=CPU_DDP_WRAPPER)
    if not is_distributed():  # mmengine's runner then skips its own init_dist
        with mock.patch.object(torch.cuda, 'set_device', lambda device: None):  # only for this call
            init_dist(cfg.launcher, **dist_cfg)


def build_runner(cfg: Config) -> Runner:
    """Build mmengine's runner, or the one named by ``runner_type`` in the config.

    A distributed launch is first prepared by :func:`configure_distributed`.
    """
    configure_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def find_state_dict_mismatches(model: nn.Module, state_dict: dict) -> list[str]:
    """Describe the parameters and buffers where a state dict does not fit a model (empty: fits)."""
    expected = model.state_dict()
    problems = [f'missing: {key}' for key in expected
                if key not in state_dict and not _is_optional_key(model, key)]
    problems += [f'unexpected: {key}' for key in state_dict if key not in expected]
    problems += [
        f'shape of {key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}'
        for key, value in state_dict.items()
        if key in expected and hasattr(value, 'shape') and value.shape != expected[key].shape
    ]
    return problems


def _is_optional_key(model: nn.Module, key: str) -> bool:
    """Whether the module owning ``key`` fills it itself when a checkpoint lacks it
    (``optional_state_keys``, e.g. ``YOLOv7Head.anchors``)."""
    module_name, _, name = key.rpartition('.')
    owner = model.get_submodule(module_name) if module_name else model
    return name in getattr(owner, 'optional_state_keys', ())


def checkpoint_state_dict(checkpoint: str) -> dict:
    """The model state dict of a checkpoint file (its ``state_dict``, or the file itself).

    Raises:
        CheckpointNotFoundError: If a local file (``~`` expanded) does not exist; a URL is left to
            mmengine's loaders.
        CheckpointError: If the file is unreadable or unsafe (see ``load_checkpoint_safely``), or
            holds no state dict (a list, a tensor, a dict without tensors).
    """
    if '://' not in checkpoint and not osp.isfile(osp.expanduser(checkpoint)):  # URLs: mmengine's
        raise CheckpointNotFoundError(f'Checkpoint {checkpoint!r} does not exist.')
    loaded = _load_checkpoint(checkpoint, map_location='cpu', logger='silent')
    state_dict = loaded.get('state_dict', loaded) if isinstance(loaded, Mapping) else loaded
    has_tensors = isinstance(state_dict, Mapping) and any(isinstance(v, torch.Tensor) for v in state_dict.values())
    if not has_tensors:
        raise CheckpointError(
            f'{checkpoint}: holds a {type(state_dict).__name__}, not a model state dict (a dict of '
            f'tensors, alone or under "state_dict"); tools/model_converters/yolov7_to_mmdet.py converts '
            f'official YOLOv7 files.')
    return dict(state_dict)


def fitting_fraction(model: nn.Module, state_dict: Mapping) -> float:
    """The share of ``model``'s parameters and buffers that ``state_dict`` holds with the same shape."""
    expected = model.state_dict()
    fitting = sum(1 for key, value in expected.items()
                  if key in state_dict and getattr(state_dict[key], 'shape', None) == value.shape)
    return fitting / max(len(expected), 1)


#: The YOLOv7 variants, for naming the one a checkpoint fits.
VARIANTS = ('tiny', 'l', 'x', 'w6', 'e6', 'd6', 'e6e')


def best_fitting_variant(state_dict: Mapping) -> Optional[tuple[str, float]]:
    """``(variant, fitting fraction)`` of the YOLOv7 model (built on the meta device) that
    ``state_dict`` fits best, or None when it fits none by half."""
    init_default_scope('mmdet')
    best = None
    for variant in VARIANTS:
        with torch.device('meta'):
            model = MODELS.build(Config.fromfile(config_path(f'_base_/models/yolov7_{variant}.py')).model)
        fraction = fitting_fraction(model, state_dict)
        if fraction >= 0.5 and (best is None or fraction > best[1]):
            best = (variant, fraction)
    return best


def variant_note(state_dict: Mapping) -> str:
    """``'it fits yolov7-l (99% of its tensors)'``, or that it fits no YOLOv7 variant."""
    best = best_fitting_variant(state_dict)
    if best is None:
        return 'it fits no YOLOv7 variant'
    return f'it fits yolov7-{best[0]} ({best[1]:.0%} of its tensors; other class counts aside)'


def check_checkpoint_fits(model: nn.Module, checkpoint: str) -> None:
    """Refuse, with a clear message, a checkpoint whose weights do not fit ``model``.

    mmengine loads ``load_from`` non-strictly and only logs missing keys, which would evaluate a
    partly random model (for example a checkpoint of another YOLOv7 variant, or one trained with
    another ``num_classes``). ``tools/test.py`` and the exporter call this before loading.

    Raises:
        CheckpointNotFoundError: If a local file (``~`` expanded) does not exist; a URL is left to
            mmengine's loaders.
        CheckpointError: If the file holds no state dict, or keys are missing or unexpected, or
            shapes differ; the message lists them and names the variant the checkpoint fits.
    """
    state_dict = checkpoint_state_dict(checkpoint)
    detector = getattr(model, 'module', model)  # unwrap DDP and test-time-augmentation wrappers
    problems = find_state_dict_mismatches(detector, state_dict)
    if problems:
        shown = '\n  '.join(problems[:10]) + (f'\n  ... and {len(problems) - 10} more'
                                                if len(problems) > 10 else '')
        raise CheckpointError(
            f'Checkpoint {checkpoint!r} does not fit the model of this config ({len(problems)} '
            f'mismatches; {variant_note(state_dict)}; a checkpoint of another variant, or trained '
            f'with another num_classes?):\n  {shown}')
