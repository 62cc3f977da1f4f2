"""YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696) as an mmdet single-stage detector.

The detector adds nothing to mmdet's ``SingleStageDetector`` contract (``loss`` / ``predict`` /
``tensor`` modes, ``extract_feat = neck(backbone(x))``): the YOLOv7 specifics live in the backbone,
the neck, the head and its loss. It exposes the deploy switch (``deploy=True`` builds the model
directly in its inference graph, to load a checkpoint saved after ``switch_to_deploy()`` with
``tools/deployment/save_deployed.py``) and two speed options of the feature extractor, both off by
default:

* ``channels_last``: weights and inputs in NHWC memory order (faster convolutions on recent GPUs,
  especially with mixed precision); the outputs are the same.
* ``compile_backbone_neck``: ``torch.compile`` the backbone and the neck (not the head and its loss,
  whose shapes change with the GT count). Where compilation fails (no compiler, an unsupported
  platform or operator), a warning says why and that part runs eagerly from then on.
"""
import warnings
from typing import Dict, Union

import torch
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from ..deploy import switch_to_deploy


@MODELS.register_module()
class YOLOv7(SingleStageDetector):
    """YOLOv7 detector: ``YOLOv7Backbone`` -> ``YOLOv7PAFPN`` -> ``YOLOv7Head`` (any compatible parts).

    Args:
        backbone, neck, bbox_head, train_cfg, test_cfg, data_preprocessor, init_cfg: as in
            :class:`mmdet.models.detectors.SingleStageDetector`.
        channels_last (bool): Keep weights and inputs in channels-last memory order. Defaults to False.
        compile_backbone_neck (bool | dict): ``torch.compile`` the backbone and the neck; a dict is
            passed to ``torch.compile`` (e.g. ``dict(mode='max-autotune')``). Defaults to False.
        deploy (bool): Build the inference graph (``switch_to_deploy()`` right after construction),
            whose weights a deployed checkpoint holds. Not trainable. Defaults to False.
    """

    def __init__(self, *, backbone: ConfigType, neck: OptConfigType = None, bbox_head: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None, init_cfg: OptMultiConfig = None,
                 channels_last: bool = False, compile_backbone_neck: Union[bool, dict] = False,
                 deploy: bool = False) -> None:
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.channels_last = channels_last
        if isinstance(compile_backbone_neck, dict):
            self.compile_options = dict(compile_backbone_neck)
        else:
            self.compile_options = {} if compile_backbone_neck else None
        self._compiled: Dict[str, nn.Module] = {}  # part name -> compiled wrapper, made on first use
        if channels_last:
            self.to(memory_format=torch.channels_last)
        if deploy:
            self.eval()
            self.switch_to_deploy()

    def init_weights(self) -> None:
        super().init_weights()
        if self.channels_last:  # initialisers may have replaced tensors
            self.to(memory_format=torch.channels_last)

    def extract_feat(self, batch_inputs: Tensor):
        """``neck(backbone(x))``, channels-last and compiled where configured."""
        if self.channels_last:
            batch_inputs = batch_inputs.contiguous(memory_format=torch.channels_last)
        x = self._run_part('backbone', batch_inputs)
        return self._run_part('neck', x) if self.with_neck else x

    def _run_part(self, name: str, x):
        """Run ``self.<name>``, compiled when configured; a failed compilation falls back to eager."""
        module = getattr(self, name)
        if self.compile_options is None:
            return module(x)
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = torch.compile(module, **self.compile_options)
        if compiled is module:  # compilation failed before: eager
            return module(x)
        try:
            return compiled(x)
        except Exception as error:  # noqa: BLE001  (an eager run re-raises errors of the model itself)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ''
            warnings.warn(f'torch.compile of the {name} failed ({type(error).__name__}: {reason}); '
                          f'the {name} runs eagerly')
            self._compiled[name] = module
            return module(x)

    def __getstate__(self) -> dict:
        """Copies and pickles (e.g. the EMA model's deepcopy) leave the compiled wrappers behind."""
        state = super().__getstate__()
        return dict(state, _compiled={})

    def switch_to_deploy(self, *, fuse_bn: bool = True) -> 'YOLOv7':
        """Turn this model into its inference graph in place; see :func:`~yolov7_mmdet.models.deploy.switch_to_deploy`."""
        self._compiled = {}  # the parts change: compile them again on first use
        switch_to_deploy(self, fuse_bn=fuse_bn)
        if self.channels_last:  # the fused convs are new tensors, made in NCHW order
            self.to(memory_format=torch.channels_last)
        return self
