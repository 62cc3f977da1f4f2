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


def positive_rows(result, level):
    """Our positives of a level as sorted rows [image, anchor, gy, gx, gt]."""
    pos = result.pos_mask[:, level]
    image = torch.arange(pos.shape[0])[:, None].expand_as(pos)
    anchor = result.anchor_inds[None].expand_as(pos)
    rows = torch.stack((image, anchor, result.grid_y[:, level], result.grid_x[:, level],
                        result.gt_inds[:, level]), -1)[pos]
    return sorted(map(tuple, rows.tolist()))


@pytest.mark.parametrize('name', CASES)
def test_fine_positive_set_matches_official(name):
    case = load_case(name)
    loss = build_loss(case)
    kwargs = gt_kwargs(case)
    kwargs.pop('batch_input_shape')
    result = loss.assigner.assign(case['lead_preds'], **kwargs)
    for level, official in enumerate(case['fine_positives']):
        assert positive_rows(result, level) == sorted(map(tuple, official.tolist())), f'level {level}'


def test_coarse_positive_set_matches_official_and_is_lead_guided():
    case = load_case('p6_aux_nc2')
    loss = build_loss(case)
    kwargs = gt_kwargs(case)
    kwargs.pop('batch_input_shape')
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
