"""Candidate cells of YOLOv7's label assignment: the fine (3-cell) and coarse (5-cell) regions.

YOLOv7 (Wang, Bochkovskiy, Liao, 2022, arXiv:2207.02696, Sec. 3.2 and the official ``find_3_positive`` /
``find_5_positive``) keeps, for every ground truth (GT), level and anchor, a few grid cells around the
GT centre as candidates for SimOTA:

* the anchor must fit the GT shape: ``max(w / a_w, a_w / w, h / a_h, a_h / h) < anchor_t`` (4.0);
* the cell holding the GT centre is always a candidate;
* a neighbour cell (left, up, right, down) is a candidate when the centre lies closer than
  ``neighbour_offset`` to that side of its cell *and* more than one cell away from the image border.
  With ``neighbour_offset=0.5`` (fine region) this keeps the centre cell and the 2 nearest neighbours
  (3 cells); with ``neighbour_offset=1.0`` (coarse region) every inner neighbour qualifies (5 cells).

The result is laid out in *slots*: every (level, neighbour, anchor, GT) combination has a fixed place,
valid or not, so the shapes depend only on the padded GT count and never on the data. Slot order within
a level is (neighbour, anchor, GT), the order in which the official code lists its candidates, which
fixes how duplicate cells are resolved downstream (see ``simota_assigner.py``).
"""
from typing import NamedTuple, Sequence, Tuple

import torch
from torch import Tensor

from mmdet.registry import TASK_UTILS

# Neighbour directions in official order: own cell, left (x-1), up (y-1), right (x+1), down (y+1).
# A step of d cells is taken as (centre - d * offset).floor(), hence the signs.
_NEIGHBOUR_STEPS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))
NUM_NEIGHBOURS = len(_NEIGHBOUR_STEPS)


class CandidateSlots(NamedTuple):
    """Candidate cells, one slot per (level, neighbour, anchor, GT); every tensor is (B, L, 5, A, M).

    Attributes:
        valid: the slot is a candidate (GT valid, anchor fits, neighbour qualifies).
        grid_x: column of the candidate cell on its level (clamped into the grid).
        grid_y: row of the candidate cell on its level (clamped into the grid).
    """
    valid: Tensor
    grid_x: Tensor
    grid_y: Tensor


@TASK_UTILS.register_module()
class YOLOv7CandidateRegion:
    """Select YOLOv7's candidate cells (anchor-ratio filter + centre cell + near neighbours).

    Args:
        neighbour_offset: 0.5 for the fine region (centre cell + 2 nearest neighbours, the lead head's
            candidates), 1.0 for the coarse region (centre cell + 4 neighbours, the aux head's).
        anchor_t: the largest allowed ratio between a GT side and the anchor side (hyp ``anchor_t``).
    """

    def __init__(self, *, neighbour_offset: float = 0.5, anchor_t: float = 4.0) -> None:
        if not 0.0 < neighbour_offset <= 1.0:
            raise ValueError(f'neighbour_offset must be in (0, 1], got {neighbour_offset}')
        if anchor_t <= 1.0:
            raise ValueError(f'anchor_t must be > 1, got {anchor_t}')
        self.neighbour_offset = neighbour_offset
        self.anchor_t = anchor_t

    def __call__(self, gt_bboxes: Tensor, gt_valid: Tensor, *, anchors: Tensor, strides: Tensor,
                 level_shapes: Sequence[Tuple[int, int]]) -> CandidateSlots:
        """Compute the candidate slots.

        Args:
            gt_bboxes: (B, M, 4) xyxy pixels, already clipped to the input.
            gt_valid: (B, M) bool; padded or unusable GTs are False.
            anchors: (L, A, 2) anchor (w, h) in pixels.
            strides: (L,) stride of each level in pixels.
            level_shapes: ``L`` pairs (H_l, W_l), the grid sizes.

        Returns:
            CandidateSlots with tensors of shape (B, L, 5, A, M).
        """
        gt_bboxes = gt_bboxes.float()
        centre = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2  # (B, M, 2) pixels
        size = gt_bboxes[..., 2:] - gt_bboxes[..., :2]  # (B, M, 2) pixels
        anchor_fits = self._anchor_fits(size, anchors.float())  # (B, L, A, M)
        num_anchors = anchors.shape[1]

        neighbour_ok, grid_x, grid_y = [], [], []
        for level, (height, width) in enumerate(level_shapes):  # Python-int grid sizes: no H2D copy
            centre_grid = centre / strides[level]  # (B, M, 2) in grid units
            neighbour_ok.append(self._neighbour_ok(centre_grid, width, height))
            # (B, M) cell of each of the 5 neighbour slots -> (B, 5, M)
            grid_x.append(torch.stack([(centre_grid[..., 0] - dx * self.neighbour_offset).floor()
                                       for dx, _ in _NEIGHBOUR_STEPS], 1).clamp(0, width - 1))
            grid_y.append(torch.stack([(centre_grid[..., 1] - dy * self.neighbour_offset).floor()
                                       for _, dy in _NEIGHBOUR_STEPS], 1).clamp(0, height - 1))
        neighbour_ok = torch.stack(neighbour_ok, 1)  # (B, L, 5, M)
        # (B, L, 5, 1, M) & (B, L, 1, A, M) & (B, 1, 1, 1, M) -> (B, L, 5, A, M)
        valid = neighbour_ok[:, :, :, None] & anchor_fits[:, :, None] & gt_valid[:, None, None, None]
        # (B, L, 5, M) -> (B, L, 5, A, M): the cell does not depend on the anchor.
        grid_x = torch.stack(grid_x, 1).long()[:, :, :, None].expand(-1, -1, -1, num_anchors, -1)
        grid_y = torch.stack(grid_y, 1).long()[:, :, :, None].expand(-1, -1, -1, num_anchors, -1)
        return CandidateSlots(valid=valid, grid_x=grid_x, grid_y=grid_y)

    def _anchor_fits(self, size: Tensor, anchors: Tensor) -> Tensor:
        """(B, M, 2) GT sizes, (L, A, 2) anchors -> (B, L, A, M): the side ratios stay below anchor_t."""
        # (B, 1, 1, M, 2) / (1, L, A, 1, 2) -> (B, L, A, M, 2)
        ratio = size[:, None, None] / anchors[None, :, :, None]
        worst = torch.maximum(ratio, 1.0 / ratio).amax(dim=-1)
        return worst < self.anchor_t

    def _neighbour_ok(self, centre_grid: Tensor, width: int, height: int) -> Tensor:
        """(B, M, 2) centres in grid units of a (height, width) level -> (B, 5, M): which
        neighbour slots qualify."""
        g = self.neighbour_offset
        x, y = centre_grid.unbind(-1)
        from_right, from_bottom = width - x, height - y  # distances to the far borders

        def near(dist: Tensor) -> Tensor:  # closer than g to that side, and not in the border cell
            return (dist % 1.0 < g) & (dist > 1.0)

        # in _NEIGHBOUR_STEPS order: own, left, up, right, down
        return torch.stack((torch.ones_like(x, dtype=torch.bool), near(x), near(y), near(from_right),
                            near(from_bottom)), dim=1)
