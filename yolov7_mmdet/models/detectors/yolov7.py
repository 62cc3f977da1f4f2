"""YOLOv7 (Wang, Bochkovskiy, Liao, 2022; arXiv:2207.02696) as an mmdet single-stage detector.

The detector adds nothing to mmdet's ``SingleStageDetector`` contract (``loss`` / ``predict`` /
``tensor`` modes, ``extract_feat = neck(backbone(x))``): the YOLOv7 specifics live in the backbone,
the neck, the head and its loss. It only exposes the deploy switch.
"""
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.registry import MODELS

from ..deploy import switch_to_deploy


@MODELS.register_module()
class YOLOv7(SingleStageDetector):
    """YOLOv7 detector: ``YOLOv7Backbone`` -> ``YOLOv7PAFPN`` -> ``YOLOv7Head`` (any compatible parts).

    Args are those of :class:`mmdet.models.detectors.SingleStageDetector`: ``backbone``, ``neck``,
    ``bbox_head``, ``train_cfg``, ``test_cfg``, ``data_preprocessor``, ``init_cfg``.
    """

    def switch_to_deploy(self, *, fuse_bn: bool = True) -> 'YOLOv7':
        """Turn this model into its inference graph in place; see :func:`~yolov7_mmdet.models.deploy.switch_to_deploy`."""
        return switch_to_deploy(self, fuse_bn=fuse_bn)
