"""Instance polygons (mmdet ``PolygonMasks``) in YOLOv7's training transforms, vectorised.

The official loader carries each object's segment polygon (``coco2017labels-segments``) through the
mosaic and makes the box of the warped object from its warped polygon (``utils/datasets.py``
``load_mosaic`` / ``random_perspective``, ``utils/general.py`` ``resample_segments`` /
``segment2box``). These helpers do the same on mmdet's ``PolygonMasks``: one instance is a list of
parts, each a flat ``[x0, y0, x1, y1, ...]`` array. All parts of all instances are handled as one
``(V, 2)`` vertex array, so no step loops over instances in Python except to (un)pack the list.

An instance of several parts (COCO does that for occluded objects) is one merged polygon in the
official labels (the converter joins the parts with thin bridges); here its parts are resampled
separately and its box is the union of theirs, which equals the official for one-part instances.
"""
from __future__ import annotations

import numpy as np
from mmdet.structures.mask import PolygonMasks
from mmengine.logging import print_log

#: Points per resampled polygon part (official ``resample_segments(n=1000)``).
RESAMPLED_POINTS = 1000

_LOGGED: set[str] = set()


def log_once(message: str) -> None:
    """Write ``message`` to the current mmengine logger the first time it is given (per process)."""
    if message not in _LOGGED:
        _LOGGED.add(message)
        print_log(message, logger='current')


def flatten_polygons(masks: PolygonMasks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vertices of all parts of all instances.

    Returns:
        ``(xy, vertices_per_part, parts_per_instance)``: ``(V, 2)`` float64 vertices, part after
        part in instance order; ``(P,)`` int vertex counts of the parts; ``(N,)`` int part counts.
    """
    parts = [part for instance in masks.masks for part in instance]
    parts_per_instance = np.array([len(instance) for instance in masks.masks], dtype=np.int64)
    vertices_per_part = np.array([len(part) // 2 for part in parts], dtype=np.int64)
    if not parts:
        return np.zeros((0, 2)), vertices_per_part, parts_per_instance
    xy = np.concatenate(parts).astype(np.float64).reshape(-1, 2)  # (V, 2): x, y per vertex
    return xy, vertices_per_part, parts_per_instance


def unflatten_polygons(xy: np.ndarray, vertices_per_part: np.ndarray,
                       parts_per_instance: np.ndarray, height: int, width: int) -> PolygonMasks:
    """Inverse of :func:`flatten_polygons` for an image of ``height x width``."""
    parts = np.split(xy.reshape(-1), 2 * np.cumsum(vertices_per_part)[:-1])  # flat x, y per part
    starts = np.concatenate([[0], np.cumsum(parts_per_instance)])
    masks = [parts[start:end] for start, end in zip(starts[:-1], starts[1:])]
    return PolygonMasks(masks, height, width)


def scale_polygons(masks: PolygonMasks, out_hw: tuple[int, int]) -> PolygonMasks:
    """``masks`` resized to an ``out_hw`` image: mmdet's ``PolygonMasks.resize`` (the same float64
    products, per axis), in one array operation instead of a Python loop over the parts."""
    xy, vertices_per_part, parts_per_instance = flatten_polygons(masks)
    height, width = out_hw
    xy = xy * np.array([width / masks.width, height / masks.height])  # (V, 2) x, y
    return unflatten_polygons(xy, vertices_per_part, parts_per_instance, height, width)


def translate_polygons(masks: PolygonMasks, offset: tuple[int, int],
                       out_hw: tuple[int, int]) -> PolygonMasks:
    """``masks`` moved by ``offset = (x, y)`` onto an ``out_hw`` canvas and clipped to it vertex by
    vertex (mmdet's two ``translate`` calls; the official ``np.clip(segment, 0, 2 * s)``), in one
    array operation."""
    xy, vertices_per_part, parts_per_instance = flatten_polygons(masks)
    height, width = out_hw
    xy = np.clip(xy + np.asarray(offset), 0, np.array([width, height]))  # (V, 2) x, y
    return unflatten_polygons(xy, vertices_per_part, parts_per_instance, height, width)


def resample_polygons(xy: np.ndarray, vertices_per_part: np.ndarray,
                      num_points: int = RESAMPLED_POINTS) -> np.ndarray:
    """Resample every closed part to ``num_points`` points evenly spaced in vertex index.

    The official ``resample_segments``: the part is closed (its first vertex appended) and
    ``np.interp`` is evaluated at ``np.linspace(0, n, num_points)`` for ``n`` vertices; the same
    arithmetic here, for all parts at once.

    Returns:
        ``(P, num_points, 2)`` points.
    """
    if len(vertices_per_part) == 0:
        return np.zeros((0, num_points, 2))
    starts = np.concatenate([[0], np.cumsum(vertices_per_part)[:-1]])  # (P,) first vertex of a part
    # each part closed by a copy of its first vertex; part p then starts at starts[p] + p
    closed = np.insert(xy, starts[1:].tolist() + [len(xy)], xy[starts], axis=0)  # (V + P, 2)
    n = vertices_per_part[:, None]  # (P, 1)
    # np.linspace(0, n, num_points): arange * (n / (num_points - 1)), the last point exactly n
    t = np.arange(num_points)[None, :] * (n / (num_points - 1))  # (P, num_points), >= 0
    j = np.minimum(t.astype(np.int64), n - 1)  # floor: the segment from closed vertex j to j + 1
    first = (starts + np.arange(len(starts)))[:, None] + j  # (P, num_points) rows of `closed`
    start_xy = np.take(closed, first, axis=0)  # (P, num_points, 2); np.take: fast row gathers
    points = (np.take(closed, first + 1, axis=0) - start_xy) * (t - j)[..., None] + start_xy
    points[:, -1] = xy[starts]  # np.interp's right end: the appended first vertex
    return points


def polygon_boxes(points: np.ndarray, parts_per_instance: np.ndarray,
                  width: float, height: float) -> np.ndarray:
    """The box of each instance's points that lie inside the image (official ``segment2box``).

    Points outside ``[0, width] x [0, height]`` are dropped (not clipped); an instance with no point
    inside gets an all-zero box, which ``box_candidates`` then drops.

    Args:
        points: ``(P, K, 2)`` points of the parts, instance after instance.
        parts_per_instance: ``(N,)`` part counts (their sum is ``P``).
        width: Image width; height: image height.

    Returns:
        ``(N, 4)`` float64 ``x1, y1, x2, y2`` boxes.
    """
    x, y = points[..., 0], points[..., 1]  # (P, K) each
    inside = (x >= 0) & (y >= 0) & (x <= width) & (y <= height)
    part_boxes = np.stack([np.where(inside, x, np.inf).min(1), np.where(inside, y, np.inf).min(1),
                           np.where(inside, x, -np.inf).max(1), np.where(inside, y, -np.inf).max(1)],
                          axis=1)  # (P, 4), +-inf where no point is inside
    boxes = np.zeros((len(parts_per_instance), 4))
    has_parts = parts_per_instance > 0
    if has_parts.any():
        starts = np.concatenate([[0], np.cumsum(parts_per_instance)[:-1]])[has_parts]
        boxes[has_parts, :2] = np.minimum.reduceat(part_boxes[:, :2], starts, axis=0)
        boxes[has_parts, 2:] = np.maximum.reduceat(part_boxes[:, 2:], starts, axis=0)
    boxes[~np.isfinite(boxes).all(axis=1)] = 0.0
    return boxes
