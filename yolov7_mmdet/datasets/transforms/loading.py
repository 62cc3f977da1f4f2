"""Load boxes, and instance polygons where the annotations have them (as the official loader does).

The official loader reads a label file's segment polygons when it has them (COCO:
``coco2017labels-segments``) and then builds boxes from the warped polygons and pastes objects cut
out along them (``docs/data_pipeline.md``); box-only labels take the box-only path. mmdet's
``LoadAnnotations(with_mask=True)`` instead fails on an annotation without ``segmentation`` (a
``KeyError`` deep in a loader worker), so one config could not serve COCO and box-only data.
"""
from __future__ import annotations

from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class YOLOv7LoadAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations``: boxes, and polygons (``PolygonMasks``) when every instance has one.

    An image whose instances all carry a ``segmentation`` (mmdet's ``instance['mask']``) gets
    ``gt_masks`` as ``LoadAnnotations(with_mask=True, poly2mask=False)`` makes them (a crowd's RLE
    becomes an ignored dummy polygon); any other image gets boxes only (no ``gt_masks``).

    Args:
        **kwargs: Other arguments of ``LoadAnnotations`` (e.g. ``backend_args``); ``with_bbox``,
            ``with_mask`` and ``poly2mask`` are fixed.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(with_bbox=True, with_mask=True, poly2mask=False, **kwargs)

    def _load_masks(self, results: dict) -> None:
        if all('mask' in instance for instance in results.get('instances', [])):
            super()._load_masks(results)
