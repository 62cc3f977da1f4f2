"""``tools/analysis_tools/browse_assignment.py`` draws what the loss trains.

On a real COCO128 image (``../shared``), for a P5 config (yolov7-tiny, lead head only) and a P6
config (yolov7-w6, lead + aux head, input reduced to 320 to stay fast), the positives the tool
collects equal the ones the loss's assigners produce when ``YOLOv7Head.loss_by_feat`` runs on the
same predictions (captured from the assigner calls the loss makes), and that the objectness term
of the loss is rebuilt exactly from the objectness targets the tool draws.
"""
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from yolov7_mmdet.datasets.sources.coco_json import write_coco_json
from yolov7_mmdet.datasets.sources.yolo_txt import read_yolo_txt
from yolov7_mmdet.visualization import constraint_cells, positive_cells
from yolov7_mmdet.visualization.assignment import centre_reachable

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    'browse_assignment', REPO_ROOT / 'tools' / 'analysis_tools' / 'browse_assignment.py')
browse_assignment = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browse_assignment)

IMAGE = '000000000009.jpg'  # 8 objects (bowls, broccoli, oranges) of several sizes


@pytest.fixture(scope='module')
def coco128_one_image(shared_datasets, tmp_path_factory):
    """One COCO128 image as a COCO JSON, and the ``--cfg-options`` that make it the val split."""
    image_dir = shared_datasets / 'coco128' / 'images' / 'train'
    listing = tmp_path_factory.mktemp('coco128') / 'one.txt'
    listing.write_text(str(image_dir / IMAGE) + '\n')
    ann_file = write_coco_json(read_yolo_txt(listing, classes='coco'), listing.with_suffix('.json'),
                               image_root=image_dir)
    return ['val_dataloader.dataset.data_root=', f'val_dataloader.dataset.ann_file={ann_file}',
            f'val_dataloader.dataset.data_prefix.img={image_dir}/']


def _loss_assignments(model, sample):
    """Run the loss on the model's eval-mode predictions; return what its assigners returned."""
    head = model.bbox_head
    captured = {}

    def spy(name, assigner):
        original = assigner.assign

        def assign(*args, **kwargs):
            captured[name] = original(*args, **kwargs)
            return captured[name]
        return assign

    loss = head.loss_module
    loss.assigner.assign = spy('lead', loss.assigner)
    if loss.aux_assigner is not None:
        loss.aux_assigner.assign = spy('aux', loss.aux_assigner)
    data = model.data_preprocessor(dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]),
                                   training=False)
    data_sample = data['data_samples'][0]
    with torch.no_grad():
        lead_maps, aux_maps = head(model.extract_feat(data['inputs']))
        losses = head.loss_by_feat(lead_maps, aux_maps, [data_sample.gt_instances], [data_sample.metainfo])
    assert all(torch.isfinite(v) for v in losses.values())
    return captured, losses, dict(lead=lead_maps, aux=aux_maps)


def _objectness_loss(head_assignment, raw_maps, head, weight):
    """The objectness term rebuilt from the tool's positives and targets (a positive listed later
    overwrites a shared cell, as the loss does), scaled as the loss scales it."""
    loss = head.loss_module
    num_levels = len(raw_maps)
    level_weights = loss.obj_level_weights or {3: (4.0, 1.0, 0.4), 4: (4.0, 1.0, 0.25, 0.06)}[num_levels]
    total = 0.0
    for level, raw in enumerate(raw_maps):
        pred = head._anchor_major(raw)  # (1, A, H, W, 5 + C)
        target = torch.zeros(pred.shape[:4])
        for _, anchor, x, y, value in positive_cells(head_assignment, level):
            target[0, anchor, y, x] = value
        total += level_weights[level] * F.binary_cross_entropy_with_logits(pred[..., 4], target)
    return total * loss.obj_gain * (loss.img_size / 640) ** 2 * 3 / num_levels * weight


