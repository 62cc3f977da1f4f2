"""YOLOv7Loss beyond the official parity: non-square inputs, empty batches, ignore regions, options."""
import importlib.util
from pathlib import Path

import pytest
import torch

from mmdet.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('bench_assigner_loss',
                                               REPO / 'benchmarks' / 'bench_assigner_loss.py')
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def build(num_classes=3, img_size=64, **kwargs):
    return MODELS.build(dict(type='YOLOv7Loss', num_classes=num_classes, img_size=img_size, **kwargs))


def problem(batch=2, num_gts=5, image_shape=(64, 96), num_classes=3, seed=0):
    prob = bench.random_problem(batch, num_gts, num_classes=num_classes, seed=seed,
                                image_shape=image_shape)
    return prob.pop('preds'), prob


@pytest.mark.parametrize('image_shape', [(64, 96), (96, 64)])
def test_matches_per_image_reference_on_non_square_inputs(image_shape):
    preds, prob = problem(image_shape=image_shape, seed=image_shape[0])
    unique = dict(type='YOLOv7SimOTAAssigner', topk=10, unique_cells=True)
    ours = build(assigner=unique, aux_assigner=None)(preds, **prob)
    ref, ref_pos = bench.reference_loss(preds, num_classes=3, img_size=64, unique_cells=True, **prob)
    assert sum(len(p) for p in ref_pos) > 0
    for key in ('loss_box', 'loss_obj', 'loss_cls'):
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-7, msg=key)


def test_batch_without_gt_trains_objectness_only():
    preds, prob = problem(num_gts=0)
    preds = [p.requires_grad_() for p in preds]
    aux = [p.detach().clone().requires_grad_() for p in preds]
    out = build()(preds, aux, **prob)
    assert out['loss_box'] == 0 and out['loss_cls'] == 0
    assert out['loss_aux_box'] == 0 and out['loss_aux_cls'] == 0
    assert out['loss_obj'] > 0 and out['loss_aux_obj'] > 0
    sum(out.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in preds + aux)
    assert all(p.grad[..., :4].abs().sum() == 0 for p in preds)  # no box gradient without boxes


def test_single_class_has_no_class_loss():
    preds, prob = problem(num_classes=1)
    out = build(num_classes=1, aux_assigner=None)(preds, **prob)
    assert out['loss_cls'] == 0 and out['loss_box'] > 0


def test_gains_follow_the_official_scaling():
    preds, prob = problem()
    base = build(aux_assigner=None)(preds, **prob)
    bigger = build(aux_assigner=None, img_size=128, num_classes=3)(preds, **prob)
    torch.testing.assert_close(bigger['loss_obj'], base['loss_obj'] * 4)  # (img_size / 640) ** 2
    torch.testing.assert_close(bigger['loss_box'], base['loss_box'])
    doubled = [torch.cat((p, p)) for p in preds]
    twice = {k: (torch.cat((v, v)) if k.startswith('gt_') else v) for k, v in prob.items()}
    out2 = build(aux_assigner=None)(doubled, **twice)
    for key in base:  # means per batch do not change, the batch-size factor doubles
        torch.testing.assert_close(out2[key], base[key] * 2, rtol=1e-5, atol=0)


def test_ignore_regions():
    preds, prob = problem()
    loss = build(aux_assigner=None)
    plain = loss(preds, **prob)
    everywhere = torch.tensor([[[-1e4, -1e4, 1e4, 1e4]]]).expand(2, 1, 4)  # holds every prediction
    # an ignore region switched off changes nothing
    off = loss(preds, ignore_bboxes=everywhere, ignore_valid=torch.zeros(2, 1, dtype=torch.bool),
               **prob)
    for key in plain:
        torch.testing.assert_close(off[key], plain[key])
    # a region covering the whole input removes every negative from the objectness loss, but not
    # the positives: box and class terms are untouched
    on = loss(preds, ignore_bboxes=everywhere, ignore_valid=torch.ones(2, 1, dtype=torch.bool), **prob)
    torch.testing.assert_close(on['loss_box'], plain['loss_box'])
    torch.testing.assert_close(on['loss_cls'], plain['loss_cls'])
    assert on['loss_obj'] != plain['loss_obj'] and on['loss_obj'] > 0
    # without GTs, nothing is left to train objectness on
    empty_prob = dict(prob, gt_valid=torch.zeros_like(prob['gt_valid']))
    none_left = loss(preds, ignore_bboxes=everywhere, ignore_valid=torch.ones(2, 1, dtype=torch.bool),
                     **empty_prob)
    assert none_left['loss_obj'] == 0
    with pytest.raises(ValueError):
        loss(preds, ignore_bboxes=everywhere, **prob)


def test_aux_guidance_options():
    preds, prob = problem(num_gts=8, image_shape=(96, 96), seed=3)
    aux = [torch.randn_like(p) for p in preds]
    lead_guided = build()(preds, aux, **prob)
    aux_guided = build(aux_guided_by='aux')(preds, aux, **prob)
    for key in ('loss_box', 'loss_obj', 'loss_cls'):  # the lead head's own set is unchanged
        torch.testing.assert_close(aux_guided[key], lead_guided[key])
    assert aux_guided['loss_aux_box'] != lead_guided['loss_aux_box']
    with pytest.raises(ValueError):
        build(aux_guided_by='both')
    with pytest.raises(ValueError):
        build(aux_assigner=None)(preds, aux, **prob)


