"""Parity of YOLOv7Loss / YOLOv7SimOTAAssigner with the official ComputeLossOTA / ComputeLossAuxOTA.

Golden values: ``tests/fixtures/yolov7_loss_*.pt``, made by running the official code (see
``tests/fixtures/make_yolov7_loss_golden.md``) on random continuous predictions without exact ties.
"""
from pathlib import Path

import pytest
import torch

from mmdet.registry import MODELS

FIXTURES = Path(__file__).resolve().parent.parent / 'fixtures'
CASES = ('p5_nc3', 'p5_nc1', 'p6_aux_nc2')


def load_case(name):
    return torch.load(FIXTURES / f'yolov7_loss_{name}.pt', weights_only=True)


def padded_gts(case):
    """Official targets (image, class, normalised xywh) -> padded (B, M, 4) xyxy pixels, labels, valid."""
    targets, imgsz = case['targets'], case['imgsz']
    batch = case['lead_preds'][0].shape[0]
    per_image = [targets[targets[:, 0] == b] for b in range(batch)]
    num_max = max(len(t) for t in per_image)
    gt_bboxes = torch.zeros(batch, num_max, 4)
    gt_labels = torch.zeros(batch, num_max, dtype=torch.long)
    gt_valid = torch.zeros(batch, num_max, dtype=torch.bool)
    for b, t in enumerate(per_image):
        xywh = t[:, 2:6] * imgsz
        gt_bboxes[b, :len(t)] = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        gt_labels[b, :len(t)] = t[:, 1].long()
        gt_valid[b, :len(t)] = True
    return gt_bboxes, gt_labels, gt_valid


def build_loss(case):
    aux = case['aux_preds'] is not None
    topk = 20 if aux else 10  # the official aux loss uses top-20 for both sets
    return MODELS.build(dict(
        type='YOLOv7Loss', num_classes=case['num_classes'], img_size=case['imgsz'],
        assigner=dict(type='YOLOv7SimOTAAssigner', topk=topk,
                      candidate_region=dict(type='YOLOv7CandidateRegion', neighbour_offset=0.5)),
        aux_assigner=dict(type='YOLOv7SimOTAAssigner', topk=topk,
                          candidate_region=dict(type='YOLOv7CandidateRegion', neighbour_offset=1.0))))


def gt_kwargs(case):
    gt_bboxes, gt_labels, gt_valid = padded_gts(case)
    imgsz = case['imgsz']
    return dict(anchors=case['anchors'], strides=case['strides'], gt_bboxes=gt_bboxes,
                gt_labels=gt_labels, gt_valid=gt_valid, batch_input_shape=(imgsz, imgsz))


def assigner_kwargs(case):
    kwargs = gt_kwargs(case)
    kwargs.pop('batch_input_shape')
    return kwargs


def positive_rows_in_write_order(result, level):
    """Our positives of a level as rows [image, anchor, gy, gx, gt] in slot order."""
    pos = result.pos_mask[:, level]
    image = torch.arange(pos.shape[0])[:, None].expand_as(pos)
    anchor = result.anchor_inds[None].expand_as(pos)
    rows = torch.stack((image, anchor, result.grid_y[:, level], result.grid_x[:, level],
                        result.gt_inds[:, level]), -1)[pos]
    return rows.tolist()


def positive_rows(result, level):
    """Our positives of a level as sorted rows [image, anchor, gy, gx, gt]."""
    return sorted(map(tuple, positive_rows_in_write_order(result, level)))


@pytest.mark.parametrize('name', CASES)
def test_fine_positive_set_matches_official(name):
    case = load_case(name)
    loss = build_loss(case)
    kwargs = assigner_kwargs(case)
    result = loss.assigner.assign(case['lead_preds'], **kwargs)
    for level, official in enumerate(case['fine_positives']):
        assert positive_rows(result, level) == sorted(map(tuple, official.tolist())), f'level {level}'


def test_coarse_positive_set_matches_official_and_is_lead_guided():
    case = load_case('p6_aux_nc2')
    loss = build_loss(case)
    kwargs = assigner_kwargs(case)
    result = loss.aux_assigner.assign(case['lead_preds'], **kwargs)
    num_coarse = 0
    for level, official in enumerate(case['coarse_positives']):
        assert positive_rows(result, level) == sorted(map(tuple, official.tolist())), f'level {level}'
        num_coarse += len(official)
    num_fine = sum(len(f) for f in case['fine_positives'])
    assert num_coarse > num_fine  # the coarse set really is larger


@pytest.mark.parametrize('name', CASES)
def test_loss_components_match_official(name):
    case = load_case(name)
    loss = build_loss(case)
    out = loss(case['lead_preds'], case['aux_preds'], **gt_kwargs(case))
    batch = case['lead_preds'][0].shape[0]
    # the official folds the aux terms (weight 0.25) into each component and reports them / batch
    for comp in ('box', 'obj', 'cls'):
        ours = (out[f'loss_{comp}'] + out.get(f'loss_aux_{comp}', 0.0)) / batch
        torch.testing.assert_close(ours, case[f'loss_{comp}'], rtol=1e-4, atol=1e-7, msg=comp)
    torch.testing.assert_close(sum(out.values()), case['total'], rtol=1e-4, atol=0)
    if case['num_classes'] == 1:
        assert out['loss_cls'] == 0