@pytest.mark.parametrize('config, options, heads, size', [
    ('configs/yolov7/yolov7_tiny_8xb16-300e_coco.py', [], ['lead'], 640),
    ('configs/yolov7/yolov7_w6_8xb16-300e_coco.py',
     ['test_dataloader.dataset.pipeline.1.scale=(320,320)',
      'test_dataloader.dataset.pipeline.2.scale=(320,320)'], ['lead', 'aux'], 320),
])
def test_tool_positives_equal_the_loss_assigners(config, options, heads, size, coco128_one_image,
                                                  tmp_path):
    argv = [str(REPO_ROOT / config), '--image', IMAGE, '--out', str(tmp_path),
            '--cfg-options', *coco128_one_image, *options]
    args = browse_assignment.parse_args(argv)
    cfg = browse_assignment.load_config(args.config, args.cfg_options)
    dataset = browse_assignment.build_dataset(cfg, 'val')
    sample = dataset[browse_assignment.find_image(dataset, IMAGE)]
    assert len(sample['data_samples'].gt_instances) == 8
    model = browse_assignment.build_model(cfg, None, seed=0)
    assignment, image, _ = browse_assignment.browse_sample(model, sample)
    assert image.shape[:2] == sample['inputs'].shape[1:] == (size, size)

    from_loss, losses, maps = _loss_assignments(model, sample)
    assert [h.name for h in assignment.heads] == heads == sorted(from_loss, key=heads.index)
    for head in assignment.heads:
        expected = from_loss[head.name]
        assert head.result.pos_mask.any()
        assert torch.equal(head.result.pos_mask, expected.pos_mask)
        pos = expected.pos_mask
        assert torch.equal(head.result.gt_inds[pos], expected.gt_inds[pos])
        assert torch.equal(head.result.grid_x[pos], expected.grid_x[pos])
        assert torch.equal(head.result.grid_y[pos], expected.grid_y[pos])
        targets = head.targets[pos]
        assert ((targets >= 0) & (targets <= 1)).all()
        # every positive is one of the head's own candidate cells
        assert (head.candidates.valid.flatten(2) | ~pos).all()
        # the drawn objectness targets are the loss's: its objectness term is rebuilt from them
        aux_weight = model.bbox_head.loss_module.aux_weight
        prefix, weight = ('', 1.0) if head.name == 'lead' else ('aux_', aux_weight)
        rebuilt = _objectness_loss(head, maps[head.name], model.bbox_head, weight)
        torch.testing.assert_close(rebuilt, losses[f'loss_{prefix}obj'], rtol=1e-5, atol=0)

    # the decoder constraint on a real image: every fine cell can reach its GT's centre, no
    # coarse-only cell can
    for gt in assignment.gt_valid.nonzero().flatten().tolist():
        for level, stride in enumerate(assignment.strides.tolist()):
            for x, y, region in constraint_cells(assignment, level, gt):
                cell = torch.tensor(x), torch.tensor(y)
                reachable = centre_reachable(assignment.gt_bboxes[gt], *cell, stride)
                assert bool(reachable) == (region == 'fine'), (gt, level, x, y)

    written = browse_assignment.main(argv + ['--constraint-gt', '0'])  # the command: figures, summary
    assert [p.rsplit('/', 1)[1] for p in written] == [IMAGE.replace('.jpg', '_assignment.png'),
                                                      IMAGE.replace('.jpg', '_gt0_decoder_constraint.png')]
    assert all((tmp_path / p.rsplit('/', 1)[1]).stat().st_size > 0 for p in written)
    summary = (tmp_path / IMAGE.replace('.jpg', '_summary.txt')).read_text()
    total = ', '.join(f'{name} {int(from_loss[name].pos_mask.sum())}' for name in heads)
    assert f'positives in all: {total}' in summary


def test_unknown_image_is_a_clear_error(coco128_one_image, tmp_path):
    argv = [str(REPO_ROOT / 'configs/yolov7/yolov7_tiny_8xb16-300e_coco.py'), '--image', 'nope.jpg',
            '--out', str(tmp_path), '--cfg-options', *coco128_one_image]
    with pytest.raises(SystemExit, match='nope.jpg: not in the 1 images'):
        browse_assignment.main(argv)