def test_half_precision_predictions():
    preds, prob = problem()
    out32 = build(aux_assigner=None)(preds, **prob)
    out16 = build(aux_assigner=None)([p.half() for p in preds], **prob)
    for key in out32:
        assert out16[key].dtype == torch.float32
        torch.testing.assert_close(out16[key], out32[key], rtol=2e-2, atol=1e-4)


def test_no_host_synchronisation_in_assigner_and_loss():
    """No op that needs a value on the host (``.item()``, ``int()``, ``bool()``, boolean-mask
    indexing) runs inside the loss, the aux branch and the ignore regions included."""
    preds, prob = problem(num_gts=6)
    aux = [torch.randn_like(p) for p in preds]
    ignore = dict(ignore_bboxes=torch.tensor([[[0.0, 0.0, 30.0, 30.0]]]).expand(2, 1, 4),
                  ignore_valid=torch.ones(2, 1, dtype=torch.bool))
    loss = build(assigner=dict(type='YOLOv7SimOTAAssigner', unique_cells=True))
    with torch.profiler.profile() as prof:
        loss(preds, aux, **ignore, **prob)
    ops = {event.name for event in prof.events()}
    assert 'aten::topk' in ops  # the profile did record the assigner
    host_syncs = {'aten::_local_scalar_dense', 'aten::item', 'aten::nonzero', 'aten::masked_select',
                  'aten::_unique2', 'aten::unique_consecutive'}
    assert not ops & host_syncs


def test_shared_cell_objectness_target_is_the_last_listed_positive():
    from yolov7_mmdet.models.losses.slot_gather import last_positive_per_cell
    from yolov7_mmdet.models.losses.yolov7_loss import YOLOv7Loss
    # 4 slots per image on a (B=2, A=2, H=2, W=3) level; slots 0 and 2 share cell (anchor 1, y 1, x 2)
    shape = (2, 2, 2, 3)
    pos = torch.tensor([[True, True, True, False], [True, False, False, True]])
    anchor_inds = torch.tensor([1, 0, 1, 1])
    grid_x, grid_y = torch.tensor([[2, 0, 2, 2]] * 2), torch.tensor([[1, 0, 1, 1]] * 2)
    cells = YOLOv7Loss._cell_index(shape, anchor_inds, grid_x, grid_y)
    # image 0: slot 2 writes the shared cell, slot 3 is not a positive; image 1: the same cell as
    # image 0's is another cell, and slot 3 comes after slot 0 there
    assert last_positive_per_cell(pos, cells).tolist() == [[False, True, True, False],
                                                           [False, False, False, True]]
    pos_cell = YOLOv7Loss._positive_cells(shape, pos, cells)
    assert pos_cell.sum() == 3 and pos_cell[0, 1, 1, 2] and pos_cell[0, 0, 0, 0] and pos_cell[1, 1, 1, 2]


def test_yolo_ciou_values():
    from yolov7_mmdet.models.losses import yolo_ciou
    box = torch.tensor([[1.0, 1.0, 2.0, 3.0]])
    assert yolo_ciou(box, box).item() == pytest.approx(1.0, abs=1e-6)
    shifted = torch.tensor([[4.0, 1.0, 2.0, 3.0]])  # disjoint: IoU 0, minus the distance term
    # centres 3 apart, enclosing box 5 x 3: CIoU = -3^2 / (5^2 + 3^2)
    assert yolo_ciou(box, shifted).item() == pytest.approx(-9.0 / 34.0, abs=1e-5)
    flat = torch.tensor([[1.0, 1.0, 2.0, 0.0]])  # zero-height target stays finite
    assert torch.isfinite(yolo_ciou(box, flat)).all()


def test_label_smoothing_class_term_is_the_bce_with_smoothed_targets():
    import torch.nn.functional as F
    preds, prob = problem(num_gts=6, seed=5)
    eps = 0.2
    loss = build(aux_assigner=None, label_smoothing=eps)
    out = loss(preds, **prob)
    from yolov7_mmdet.models.task_modules.assigners import sanitize_gt
    gt_bboxes, gt_valid = sanitize_gt(prob['gt_bboxes'], prob['gt_valid'], prob['batch_input_shape'])
    targets = loss.assigner.assign(preds, anchors=prob['anchors'], strides=prob['strides'],
                                   gt_bboxes=gt_bboxes, gt_labels=prob['gt_labels'], gt_valid=gt_valid)
    expected = 0.0
    for level, pred in enumerate(preds):
        pos = targets.pos_mask[:, level]
        image = torch.arange(pos.shape[0])[:, None].expand_as(pos)[pos]
        anchor = targets.anchor_inds[None].expand_as(pos)[pos]
        logits = pred[image, anchor, targets.grid_y[:, level][pos], targets.grid_x[:, level][pos], 5:]
        labels = prob['gt_labels'][image, targets.gt_inds[:, level][pos]]
        smoothed = F.one_hot(labels, 3).float() * (1 - eps) + eps / 2  # 1 - eps/2 and eps/2
        if len(logits):  # a level without positives adds nothing
            expected += F.binary_cross_entropy_with_logits(logits, smoothed)
    assert expected > 0
    gain = 0.3 * 3 / 80 * 3 / 3 * 2  # cls gain * C / 80 * 3 / levels * batch
    torch.testing.assert_close(out['loss_cls'], expected * gain, rtol=1e-5, atol=1e-7)
