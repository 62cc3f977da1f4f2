"""YOLOv7's colour jitter: random multiplicative gains on hue, saturation and value.

Official ``augment_hsv``: draw ``g = 1 + U(-1, 1) * (h_gain, s_gain, v_gain)`` once per image, then in
OpenCV's 8-bit HSV (hue in ``[0, 180)``) map ``H -> (H * g_h) mod 180`` and ``S, V -> clip(X * g, 0,
255)``, through a 256-entry lookup table per channel.

Why not mmdet's :class:`~mmdet.datasets.transforms.YOLOXHSVRandomAug`: it *adds* integer offsets
(deltas in HSV units, not fractions) and switches each channel off with probability 1/2, so its
``hue_delta`` / ``saturation_delta`` / ``value_delta`` have no setting equal to YOLOv7's gains.
"""
from __future__ import annotations

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


def hsv_lookup_table(gains: np.ndarray) -> np.ndarray:
    """The ``(3, 256)`` uint8 tables mapping each H, S, V byte under gains ``(g_h, g_s, g_v)``."""
    # (3, 1) gains x (1, 256) bytes -> one row per channel
    values = np.asarray(gains, dtype=np.float64)[:, None] * np.arange(256, dtype=np.float64)[None]
    hue = np.mod(values[0], 180)
    sat_val = np.clip(values[1:], 0, 255)
    return np.concatenate([hue[None], sat_val], axis=0).astype(np.uint8)


@TRANSFORMS.register_module()
class YOLOv7HSVRandomAug(BaseTransform):
    """Random HSV gains of YOLOv7 on a BGR uint8 image.

    Required keys: ``img`` (BGR, uint8). Modified keys: ``img``.

    Args:
        hue_gain: ``hsv_h`` (official 0.015).
        saturation_gain: ``hsv_s`` (official 0.7).
        value_gain: ``hsv_v`` (official 0.4).
    """

    def __init__(self, *, hue_gain: float = 0.015, saturation_gain: float = 0.7,
                 value_gain: float = 0.4) -> None:
        self.gains = np.array([hue_gain, saturation_gain, value_gain], dtype=np.float64)

    def random_gains(self) -> np.ndarray:
        """Draw ``(g_h, g_s, g_v) = 1 + U(-1, 1) * gains``."""
        return 1.0 + np.random.uniform(-1.0, 1.0, 3) * self.gains

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('YOLOv7HSVRandomAug needs a BGR uint8 (H, W, 3) image, got '
                             f'{img.dtype} {img.shape}')
        tables = hsv_lookup_table(self.random_gains())
        # one single-channel LUT per plane: about twice as fast as one LUT with a 3-channel table
        planes = [cv2.LUT(plane, table) for plane, table in
                  zip(cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV)), tables)]
        results['img'] = cv2.cvtColor(cv2.merge(planes), cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        h, s, v = self.gains
        return f'{self.__class__.__name__}(hue_gain={h}, saturation_gain={s}, value_gain={v})'
