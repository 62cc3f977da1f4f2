"""YOLOv7 candidate regions, batched SimOTA and the GT helpers: rules, deviations and invariants."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes
from yolov7_mmdet.models.task_modules.assigners import (YOLOv7CandidateRegion, decode_boxes,
                                                        sanitize_gt, stack_gt_instances)

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('bench_assigner_loss',
                                               REPO / 'benchmarks' / 'bench_assigner_loss.py')
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

ONE_LEVEL_ANCHORS = torch.tensor([[[12.0, 16.0], [19.0, 36.0], [100.0, 100.0]]])  # (L=1, A=3, 2)


def candidate_cells(neighbour_offset, centre, size=(20.0, 20.0), grid=(8, 8), anchors=ONE_LEVEL_ANCHORS):
    """Set of (anchor, x, y) candidates of one GT on one stride-8 level."""
    (cx, cy), (w, h) = centre, size
    box = torch.tensor([[[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]]])
    slots = YOLOv7CandidateRegion(neighbour_offset=neighbour_offset)(
        box, torch.ones(1, 1, dtype=torch.bool), anchors=anchors, strides=torch.tensor([8.0]),
        level_shapes=[grid])
    keep = slots.valid[0, 0]  # (5, A, M)
    anchor = torch.arange(anchors.shape[1])[None, :, None].expand_as(keep)
    return {(int(a), int(x), int(y)) for a, x, y in
            zip(anchor[keep], slots.grid_x[0, 0][keep], slots.grid_y[0, 0][keep])}


# ---------------------------------------------------------------- candidate regions (worked example)
def test_fine_region_is_centre_cell_and_two_nearest_neighbours():
    # centre (3.3, 4.7) cells: left of its cell's middle, below it -> left and lower neighbours
    cells = candidate_cells(0.5, centre=(3.3 * 8, 4.7 * 8))
    assert {(x, y) for _, x, y in cells} == {(3, 4), (2, 4), (3, 5)}
    assert {a for a, _, _ in cells} == {0, 1}  # the 100x100 anchor is 5x too big for a 20x20 box


def test_coarse_region_is_centre_cell_and_four_neighbours():
    cells = candidate_cells(1.0, centre=(3.3 * 8, 4.7 * 8))
    assert {(x, y) for _, x, y in cells} == {(3, 4), (2, 4), (4, 4), (3, 3), (3, 5)}


def test_no_neighbour_beyond_the_first_cell_of_the_border():
    cells = candidate_cells(1.0, centre=(0.4 * 8, 7.6 * 8))  # first column, last row
    assert {(x, y) for _, x, y in cells} == {(0, 7), (1, 7), (0, 6)}


def test_anchor_ratio_filter_is_strict_at_anchor_t():
    anchors = torch.tensor([[[10.0, 10.0]]])
    assert candidate_cells(0.5, (20.0, 20.0), size=(39.0, 10.0), anchors=anchors)
    assert not candidate_cells(0.5, (20.0, 20.0), size=(40.0, 10.0), anchors=anchors)
    assert not candidate_cells(0.5, (20.0, 20.0), size=(10.0, 2.5), anchors=anchors)


def test_decoder_constraint_keeps_coarse_only_cells_off_the_centre():
    """The lead decode reaches centre offsets in (-0.5, 1.5) of a cell: every fine cell can put its
    box centre on the GT centre, no coarse-only cell can, so their IoU (soft objectness) stays < 1."""
    centre = torch.tensor([3.3, 4.7])
    fine = {(x, y) for _, x, y in candidate_cells(0.5, centre=tuple(centre * 8))}
    coarse = {(x, y) for _, x, y in candidate_cells(1.0, centre=tuple(centre * 8))}
    for x, y in coarse:
        needed = centre - torch.tensor([x, y])  # offset the decoder must produce
        reachable = bool(((needed > -0.5) & (needed < 1.5)).all())
        assert reachable == ((x, y) in fine)
    # decode bounds: sigmoid in (0, 1) -> offsets in (-0.5, 1.5)
    extreme = decode_boxes(torch.tensor([[-30.0, -30.0, 0.0, 0.0], [30.0, 30.0, 0.0, 0.0]]),
                           torch.zeros(2), torch.zeros(2), torch.ones(2), 1.0)
    centres = (extreme[:, :2] + extreme[:, 2:]) / 2
    assert torch.allclose(centres[:, 0], torch.tensor([-0.5, 1.5]))


# ---------------------------------------------------------------- GT helpers
def test_stack_gt_instances_pads_boxes_labels_and_mask():
    insts = [InstanceData(bboxes=HorizontalBoxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]])),
                          labels=torch.tensor([5])),
             InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)),
             InstanceData(bboxes=torch.tensor([[0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 2.0, 2.0]]),
                          labels=torch.tensor([1, 2]))]
    boxes, labels, valid = stack_gt_instances(insts)
    assert boxes.shape == (3, 2, 4) and labels.shape == (3, 2) and valid.dtype == torch.bool
    assert valid.tolist() == [[True, False], [False, False], [True, True]]
    assert labels.tolist() == [[5, 0], [0, 0], [1, 2]]
    assert torch.equal(boxes[2], insts[2].bboxes)
    # ignore regions come without labels; a batch may have no instance at all
    boxes, labels, valid = stack_gt_instances([InstanceData(bboxes=torch.zeros(0, 4))] * 2)
    assert boxes.shape == (2, 0, 4) and labels.shape == valid.shape == (2, 0)


def test_sanitize_gt_clips_and_drops_degenerate_boxes():
    boxes = torch.tensor([[[-10.0, 5.0, 20.0, 30.0],    # partly outside: clipped
                           [10.0, 10.0, 10.0, 30.0],    # zero width: dropped
                           [30.0, 20.0, 20.0, 40.0],    # inverted: dropped
                           [70.0, 10.0, 90.0, 20.0],    # entirely right of a 64-wide input: dropped
                           [5.0, 5.0, 6.0, 6.0]]])      # tiny but valid
    clipped, valid = sanitize_gt(boxes, torch.ones(1, 5, dtype=torch.bool), (48, 64))
    assert valid.tolist() == [[True, False, False, False, True]]
    assert clipped[0, 0].tolist() == [0.0, 5.0, 20.0, 30.0]


# ---------------------------------------------------------------- batched SimOTA
def assigner(neighbour_offset=0.5, **kwargs):
    return TASK_UTILS.build(dict(type='YOLOv7SimOTAAssigner', candidate_region=dict(
        type='YOLOv7CandidateRegion', neighbour_offset=neighbour_offset), **kwargs))


def positives(result):
    """Set of (image, level, anchor, y, x, gt) positives (multiplicity kept as a sorted list)."""
    rows = []
    for level in range(result.pos_mask.shape[1]):
        pos = result.pos_mask[:, level]
        image = torch.arange(pos.shape[0])[:, None].expand_as(pos)
        anchor = result.anchor_inds[None].expand_as(pos)
        rows += [(int(b), level, int(a), int(y), int(x), int(g)) for b, a, y, x, g in zip(
            image[pos], anchor[pos], result.grid_y[:, level][pos], result.grid_x[:, level][pos],
            result.gt_inds[:, level][pos])]
    return sorted(rows)


def small_problem(batch=2, num_gts=6, image_shape=(64, 96), num_classes=3, seed=0):
    prob = bench.random_problem(batch, num_gts, num_classes=num_classes, seed=seed,
                                image_shape=image_shape)
    return prob.pop('preds'), prob


def assign(asg, preds, prob):
    kwargs = {k: v for k, v in prob.items() if k != 'batch_input_shape'}
    boxes, valid = sanitize_gt(prob['gt_bboxes'], prob['gt_valid'], prob['batch_input_shape'])
    return asg.assign(preds, **dict(kwargs, gt_bboxes=boxes, gt_valid=valid))


def reference_rows(ref_levels):
    return sorted((int(r[0]), level, int(r[1]), int(r[2]), int(r[3]), int(r[4]))
                  for level, rows in enumerate(ref_levels) for r in rows)


@pytest.mark.parametrize('image_shape', [(64, 96), (96, 64)])
@pytest.mark.parametrize('neighbour_offset', [0.5, 1.0])
def test_batched_equals_per_image_reference_on_non_square_inputs(image_shape, neighbour_offset):
    preds, prob = small_problem(image_shape=image_shape, num_gts=7, seed=sum(image_shape))
    asg = assigner(neighbour_offset, topk=10, unique_cells=True)  # no duplicate-cell ties
    ours = positives(assign(asg, preds, prob))
    boxes, valid = sanitize_gt(prob['gt_bboxes'], prob['gt_valid'], image_shape)
    ref = bench.reference_assign(preds, prob['anchors'], prob['strides'], boxes, prob['gt_labels'],
                                 valid, neighbour_offset=neighbour_offset, topk=10, unique_cells=True)
    assert ours and ours == reference_rows(ref)


def test_boxes_are_scaled_per_axis_on_non_square_inputs():
    """A GT in the right part of a wide input gets cells there (the official scales x by the height)."""
    preds, prob = small_problem(batch=1, num_gts=1, image_shape=(32, 128))
    prob['gt_bboxes'] = torch.tensor([[[96.0, 4.0, 124.0, 28.0]]])  # centre x = 110 px
    xs = {x for _, level, _, _, x, _ in positives(assign(assigner(), preds, prob)) if level == 0}
    assert xs and all(12 <= x <= 14 for x in xs)  # 110 / 8 = 13.75


def test_transposed_problem_gives_transposed_assignment():
    preds, prob = small_problem(image_shape=(64, 96), num_gts=5, seed=11)
    asg = assigner(topk=10, unique_cells=True)
    ours = positives(assign(asg, preds, prob))
    # swap x and y everywhere: maps (B, A, H, W, [x, y, w, h, ...]) -> (B, A, W, H, [y, x, h, w, ...])
    channel_swap = torch.tensor([1, 0, 3, 2] + list(range(4, preds[0].shape[-1])))
    t_preds = [p.transpose(2, 3)[..., channel_swap] for p in preds]
    t_prob = dict(prob, anchors=prob['anchors'].flip(-1), gt_bboxes=prob['gt_bboxes'][..., [1, 0, 3, 2]],
                  batch_input_shape=(96, 64))
    transposed = positives(assign(asg, t_preds, t_prob))
    assert ours == sorted((b, lv, a, x, y, g) for b, lv, a, y, x, g in transposed)


def test_images_are_independent_and_padding_changes_nothing():
    preds, prob = small_problem(batch=3, num_gts=5, seed=4)
    prob['gt_valid'][1] = False  # an image without GT in the middle
    full = positives(assign(assigner(), preds, prob))
    assert not [r for r in full if r[0] == 1]
    alone = positives(assign(assigner(), [p[2:] for p in preds], dict(
        prob, gt_bboxes=prob['gt_bboxes'][2:], gt_labels=prob['gt_labels'][2:],
        gt_valid=prob['gt_valid'][2:])))
    assert alone == [(0,) + r[1:] for r in full if r[0] == 2]
    # extra padded (invalid) GTs after the real ones leave the assignment unchanged
    padded = dict(prob, gt_bboxes=torch.cat((prob['gt_bboxes'], torch.zeros(3, 4, 4)), 1),
                  gt_labels=torch.cat((prob['gt_labels'], torch.zeros(3, 4, dtype=torch.long)), 1),
                  gt_valid=torch.cat((prob['gt_valid'], torch.zeros(3, 4, dtype=torch.bool)), 1))
    assert positives(assign(assigner(), preds, padded)) == full


def test_batch_without_any_gt_has_no_positive():
    preds, prob = small_problem(num_gts=0)
    result = assign(assigner(), preds, prob)
    assert result.pos_mask.numel() == 0 and positives(result) == []


def test_degenerate_and_outside_boxes_are_ignored_and_partial_boxes_clipped():
    preds, prob = small_problem(batch=1, num_gts=4, image_shape=(64, 64), seed=5)
    base = positives(assign(assigner(), preds, prob))
    boxes = prob['gt_bboxes'].clone()
    extra = torch.tensor([[[20.0, 20.0, 20.0, 50.0],     # zero width
                           [10.0, 30.0, 40.0, 30.0],     # zero height
                           [70.0, 70.0, 90.0, 90.0]]])   # outside the 64x64 input
    prob_extra = dict(prob, gt_bboxes=torch.cat((boxes, extra), 1),
                      gt_labels=torch.cat((prob['gt_labels'], torch.zeros(1, 3, dtype=torch.long)), 1),
                      gt_valid=torch.ones(1, 7, dtype=torch.bool))
    assert positives(assign(assigner(), preds, prob_extra)) == base
    # a box reaching outside is the same as its clipped version
    overhang = boxes.clone()
    overhang[0, 0, 0] = -25.0
    clipped = overhang.clone()
    clipped[0, 0, 0] = 0.0
    assert (positives(assign(assigner(), preds, dict(prob, gt_bboxes=overhang))) ==
            positives(assign(assigner(), preds, dict(prob, gt_bboxes=clipped))))


def test_chunked_matching_equals_single_chunk():
    preds, prob = small_problem(batch=2, num_gts=30, image_shape=(96, 96), seed=6)
    one_chunk = positives(assign(assigner(topk=20), preds, prob))
    many_chunks = positives(assign(assigner(topk=20, max_pairs_per_chunk=2000), preds, prob))
    assert one_chunk and one_chunk == many_chunks


def test_unique_cells_gives_one_gt_per_prediction():
    preds, prob = small_problem(batch=2, num_gts=30, image_shape=(64, 64), seed=7)
    rows = positives(assign(assigner(1.0, topk=20, unique_cells=True), preds, prob))
    cells = [r[:5] for r in rows]
    assert rows and len(cells) == len(set(cells))
    # official mode lists a cell once per proposing GT, so it has repeats on this crowded input
    official = [r[:5] for r in positives(assign(assigner(1.0, topk=20), preds, prob))]
    assert len(official) > len(set(official))


def test_a_gt_takes_the_first_copies_of_a_tied_cell():
    """CUDA topk's rule for exact ties: the copies of a cell a GT takes are its lowest columns."""
    from yolov7_mmdet.models.task_modules.assigners.simota_assigner import (_cell_copies,
                                                                            _lowest_copies)
    # 7 columns of one image: prediction 7 at columns 0, 2, 4 (valid) and 6 (invalid); 3 at 1 and 5
    prediction_ids = torch.tensor([[7, 3, 7, 9, 7, 3, 7]])
    valid = torch.tensor([[True, True, True, True, True, True, False]])
    copies = _cell_copies(valid, prediction_ids, num_predictions=10)
    # GT rows of a topk's choice among tied copies: (B=1, m=3, k=3), the third entry not taken
    top_cols = torch.tensor([[[4, 5, 3], [2, 4, 1], [6, 3, 0]]])
    takes = torch.tensor([[[True, True, False], [True, True, True], [True, True, False]]])
    assert _lowest_copies(top_cols, takes, copies).tolist() == [[[0, 1, 3], [0, 2, 1], [6, 3, 0]]]


def test_crowded_image_runs_in_bounded_memory():
    """1000 GTs in one 640x640 image, YOLOv7-L levels, 80 classes: peak memory stays ~1 GB."""
    script = (
        'import resource, sys, torch; sys.path.insert(0, "benchmarks"); '
        'from bench_assigner_loss import random_problem, MODELS; '
        'loss = MODELS.build(dict(type="YOLOv7Loss", num_classes=80, aux_assigner=None)); '
        'prob = random_problem(1, 1000, seed=3); preds = prob.pop("preds"); '
        'before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; '
        'out = loss(preds, **prob); '
        'assert all(torch.isfinite(v) for v in out.values()); '
        'print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)')
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    extra_mb = float(proc.stdout.strip().splitlines()[-1])
    assert extra_mb < 2048, f'assigner + loss took {extra_mb:.0f} MB more'


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError):
        YOLOv7CandidateRegion(neighbour_offset=1.5)
    with pytest.raises(ValueError):
        YOLOv7CandidateRegion(anchor_t=1.0)
    with pytest.raises(ValueError):
        assigner(topk=0)
