"""Test helpers: load a tool as a module, compare detections as sets."""
import importlib.util
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_tool(relative_path: str):
    """Import ``tools/<relative_path>`` as a module (the tools are scripts, not a package)."""
    path = REPO_ROOT / 'tools' / relative_path
    spec = importlib.util.spec_from_file_location(f'tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_detections(actual, expected, *, box_atol: float = 1e-3, score_atol: float = 1e-5) -> None:
    """Two detection sets ``(bboxes, scores, labels)`` are equal up to float rounding, in any order.

    Each expected detection is matched to the actual one of its label nearest in box and score (boxes
    clipped to the image can coincide, scores can tie); the matching must be one-to-one, with boxes
    within ``box_atol`` pixels and scores within ``score_atol``.
    """
    actual_boxes, actual_scores, actual_labels = (np.asarray(v, np.float64) for v in actual)
    expected_boxes, expected_scores, expected_labels = (np.asarray(v, np.float64) for v in expected)
    assert len(actual_labels) == len(expected_labels), (len(actual_labels), len(expected_labels))
    for label in np.unique(expected_labels):
        got, want = actual_labels == label, expected_labels == label
        assert got.sum() == want.sum(), f'label {label}: {got.sum()} vs {want.sum()} detections'
        # (K, 1, 4) - (1, K, 4) -> (K, K): largest coordinate difference between every pair
        box_distance = np.abs(expected_boxes[want][:, None] - actual_boxes[got][None]).max(axis=2)
        score_distance = np.abs(expected_scores[want][:, None] - actual_scores[got][None])  # (K, K)
        cost = box_distance / box_atol + score_distance / score_atol
        nearest = cost.argmin(axis=1)
        assert len(set(nearest.tolist())) == len(nearest), f'label {label}: not one-to-one'
        matched = np.arange(len(nearest))
        assert box_distance[matched, nearest].max() <= box_atol, box_distance[matched, nearest].max()
        assert score_distance[matched, nearest].max() <= score_atol, score_distance[matched, nearest].max()