def test_loss_keys_and_gradients():
    case = load_case('p6_aux_nc2')
    lead = [p.clone().requires_grad_() for p in case['lead_preds']]
    aux = [p.clone().requires_grad_() for p in case['aux_preds']]
    out = build_loss(case)(lead, aux, **gt_kwargs(case))
    assert set(out) == {'loss_box', 'loss_obj', 'loss_cls', 'loss_aux_box', 'loss_aux_obj',
                        'loss_aux_cls'}
    sum(out.values()).backward()
    for p in lead + aux:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


# ------------------------------------------------ crowded batches: cells shared by several GTs
SHARED_CELL_CASES = ('p5_nc3', 'p5_aux_nc2')


def load_shared_cell_case(name):
    """A crowded batch (``yolov7_loss_shared_cells.pt``, see make_yolov7_loss_shared_cells.md):
    predictions stored as float16, exact in float32."""
    case = torch.load(FIXTURES / 'yolov7_loss_shared_cells.pt', weights_only=True)[name]
    for key in ('lead_preds', 'aux_preds'):
        if case[key] is not None:
            case[key] = [p.float() for p in case[key]]
    return case


def cells_shared_by_two_gts(rows):
    return len({tuple(r) for r in rows}) - len({tuple(r[:4]) for r in rows})


@pytest.mark.parametrize('name', SHARED_CELL_CASES)
def test_positives_in_the_official_write_order_on_shared_cells(name):
    """Which copy of a shared cell each GT takes (the tie rule) and the order of the positives,
    which decides the objectness target a shared cell keeps (the last one written)."""
    case = load_shared_cell_case(name)
    loss = build_loss(case)
    kwargs = assigner_kwargs(case)
    sets = [('fine_positives', loss.assigner)]
    if case['aux_preds'] is not None:
        sets.append(('coarse_positives', loss.aux_assigner))
    for key, assigner in sets:
        result = assigner.assign(case['lead_preds'], **kwargs)
        official = [rows.tolist() for rows in case[key]]
        assert sum(map(cells_shared_by_two_gts, official)) >= 2, 'the case must share cells'
        for level, rows in enumerate(official):
            assert positive_rows_in_write_order(result, level) == rows, f'{key} level {level}'


@pytest.mark.parametrize('name', SHARED_CELL_CASES)
def test_loss_matches_official_on_shared_cells(name):
    """Float32 noise only (~2e-7 relative); a shared cell keeping another positive's IoU as its
    objectness target moves ``loss_obj`` by 1e-5 .. 1e-4 relative on these batches."""
    case = load_shared_cell_case(name)
    out = build_loss(case)(case['lead_preds'], case['aux_preds'], **gt_kwargs(case))
    batch = case['lead_preds'][0].shape[0]
    for comp in ('box', 'obj', 'cls'):
        ours = (out[f'loss_{comp}'] + out.get(f'loss_aux_{comp}', 0.0)) / batch
        torch.testing.assert_close(ours, case[f'loss_{comp}'], rtol=2e-6, atol=0, msg=comp)


def objectness_targets(loss_head_preds, result, case):
    """Our dense objectness target of every level: the clamped CIoU of each cell's written slot."""
    from yolov7_mmdet.models.losses.slot_gather import last_positive_per_cell
    from yolov7_mmdet.models.losses.yolov7_loss import YOLOv7Loss
    gt_bboxes = padded_gts(case)[0]
    batch_inds = torch.arange(gt_bboxes.shape[0])[:, None]
    maps = []
    for level, pred in enumerate(loss_head_preds):
        grid_x, grid_y = result.grid_x[:, level], result.grid_y[:, level]
        cells = YOLOv7Loss._cell_index(pred.shape[:4], result.anchor_inds, grid_x, grid_y)
        raw_xywh = pred[batch_inds, result.anchor_inds[None], grid_y, grid_x][..., :4]
        ciou = YOLOv7Loss.slot_ciou(raw_xywh, grid_x, grid_y, result.gt_inds[:, level], gt_bboxes,
                                    case['anchors'][level][result.anchor_inds],
                                    case['strides'][level])
        writes = last_positive_per_cell(result.pos_mask[:, level], cells)
        target = torch.zeros(pred.shape[:4])
        target.view(-1)[cells[writes]] = ciou.clamp(min=0)[writes]
        maps.append(target)
    return maps


@pytest.mark.parametrize('name', SHARED_CELL_CASES)
def test_objectness_targets_match_official_on_shared_cells(name):
    """The official ``tobj[b, a, gj, gi] = iou`` (on CPU the last duplicate write wins) cell by cell."""
    case = load_shared_cell_case(name)
    loss = build_loss(case)
    kwargs = assigner_kwargs(case)
    heads = [('lead_obj_targets', loss.assigner, case['lead_preds'])]
    if case['aux_preds'] is not None:
        heads.append(('aux_obj_targets', loss.aux_assigner, case['aux_preds']))
    for key, assigner, head_preds in heads:
        result = assigner.assign(case['lead_preds'], **kwargs)  # both sets guided by the lead head
        for level, (ours, (cells, values)) in enumerate(zip(
                objectness_targets(head_preds, result, case), case[key])):
            official = torch.zeros_like(ours)
            official[tuple(cells.T)] = values
            torch.testing.assert_close(ours, official, rtol=0, atol=1e-6, msg=f'{key} level {level}')
