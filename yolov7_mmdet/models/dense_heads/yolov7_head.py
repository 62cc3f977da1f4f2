"""YOLOv7Head: the anchor-based lead head (IDetect) and the auxiliary head (IAuxDetect) of YOLOv7.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696). Per pyramid level ``i``::

    lead (IDetect):     N_i ─ 3x3 conv (RepConvN for L) ─ ImplicitA ─ 1x1 conv ─ ImplicitM ─> (B, A*(5+C), H, W)
    aux (IAuxDetect):   tap_i ─ 3x3 conv ───────────────────────── 1x1 conv ──────────────> (B, A*(5+C), H, W)

Channels are anchor-major, ``[x, y, w, h, obj, cls_0 .. cls_{C-1}]`` per anchor (the official layout),
raw logits.  The aux head exists only in training (P6 models, section 3.3 "coarse for auxiliary and fine
for lead loss"); ``switch_to_deploy`` folds the implicit vectors into the 1x1 convs and deletes it.

Inference decodes as the official ``Detect``: ``xy = (2 sigmoid(t_xy) - 0.5 + cell) * stride``,
``wh = (2 sigmoid(t_wh))^2 * anchor``, ``score = sigmoid(obj) * sigmoid(cls)`` (``sigmoid(obj)`` for a
single class), then multi-label NMS as the official ``test.py`` (score > 0.001, IoU 0.65, at most 300).
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Sequence

import torch
from mmcv.ops import batched_nms
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptInstanceList, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..layers import (TORCH_DEFAULT_CONV_INIT, YOLOV7_ACT_CFG, YOLOV7_NORM_CFG, ImplicitA, ImplicitM,
                      RepConvN,
                      fold_implicit_into_conv, yolov7_conv)
from ..task_modules.assigners import decode_boxes, stack_gt_instances
from .class_rows import load_box_rows_only

# The official test.py / README evaluation protocol.
DEFAULT_TEST_CFG = dict(multi_label=True, nms_pre=30000, score_thr=0.001,
                        nms=dict(type='nms', iou_threshold=0.65, split_thr=10 ** 9), max_per_img=300)


@MODELS.register_module()
class YOLOv7Head(BaseDenseHead):
    """YOLOv7 lead (+ aux) head (see the module docstring).

    Args:
        num_classes (int): Number of classes C.
        in_channels (Sequence[int]): Widths of the neck outputs, P3 first.
        feat_channels (Sequence[int]): Output widths of the per-level 3x3 convs (official: twice the
            input, e.g. L: 256, 512, 1024).
        anchors (Sequence[Sequence[Sequence[int]]]): Per level, A anchors ``(w, h)`` in pixels.
        strides (Sequence[int]): Stride of each level. Defaults to (8, 16, 32).
        use_repconv (bool): RepConvN (YOLOv7-L) instead of a plain 3x3 conv for the lead convs.
        aux_in_channels (Sequence[int], optional): Widths of the neck's aux taps; None: no aux head.
        aux_feat_channels (Sequence[int], optional): Output widths of the aux 3x3 convs.
        prior_objects_per_image (float): Expected objects per 640x640 image for the objectness bias
            prior ``log(n / (640 / stride)^2)``. Defaults to 8 (official).
        prior_class_probability (float): Class bias prior ``log(p / (C - 0.99))``. Defaults to 0.6.
        loss (dict): Config of the loss module (``YOLOv7Loss``); ``num_classes`` is filled in.
        conv_cfg (dict, optional): mmcv conv config of the 3x3 convs.
        norm_cfg (dict): Norm config of the 3x3 convs.
        act_cfg (dict): Activation of the 3x3 convs (SiLU; tiny: LeakyReLU(0.1)).
        train_cfg (dict, optional): Unused; kept for mmdet's detector contract.
        test_cfg (dict, optional): ``multi_label``, ``nms_pre``, ``score_thr``, ``nms``,
            ``max_per_img``; defaults to ``DEFAULT_TEST_CFG`` (the official protocol).
        init_cfg (dict or list[dict], optional): Initialization config; PyTorch's default conv init
            (as the official code) by default. The bias priors are added in ``init_weights``.
    """

    def __init__(self,
                 *,
                 num_classes: int = 80,
                 in_channels: Sequence[int],
                 feat_channels: Sequence[int],
                 anchors: Sequence[Sequence[Sequence[int]]],
                 strides: Sequence[int] = (8, 16, 32),
                 use_repconv: bool = False,
                 aux_in_channels: Optional[Sequence[int]] = None,
                 aux_feat_channels: Optional[Sequence[int]] = None,
                 prior_objects_per_image: float = 8.,
                 prior_class_probability: float = 0.6,
                 loss: ConfigType = dict(type='YOLOv7Loss'),
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = YOLOV7_NORM_CFG,
                 act_cfg: ConfigType = YOLOV7_ACT_CFG,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = TORCH_DEFAULT_CONV_INIT) -> None:
        super().__init__(init_cfg=init_cfg)
        # Config constants: built on the CPU even under a meta-device context, moved by .to() later.
        anchors_tensor = torch.as_tensor(anchors, dtype=torch.float32, device='cpu')
        num_levels = len(strides)
        if anchors_tensor.dim() != 3 or anchors_tensor.shape[0] != num_levels or anchors_tensor.shape[2] != 2:
            raise ValueError(f'anchors must be {num_levels} levels of A (w, h) pairs, got shape '
                             f'{tuple(anchors_tensor.shape)}')
        if not len(in_channels) == len(feat_channels) == num_levels:
            raise ValueError(f'in_channels {in_channels} and feat_channels {feat_channels} need one '
                             f'entry per level ({num_levels})')
        if (aux_in_channels is None) != (aux_feat_channels is None):
            raise ValueError('aux_in_channels and aux_feat_channels go together')
        self.num_classes = num_classes
        self.num_levels = num_levels
        self.num_base_priors = anchors_tensor.shape[1]
        self.num_outputs = 5 + num_classes  # per anchor: x, y, w, h, obj, classes
        self.in_channels = tuple(in_channels)
        self.prior_objects_per_image = prior_objects_per_image
        self.prior_class_probability = prior_class_probability
        # (L, A, 2) pixels; saved in checkpoints, since AutoAnchorHook may re-fit them to the data
        self.register_buffer('anchors', anchors_tensor)
        self.register_buffer('strides', torch.as_tensor(strides, dtype=torch.float32, device='cpu'),
                             persistent=False)
        self.train_cfg = train_cfg
        self.test_cfg = ConfigDict(DEFAULT_TEST_CFG if test_cfg is None else test_cfg)
        cfgs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        pred_channels = self.num_base_priors * self.num_outputs

        if use_repconv:
            self.lead_convs = nn.ModuleList(
                RepConvN(c_in, c_out, norm_cfg=norm_cfg, act_cfg=act_cfg)
                for c_in, c_out in zip(in_channels, feat_channels))
        else:
            self.lead_convs = nn.ModuleList(
                yolov7_conv(c_in, c_out, 3, **cfgs) for c_in, c_out in zip(in_channels, feat_channels))
        self.lead_implicit_a = nn.ModuleList(ImplicitA(c) for c in feat_channels)
        self.lead_preds = nn.ModuleList(nn.Conv2d(c, pred_channels, 1) for c in feat_channels)
        self.lead_implicit_m = nn.ModuleList(ImplicitM(pred_channels) for _ in feat_channels)
        self.with_implicit = True

        self.with_aux = aux_in_channels is not None
        if self.with_aux:
            if not len(aux_in_channels) == len(aux_feat_channels) == num_levels:
                raise ValueError('aux_in_channels and aux_feat_channels need one entry per level')
            self.aux_convs = nn.ModuleList(
                yolov7_conv(c_in, c_out, 3, **cfgs) for c_in, c_out in zip(aux_in_channels, aux_feat_channels))
            self.aux_preds = nn.ModuleList(nn.Conv2d(c, pred_channels, 1) for c in aux_feat_channels)

        loss = dict(loss)
        loss.setdefault('num_classes', num_classes)
        self.loss_module = MODELS.build(loss)

    # State dict keys a checkpoint may lack: the head then keeps the config's anchors (checkpoints
    # written before anchors were saved; the official-weight converter saves the file's anchors).
    # tools/test.py's fit check honours this.
    optional_state_keys = ('anchors',)

    def set_anchors(self, anchors: Tensor) -> None:
        """Replace the anchors (``(L, A, 2)`` pixels, the current shape) in place."""
        anchors = torch.as_tensor(anchors, dtype=self.anchors.dtype, device=self.anchors.device)
        if anchors.shape != self.anchors.shape:
            raise ValueError(f'new anchors have shape {tuple(anchors.shape)}, the head '
                             f'{tuple(self.anchors.shape)} (levels, anchors per level, 2)')
        self.anchors.copy_(anchors)

    # ----------------------------------------------------------------------------------------- init
    def init_weights(self) -> None:
        """Default init, then the official bias priors on every prediction conv (lead and aux)."""
        super().init_weights()
        pred_convs = list(self.lead_preds) + (list(self.aux_preds) if self.with_aux else [])
        strides = self.strides.tolist() * (2 if self.with_aux else 1)
        for conv, stride in zip(pred_convs, strides):
            self._init_pred_bias(conv, stride)

    @torch.no_grad()
    def _init_pred_bias(self, conv: nn.Conv2d, stride: float) -> None:
        """PyTorch's default bias, plus the priors of the official ``_initialize_biases``."""
        bound = 1 / math.sqrt(conv.in_channels)
        conv.bias.uniform_(-bound, bound)
        bias = conv.bias.view(self.num_base_priors, self.num_outputs)  # (A*(5+C),) -> (A, 5+C)
        bias[:, 4] += math.log(self.prior_objects_per_image / (640 / stride) ** 2)
        bias[:, 5:] += math.log(self.prior_class_probability / (self.num_classes - 0.99))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        """Also take prediction convs trained for another ``num_classes`` (fine-tuning): see
        :func:`~.class_rows.load_box_rows_only`; what was skipped is reported in ``error_msgs``, so
        mmengine's lenient load (``load_from``) logs it and torch's ``load_state_dict`` still refuses.
        A checkpoint without ``optional_state_keys`` keeps the head's own values for them."""
        for key in self.optional_state_keys:
            state_dict.setdefault(prefix + key, getattr(self, key))
        self._report_other_anchors(state_dict.get(prefix + 'anchors'))
        skipped = load_box_rows_only(self, state_dict, prefix)
        if skipped:
            error_msgs.append(skipped)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _report_other_anchors(self, theirs: Optional[Tensor]) -> None:
        """One log line when a checkpoint's anchors (which are loaded) differ from the head's.

        Unlike the official ``train.py``, which keeps the yaml's anchors when fine-tuning, a loaded
        checkpoint brings its anchors (auto-anchored, or converted from an official file); in configs
        with ``AutoAnchorHook`` they are checked against the training boxes when training starts.
        """
        if theirs is None or theirs.shape != self.anchors.shape or torch.equal(
                theirs.to(self.anchors), self.anchors):
            return
        print_log(f'anchors: the checkpoint\'s {theirs.tolist()} replace the head\'s '
                  f'{self.anchors.tolist()} (pixels)', logger='current', level=logging.WARNING)

    # -------------------------------------------------------------------------------------- forward
    def forward_lead(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Lead maps ``(B, A*(5+C), H_i, W_i)`` from the neck outputs ``(B, in_channels[i], H_i, W_i)``."""
        outs = []
        for level, feat in enumerate(feats):
            x = self.lead_convs[level](feat)
            if self.with_implicit:
                x = self.lead_implicit_m[level](self.lead_preds[level](self.lead_implicit_a[level](x)))
            else:
                x = self.lead_preds[level](x)
            outs.append(x)
        return outs

    def forward_aux(self, taps: Sequence[Tensor]) -> list[Tensor]:
        """Aux maps ``(B, A*(5+C), H_i, W_i)`` from the neck's aux taps."""
        return [pred(conv(tap)) for conv, pred, tap in zip(self.aux_convs, self.aux_preds, taps)]

    def _split_inputs(self, x: Sequence[Tensor]) -> tuple[Sequence[Tensor], Optional[Sequence[Tensor]]]:
        """Neck outputs -> (lead features, aux taps or None); the neck appends taps after the lead maps."""
        expected = self.num_levels * (2 if self.with_aux else 1)
        if len(x) != expected:
            raise ValueError(
                f'YOLOv7Head ({"with" if self.with_aux else "without"} aux head) expects {expected} '
                f'feature maps, got {len(x)}; the neck\'s aux_taps must match the head\'s aux convs')
        if self.with_aux:
            return x[:self.num_levels], x[self.num_levels:]
        return x, None

    def forward(self, x: Sequence[Tensor]) -> tuple[list[Tensor], Optional[list[Tensor]]]:
        """Raw maps of the lead head and (when it exists) the aux head.

        Args:
            x (Sequence[Tensor]): Neck outputs ``(N_0, .., N_top)``, followed by the aux taps when the
                head has an aux branch.

        Returns:
            tuple: ``lead_maps`` (list of ``(B, A*(5+C), H_i, W_i)``) and ``aux_maps`` (same layout, or
            None without an aux head).
        """
        feats, taps = self._split_inputs(x)
        lead_maps = self.forward_lead(feats)
        aux_maps = self.forward_aux(taps) if taps is not None else None
        return lead_maps, aux_maps

    def _anchor_major(self, raw: Tensor) -> Tensor:
        """``(B, A*(5+C), H, W) -> (B, A, H, W, 5+C)``, the layout of the official ``p[i]``."""
        batch, _, height, width = raw.shape
        # (B, A*(5+C), H, W) -> (B, A, 5+C, H, W) -> (B, A, H, W, 5+C)
        return raw.view(batch, self.num_base_priors, self.num_outputs, height, width).permute(0, 1, 3, 4, 2)

    # ----------------------------------------------------------------------------------------- loss
    def loss_by_feat(self,
                     lead_maps: Sequence[Tensor],
                     aux_maps: Optional[Sequence[Tensor]],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: list[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict[str, Tensor]:
        """Pad the GTs into batch tensors and run the ``YOLOv7Loss`` module.

        Returns:
            dict[str, Tensor]: ``loss_box``, ``loss_obj``, ``loss_cls`` (+ ``loss_aux_*`` with an aux
            head); their sum is the official total loss.
        """
        device = lead_maps[0].device
        gt_bboxes, gt_labels, gt_valid = stack_gt_instances(batch_gt_instances, device=device)
        ignore_bboxes = ignore_valid = None
        # PackDetInputs gives every image an ignore set, mostly empty: the sizes are known on the host,
        # and without any ignore box the loss skips the dense ignore test altogether
        if batch_gt_instances_ignore is not None and any(
                i is not None and len(i) > 0 for i in batch_gt_instances_ignore):
            empty = InstanceData(bboxes=torch.zeros(0, 4, device=device))
            ignored = [empty if inst is None else inst for inst in batch_gt_instances_ignore]
            ignore_bboxes, _, ignore_valid = stack_gt_instances(ignored, device=device)
        return self.loss_module(
            [self._anchor_major(m) for m in lead_maps],
            None if aux_maps is None else [self._anchor_major(m) for m in aux_maps],
            anchors=self.anchors,
            strides=self.strides,
            gt_bboxes=gt_bboxes,
            gt_labels=gt_labels,
            gt_valid=gt_valid,
            batch_input_shape=tuple(batch_img_metas[0]['batch_input_shape']),
            ignore_bboxes=ignore_bboxes,
            ignore_valid=ignore_valid)

    # -------------------------------------------------------------------------------------- predict
    def predict(self, x: Sequence[Tensor], batch_data_samples: SampleList,
                rescale: bool = False) -> InstanceList:
        """Detect with the lead head only (the aux branch is not run)."""
        feats, _ = self._split_inputs(x)
        batch_img_metas = [data_sample.metainfo for data_sample in batch_data_samples]
        return self.predict_by_feat(self.forward_lead(feats), batch_img_metas=batch_img_metas, rescale=rescale)

    def decode(self, lead_maps: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Decode every prediction of the batch.

        Args:
            lead_maps (Sequence[Tensor]): ``(B, A*(5+C), H_i, W_i)`` per level.

        Returns:
            tuple[Tensor, Tensor]: boxes ``(B, N, 4)`` xyxy pixels of the network input and scores
            ``(B, N, C)`` (``obj * cls``, or ``obj`` for one class), ``N = sum_i A * H_i * W_i`` ordered
            level, anchor, row, column (the official order).
        """
        boxes, objectness, class_probs = self.decode_with_objectness(lead_maps)
        scores = objectness if self.num_classes == 1 else objectness * class_probs
        return boxes, scores

    def decode_with_objectness(self, lead_maps: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Decode every prediction of the batch, keeping objectness and class probabilities apart.

        Args:
            lead_maps (Sequence[Tensor]): ``(B, A*(5+C), H_i, W_i)`` per level.

        Returns:
            tuple[Tensor, Tensor, Tensor]: boxes ``(B, N, 4)`` xyxy pixels of the network input,
            objectness ``(B, N, 1)`` and class probabilities ``(B, N, C)`` (sigmoids), in the order of
            :meth:`decode`.
        """
        boxes, objectness, class_probs = [], [], []
        for level, raw in enumerate(lead_maps):
            pred = self._anchor_major(raw)  # (B, A, H, W, 5+C)
            batch, _, height, width, _ = pred.shape
            grid_y, grid_x = torch.meshgrid(torch.arange(height, device=raw.device),
                                            torch.arange(width, device=raw.device), indexing='ij')
            anchor_wh = self.anchors[level].to(pred.dtype).view(1, -1, 1, 1, 2)  # (A, 2) -> (1, A, 1, 1, 2)
            level_boxes = decode_boxes(pred[..., :4], grid_x, grid_y, anchor_wh, self.strides[level])
            boxes.append(level_boxes.reshape(batch, -1, 4))  # (B, A, H, W, 4) -> (B, A*H*W, 4)
            objectness.append(pred[..., 4:5].sigmoid().reshape(batch, -1, 1))  # -> (B, A*H*W, 1)
            class_probs.append(pred[..., 5:].sigmoid().reshape(batch, -1, self.num_classes))  # -> (B, A*H*W, C)
        return torch.cat(boxes, dim=1), torch.cat(objectness, dim=1), torch.cat(class_probs, dim=1)

    def predict_by_feat(self,
                        lead_maps: Sequence[Tensor],
                        aux_maps: Optional[Sequence[Tensor]] = None,
                        *,
                        batch_img_metas: list[dict],
                        cfg: OptConfigType = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Decode, threshold, NMS and (optionally) map boxes back to the original images.

        Args:
            lead_maps (Sequence[Tensor]): Lead maps ``(B, A*(5+C), H_i, W_i)``.
            aux_maps: Ignored (the aux head is not used for inference).
            batch_img_metas (list[dict]): Per image ``img_shape`` and, with ``rescale``, ``ori_shape``,
                ``scale_factor`` (w, h) and optionally ``pad_param`` (top, bottom, left, right) of a
                letterbox.
            cfg (dict, optional): Overrides ``self.test_cfg``.
            rescale (bool): Map boxes to the original image: subtract the letterbox padding, divide by
                the scale factor, clip to ``ori_shape`` (the official ``scale_coords``).
            with_nms (bool): Run NMS; without it the thresholded candidates are returned sorted.

        Returns:
            list[InstanceData]: Per image ``bboxes`` (K, 4) xyxy, ``scores`` (K,), ``labels`` (K,).
        """
        cfg = self.test_cfg if cfg is None else cfg
        boxes, scores = self.decode(lead_maps)
        return [
            self._predict_single(boxes[i], scores[i], img_meta, cfg=cfg, rescale=rescale, with_nms=with_nms)
            for i, img_meta in enumerate(batch_img_metas)  # NMS keeps a different count per image
        ]

    def _predict_single(self, boxes: Tensor, scores: Tensor, img_meta: dict, *, cfg: ConfigType,
                        rescale: bool, with_nms: bool) -> InstanceData:
        """Threshold (multi-label or best class), cap at ``nms_pre``, NMS, cap at ``max_per_img``."""
        score_thr = cfg.get('score_thr', 0.001)
        if cfg.get('multi_label', True):
            box_inds, labels = (scores > score_thr).nonzero(as_tuple=True)
            kept_scores = scores[box_inds, labels]
        else:
            kept_scores, labels = scores.max(dim=1)
            box_inds = (kept_scores > score_thr).nonzero(as_tuple=True)[0]
            kept_scores, labels = kept_scores[box_inds], labels[box_inds]
        nms_pre = cfg.get('nms_pre', -1)
        if 0 < nms_pre < kept_scores.numel():
            kept_scores, order = kept_scores.topk(nms_pre)
            box_inds, labels = box_inds[order], labels[order]
        kept_boxes = boxes[box_inds]
        if kept_boxes.numel() == 0:  # mmcv's batched_nms cannot take an empty set
            return InstanceData(bboxes=kept_boxes, scores=kept_scores, labels=labels)
        # mmcv separates classes by offsetting boxes with label * (max coordinate + 1), which only
        # isolates the classes when no coordinate is below -1; shifting to a zero minimum first makes it
        # exact (IoU does not change under translation).
        boxes_for_nms = kept_boxes - kept_boxes.min()
        dets, keep = batched_nms(boxes_for_nms, kept_scores, labels, cfg.get('nms') if with_nms else None)
        max_per_img = cfg.get('max_per_img', -1)
        if max_per_img > 0:
            dets, keep = dets[:max_per_img], keep[:max_per_img]
        results = InstanceData(bboxes=kept_boxes[keep], scores=dets[:, 4], labels=labels[keep])
        if rescale:
            results.bboxes = self._to_original_image(results.bboxes, img_meta)
        return results

    @staticmethod
    def _to_original_image(bboxes: Tensor, img_meta: dict) -> Tensor:
        """Undo the letterbox padding (``pad_param``) and resize (``scale_factor``), clip to ``ori_shape``."""
        if 'pad_param' in img_meta:
            top, _, left, _ = img_meta['pad_param']
            bboxes = bboxes - bboxes.new_tensor([left, top, left, top])
        if 'scale_factor' in img_meta:
            scale_w, scale_h = img_meta['scale_factor']
            bboxes = bboxes / bboxes.new_tensor([scale_w, scale_h, scale_w, scale_h])
        height, width = img_meta['ori_shape'][:2]
        return torch.stack([bboxes[:, 0].clamp(0, width), bboxes[:, 1].clamp(0, height),
                            bboxes[:, 2].clamp(0, width), bboxes[:, 3].clamp(0, height)], dim=1)

    # --------------------------------------------------------------------------------------- deploy
    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold ImplicitA/M into the lead 1x1 convs and delete the aux head. Idempotent.

        The neck must stop emitting the aux taps too (``neck.aux_taps = False``); the model-level
        :func:`yolov7_mmdet.models.deploy.switch_to_deploy` does both.
        """
        if self.with_implicit:
            for conv, implicit_a, implicit_m in zip(self.lead_preds, self.lead_implicit_a,
                                                    self.lead_implicit_m):
                fold_implicit_into_conv(conv, implicit_a=implicit_a, implicit_m=implicit_m)
            del self.lead_implicit_a, self.lead_implicit_m
            self.with_implicit = False
        if self.with_aux:
            del self.aux_convs, self.aux_preds
            self.with_aux = False
