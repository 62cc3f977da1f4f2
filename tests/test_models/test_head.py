"""YOLOv7Head: layout, bias priors, decode and NMS against the official code, rescaling, loss wiring."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from yolov7_mmdet.models.dense_heads import YOLOv7Head
from yolov7_mmdet.models.layers import RepConvN

FIXTURES = Path(__file__).resolve().parent.parent / 'fixtures'
TINY_ANCHORS = [[(10, 13), (16, 30), (33, 23)], [(30, 61), (62, 45), (59, 119)],
                [(116, 90), (156, 198), (373, 326)]]
P6_ANCHORS = [[(19, 27), (44, 40), (38, 94)], [(96, 68), (86, 152), (180, 137)],
              [(140, 301), (303, 264), (238, 542)], [(436, 615), (739, 380), (925, 792)]]


def small_head(num_classes=3, **kwargs):
    kwargs.setdefault('anchors', TINY_ANCHORS)
    kwargs.setdefault('in_channels', (4, 8, 16))
    kwargs.setdefault('feat_channels', (8, 16, 32))
    return YOLOv7Head(num_classes=num_classes, **kwargs)


def small_aux_head(num_classes=2):
    return YOLOv7Head(num_classes=num_classes, in_channels=(4, 8, 8, 16), feat_channels=(8, 16, 16, 32),
                      aux_in_channels=(4, 8, 8, 16), aux_feat_channels=(10, 20, 20, 40),
                      anchors=P6_ANCHORS, strides=(8, 16, 32, 64))


def feats(channels, size, batch=2):
    return [torch.randn(batch, c, size // 2 ** (3 + i), size // 2 ** (3 + i)) for i, c in enumerate(channels)]


def test_forward_layout_and_lead_branch_order():
    torch.manual_seed(0)
    head = small_head().eval()
    x = feats((4, 8, 16), 64)
    lead, aux = head(x)
    assert aux is None
    assert [tuple(m.shape) for m in lead] == [(2, 24, 8, 8), (2, 24, 4, 4), (2, 24, 2, 2)]
    # IDetect: ImplicitM(conv1x1(ImplicitA(conv3x3(x))))
    expected = head.lead_implicit_m[1](head.lead_preds[1](head.lead_implicit_a[1](head.lead_convs[1](x[1]))))
    torch.testing.assert_close(lead[1], expected)


def test_repconv_option_and_aux_branch():
    assert all(isinstance(m, RepConvN) for m in small_head(use_repconv=True).lead_convs)
    head = small_aux_head()
    lead, aux = head(feats((4, 8, 8, 16), 128) + feats((4, 8, 8, 16), 128))
    assert [m.shape for m in aux] == [m.shape for m in lead]
    assert [m.conv.out_channels for m in head.aux_convs] == [10, 20, 20, 40]


def test_mismatched_aux_taps_raise():
    with pytest.raises(ValueError, match='aux_taps'):
        small_aux_head()(feats((4, 8, 8, 16), 128))
    with pytest.raises(ValueError, match='aux_taps'):
        small_head()(feats((4, 8, 16), 64) * 2)


def test_bad_anchor_or_width_configuration_raises():
    with pytest.raises(ValueError, match='anchors'):
        small_head(anchors=TINY_ANCHORS[:2])
    with pytest.raises(ValueError, match='per level'):
        small_head(feat_channels=(8, 16))
    with pytest.raises(ValueError, match='go together'):
        small_head(aux_in_channels=(4, 8, 16))


@pytest.mark.parametrize('with_aux', [False, True])
def test_bias_priors_of_the_paper(with_aux):
    torch.manual_seed(0)
    head = small_aux_head(num_classes=5) if with_aux else small_head(num_classes=5)
    head.init_weights()
    convs = list(head.lead_preds) + (list(head.aux_preds) if with_aux else [])
    strides = head.strides.tolist() * (2 if with_aux else 1)
    for conv, stride in zip(convs, strides):
        bound = 1 / math.sqrt(conv.in_channels)  # PyTorch's default bias range
        bias = conv.bias.detach().view(3, 10)  # (A*(5+C),) -> (A, 5+C)
        obj_prior = math.log(8 / (640 / stride) ** 2)
        cls_prior = math.log(0.6 / (5 - 0.99))
        assert (bias[:, :4].abs() <= bound).all()
        assert ((bias[:, 4] - obj_prior).abs() <= bound).all()
        assert ((bias[:, 5:] - cls_prior).abs() <= bound).all()
    head.init_weights()  # re-initialising does not stack the priors
    assert ((head.lead_preds[0].bias.view(3, 10)[:, 4] - math.log(8 / 80 ** 2)).abs() <= 1).all()


@pytest.mark.parametrize('num_classes', [3, 1])
def test_decode_and_nms_equal_the_official_code(num_classes):
    golden = torch.load(FIXTURES / 'yolov7_head_nms_golden.pt')
    case = golden[f'nc{num_classes}']
    head = small_head(num_classes=num_classes)
    boxes, scores = head.decode(case['maps'])
    decoded = case['decoded']  # official: (B, N, 5+C), xywh pixels, sigmoids
    xy, wh = decoded[..., :2], decoded[..., 2:4]
    torch.testing.assert_close(boxes, torch.cat([xy - wh / 2, xy + wh / 2], -1), rtol=0, atol=1e-4)
    obj = decoded[..., 4:5]
    torch.testing.assert_close(scores, obj if num_classes == 1 else obj * decoded[..., 5:])

    metas = [dict(img_shape=(128, 128), ori_shape=(128, 128))] * 2
    results = head.predict_by_feat(case['maps'], batch_img_metas=metas, rescale=False)
    for result, official in zip(results, case['dets']):
        assert_same_detections(result, official)


def assert_same_detections(result, official):
    """The official (K, 6) detections [xyxy, score, class], one for one; the order may differ only
    between scores within float32 noise (two kept scores of a golden lie 3e-7 apart, and sigmoid
    may round one ulp differently on another CPU)."""
    assert len(result) == len(official)
    # (K, 1, 4) vs (1, K, 4) -> (K, K): box distance, infinite across classes
    distance = (result.bboxes[:, None] - official[None, :, :4]).abs().amax(-1)
    distance[result.labels[:, None] != official[None, :, 5].long()] = float('inf')
    match = distance.argmin(1)
    assert torch.equal(match.sort().values, torch.arange(len(official)))  # one to one
    torch.testing.assert_close(result.bboxes, official[match, :4], rtol=0, atol=1e-4)
    torch.testing.assert_close(result.scores, official[match, 4], rtol=0, atol=1e-6)
    torch.testing.assert_close(official[match, 4], official[:, 4], rtol=0, atol=1e-6)  # same ranks


def test_predict_caps_and_thresholds():
    golden = torch.load(FIXTURES / 'yolov7_head_nms_golden.pt')['nc3']
    head = small_head(test_cfg=dict(multi_label=False, score_thr=0.05, nms_pre=100,
                                    nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))
    metas = [dict(img_shape=(128, 128), ori_shape=(128, 128))] * 2
    results = head.predict_by_feat(golden['maps'], batch_img_metas=metas)
    assert len(results[0]) == 20
    for result in results:
        assert (result.scores > 0.05).all()
        assert torch.equal(result.scores, result.scores.sort(descending=True).values)
    raw = head.predict_by_feat(golden['maps'], batch_img_metas=metas, with_nms=False)
    # without NMS: the 20 best candidates, at least as good as the 20 that survive NMS, rank by rank
    assert len(raw[0]) == 20 and (raw[0].scores >= results[0].scores).all()
    assert raw[0].scores[0] == results[0].scores[0]
    uncapped = head.predict_by_feat(golden['maps'], batch_img_metas=metas, with_nms=False,
                                    cfg=dict(multi_label=False, score_thr=0.05, nms_pre=100))
    _, scores = head.decode(golden['maps'])
    assert len(uncapped[0]) == min(100, int((scores[0].max(1).values > 0.05).sum()))
    silent = [torch.full_like(m, -20.) for m in golden['maps']]  # nothing above the threshold
    empty = head.predict_by_feat(silent, batch_img_metas=metas, rescale=True)
    assert [len(r) for r in empty] == [0, 0] and empty[0].bboxes.shape == (0, 4)


def test_rescale_undoes_letterbox_padding_and_scale_and_clips():
    head = small_head()
    boxes = torch.tensor([[20., 30., 60., 90.], [-10., 5., 200., 100.]])
    meta = dict(ori_shape=(250, 150), scale_factor=(0.5, 0.4), pad_param=[10., 10., 4., 4.])
    out = head._to_original_image(boxes, meta)
    expected = torch.tensor([[(20 - 4) / 0.5, (30 - 10) / 0.4, (60 - 4) / 0.5, (90 - 10) / 0.4],
                             [0., 0., 150., 225.]])  # second box clipped to the original image
    torch.testing.assert_close(out, expected)
    # mmdet's own Resize + bottom-right Pad: no pad_param
    out = head._to_original_image(boxes[:1], dict(ori_shape=(500, 500), scale_factor=(2., 2.)))
    torch.testing.assert_close(out, boxes[:1] / 2)


def _gt(boxes, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor(labels))


@pytest.mark.parametrize('with_aux', [False, True])
def test_loss_by_feat_feeds_the_loss_module_the_official_layout(with_aux):
    torch.manual_seed(0)
    head = small_aux_head() if with_aux else small_head(num_classes=2)
    levels = 4 if with_aux else 3
    x = feats(head.in_channels, 128)
    lead, aux = head(x + x if with_aux else x)
    gts = [_gt([[10, 12, 60, 70], [70, 20, 120, 90]], [0, 1]), _gt([[30, 30, 50, 80]], [1])]
    metas = [dict(batch_input_shape=(128, 128))] * 2
    losses = head.loss_by_feat(lead, aux, gts, metas)
    expected_keys = {'loss_box', 'loss_obj', 'loss_cls'}
    if with_aux:
        expected_keys |= {'loss_aux_box', 'loss_aux_obj', 'loss_aux_cls'}
    assert set(losses) == expected_keys

    # The same numbers from the loss module called by hand with (B, A, H, W, 5+C) maps and padded GTs.
    def anchor_major(raw):
        b, _, h, w = raw.shape
        return raw.view(b, 3, 7, h, w).permute(0, 1, 3, 4, 2)

    direct = head.loss_module(
        [anchor_major(m) for m in lead], [anchor_major(m) for m in aux] if with_aux else None,
        anchors=torch.tensor(P6_ANCHORS if with_aux else TINY_ANCHORS, dtype=torch.float32),
        strides=torch.tensor([8., 16., 32., 64.][:levels]),
        gt_bboxes=torch.tensor([[[10., 12, 60, 70], [70, 20, 120, 90]], [[30, 30, 50, 80], [0, 0, 0, 0]]]),
        gt_labels=torch.tensor([[0, 1], [1, 0]]), gt_valid=torch.tensor([[True, True], [True, False]]),
        batch_input_shape=(128, 128))
    for key in expected_keys:
        torch.testing.assert_close(losses[key], direct[key])
    total = sum(losses.values())
    total.backward()
    assert head.lead_implicit_a[0].implicit.grad is not None
    if with_aux:
        assert head.aux_convs[0].conv.weight.grad is not None


def test_loss_accepts_ignore_instances():
    torch.manual_seed(0)
    head = small_head(num_classes=2)
    lead, aux = head(feats(head.in_channels, 128))
    gts = [_gt([[10, 12, 60, 70]], [0]), _gt([[30, 30, 50, 80]], [1])]
    metas = [dict(batch_input_shape=(128, 128))] * 2
    plain = head.loss_by_feat(lead, aux, gts, metas, [None, None])
    ignored = head.loss_by_feat(lead, aux, gts, metas,
                                [InstanceData(bboxes=torch.tensor([[64., 64., 128., 128.]])), None])
    torch.testing.assert_close(plain['loss_box'], ignored['loss_box'])
    assert not torch.allclose(plain['loss_obj'], ignored['loss_obj'])  # ignored cells leave the obj loss


@pytest.mark.parametrize('with_aux', [False, True])
def test_switch_to_deploy_folds_implicit_and_drops_aux(with_aux):
    torch.manual_seed(0)
    head = (small_aux_head() if with_aux else small_head()).eval()
    for module in list(head.lead_implicit_a) + list(head.lead_implicit_m):
        module.implicit.data.normal_(1, 0.5)
    x = feats(head.in_channels, 128)
    with torch.no_grad():
        before, _ = head(x + x if with_aux else x)
        head.switch_to_deploy()
        after, aux = head(x)
    assert aux is None and not hasattr(head, 'aux_convs') and not hasattr(head, 'lead_implicit_a')
    for a, b in zip(before, after):
        assert (a - b).abs().max().item() < 1e-5
    head.switch_to_deploy()  # idempotent


def test_rescale_inverts_the_test_pipeline_resize_and_letterbox():
    """Contract with the data pipeline: a box mapped into the network input by mmdet's Resize and
    YOLOv7Letterbox (metainfo ``scale_factor``, ``pad_param``) comes back to original pixels."""
    init_default_scope('mmdet')
    pipeline = Compose([dict(type='Resize', scale=(640, 640), keep_ratio=True),
                        dict(type='YOLOv7Letterbox', scale=(640, 640), pad_val=114, allow_scale_up=False),
                        dict(type='PackDetInputs',
                             meta_keys=('ori_shape', 'img_shape', 'scale_factor', 'pad_param'))])
    image = np.zeros((300, 500, 3), dtype=np.uint8)
    packed = pipeline(dict(img=image, img_shape=(300, 500), ori_shape=(300, 500)))
    meta = packed['data_samples'].metainfo
    original = torch.tensor([[50., 60., 200., 250.]])
    scale_w, scale_h = meta['scale_factor']
    top, _, left, _ = meta['pad_param']
    in_network = original * torch.tensor([scale_w, scale_h, scale_w, scale_h]) + torch.tensor(
        [left, top, left, top])
    assert packed['inputs'].shape[-2:] == (640, 640) and top > 0  # letterboxed vertically
    torch.testing.assert_close(YOLOv7Head._to_original_image(in_network, meta), original)


def test_loading_other_anchors_says_so_in_one_line(monkeypatch):
    """A checkpoint's anchors are loaded (auto-anchored or converted ones) and the change is logged."""
    import yolov7_mmdet.models.dense_heads.yolov7_head as head_module
    logged = []
    monkeypatch.setattr(head_module, 'print_log', lambda msg, **kwargs: logged.append(msg))
    head, source = small_head(), small_head()
    head.load_state_dict(source.state_dict())
    assert logged == []  # same anchors: nothing to say
    source.set_anchors(source.anchors * 1.5)
    head.load_state_dict(source.state_dict())
    assert torch.equal(head.anchors, source.anchors)
    assert len(logged) == 1 and logged[0].startswith("anchors: the checkpoint's [[[15.0, 19.5]")
