"""Fine-tuning from converted official weights: another ``num_classes``, frozen backbone stages.

``load_from`` a checkpoint of the 80 COCO classes into a 3-class model loads every weight except the
class rows of the head's prediction convs, which keep their initialisation (class bias prior), and
says so in one line; ``tools/test.py`` and torch's ``load_state_dict`` still refuse the mismatch.
"""
import math
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict
from official_format import official_model, save_official, stripped_checkpoint
from test_official_checkpoint import official_state_with_anchors
from test_official_conversion import load_converter_tool
from yolov7_builders import ARCHS, build_model

from yolov7_mmdet.models.dense_heads import YOLOv7Head
from yolov7_mmdet.models.dense_heads.class_rows import BOX_AND_OBJECTNESS
from yolov7_mmdet.models.detectors.official_layout import official_layout
from yolov7_mmdet.utils.launch import check_checkpoint_fits

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_module(path: Path):
    spec = spec_from_file_location(path.stem, path)
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smoke_train = load_module(REPO_ROOT / 'tests' / 'test_configs' / 'test_smoke_train.py')  # small-input recipe
fast_config_text = smoke_train.fast_config_text  # the fixture
BCCD_CLASSES = ('RBC', 'WBC', 'Platelets')
# Layers of the official cfg/training/*.yaml backbones (len(yaml['backbone'])): `--freeze n` with this
# n freezes the whole backbone.
OFFICIAL_BACKBONE_LAYERS = dict(tiny=29, l=51, x=59, w6=47, e6=57, d6=67, e6e=112)


def frozen_official_layers(model) -> tuple[set, set]:
    """(official layer indices whose weights are frozen, indices of every official layer with weights)."""
    layout, _ = official_layout(model)
    params = dict(model.named_parameters())
    frozen, weighted = set(), set()
    for ours, officials in layout:
        indices = {int(official.split('.')[0]) for official in officials}
        weighted |= indices
        if not next(p for name, p in params.items() if name.startswith(ours + '.')).requires_grad:
            frozen |= indices
    return frozen, weighted


@pytest.mark.parametrize('arch', ARCHS)
def test_frozen_stages_equal_the_official_freeze_of_a_layer_prefix(arch):
    """``frozen_stages=k`` freezes exactly the official layers ``0..n-1`` (official ``--freeze n``).

    One model: raising ``frozen_stages`` and calling ``train()`` freezes the next stage (freezing only
    ever adds), as building the model with that ``frozen_stages`` would.
    """
    model = build_model(arch, device='meta')
    for stages in range(-1, len(model.backbone.layers)):  # -1: nothing, 0: the stem, i: stages 1..i
        model.backbone.frozen_stages = stages
        frozen, weighted = frozen_official_layers(model.train())
        first_unfrozen = max(frozen, default=-1) + 1
        assert frozen == {index for index in weighted if index < first_unfrozen}, stages
    # all stages: the whole official backbone, nothing of the neck
    assert max(frozen) < OFFICIAL_BACKBONE_LAYERS[arch]
    assert frozen == {index for index in weighted if index < OFFICIAL_BACKBONE_LAYERS[arch]}


def bccd_subset(shared_datasets: Path, root: Path, images: int) -> Path:
    """The first ``images`` BCCD train images as COCO JSON (via tools/dataset_converters/to_coco.py)."""
    split = root / 'split.txt'
    ids = (shared_datasets / 'bccd' / 'ImageSets' / 'Main' / 'train.txt').read_text().split()[:images]
    split.write_text('\n'.join(ids) + '\n')
    to_coco = load_module(REPO_ROOT / 'tools' / 'dataset_converters' / 'to_coco.py')
    bccd = shared_datasets / 'bccd'
    to_coco.main(['voc', str(bccd / 'Annotations'), '--img-dir', str(bccd / 'JPEGImages'), '--split', str(split),
                  '--classes', *BCCD_CLASSES, '--no-decode', '--out', str(root / 'train.json')])
    return root / 'train.json'


class SnapshotBeforeTrain(Hook):
    """Keeps a copy of the weights as training starts, i.e. right after ``load_from``."""

    def before_train(self, runner) -> None:
        self.state = {key: value.clone() for key, value in runner.model.state_dict().items()}


def finetune_config(ann_file: Path, image_dir: Path, checkpoint: Path, work_dir: Path, *, frozen_stages: int):
    cfg = smoke_train.smoke_config('l', 64, ann_file.parent, work_dir)
    cfg.model.bbox_head.num_classes = len(BCCD_CLASSES)
    cfg.model.backbone.frozen_stages = frozen_stages
    data = dict(metainfo=dict(classes=BCCD_CLASSES), data_root='', ann_file=str(ann_file),
                data_prefix=dict(img=f'{image_dir}/'))
    cfg.train_dataloader.dataset.dataset.update(data)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.train_cfg.update(max_epochs=1, val_interval=2)  # 4 images, batch 2: two iterations
    smoke_train.set_input_size(cfg.train_dataloader, 64)
    cfg.load_from = str(checkpoint)
    return cfg


def test_finetune_l_weights_on_bccd_keeps_all_but_the_class_rows(shared_datasets, tmp_path, fast_config_text,
                                                                 capsys):
    ann_file = bccd_subset(shared_datasets, tmp_path, images=4)
    coco_model = build_model('l', device='meta')  # 80 classes
    save_official(stripped_checkpoint(official_model(official_state_with_anchors(coco_model))),
                  tmp_path / 'yolov7_training.pt')
    load_converter_tool().main([str(tmp_path / 'yolov7_training.pt'), str(tmp_path / 'l_coco.pth')])
    loaded = torch.load(tmp_path / 'l_coco.pth', weights_only=True)['state_dict']

    runner = Runner.from_cfg(finetune_config(ann_file, shared_datasets / 'bccd' / 'JPEGImages', tmp_path / 'l_coco.pth',
                                             tmp_path / 'work', frozen_stages=4))
    snapshot = SnapshotBeforeTrain()
    runner.register_hook(snapshot, priority='LOWEST')
    runner.train()
    assert runner.iter == 2 and math.isfinite(runner.message_hub.log_scalars['train/loss'].current())

    after_load, trained = snapshot.state, runner.model.state_dict()
    rows = dict(lead_preds=0, lead_implicit_m=1)  # dim of the A*(5+C) output channels
    for key, value in loaded.items():
        part = key.split('.')[1]
        if part not in rows:  # backbone, neck, head convs, implicit A: exactly the file's
            assert torch.equal(after_load[key], value), key
            continue
        dim, head = rows[part], coco_model.bbox_head
        # (.., A*(5+C), ..) -> (.., A, 5+C, ..)
        theirs, ours = value.unflatten(dim, (head.num_base_priors, -1)), after_load[key].unflatten(dim, (3, -1))
        assert ours.shape[dim + 1] == BOX_AND_OBJECTNESS + len(BCCD_CLASSES)
        box_rows = ours.narrow(dim + 1, 0, BOX_AND_OBJECTNESS)
        assert torch.equal(box_rows, theirs.narrow(dim + 1, 0, BOX_AND_OBJECTNESS)), key
        class_rows = ours.narrow(dim + 1, BOX_AND_OBJECTNESS, len(BCCD_CLASSES))
        assert not torch.equal(class_rows, theirs.narrow(dim + 1, BOX_AND_OBJECTNESS, len(BCCD_CLASSES))), key
        if key.endswith('.bias'):  # PyTorch's default bias plus the official class prior log(0.6 / (C - 0.99))
            prior = math.log(0.6 / (len(BCCD_CLASSES) - 0.99))
            bound = 1 / math.sqrt(loaded[key[:-len('bias')] + 'weight'].shape[1])  # 1 / sqrt(fan_in)
            assert ((class_rows - prior).abs() <= bound + 1e-6).all(), key
    # mmengine prints load mismatches (for the model, and for the EMA hook's copy): one line says it all
    lines = {line for line in capsys.readouterr().out.splitlines() if 'the checkpoint predicts' in line}
    assert lines == {
        'bbox_head: the checkpoint predicts 80 classes, this head 3: loaded only the box and objectness rows of '
        + ', '.join(f'lead_preds.{i}.{name}' for i in range(3) for name in ('weight', 'bias')) + ', '
        + ', '.join(f'lead_implicit_m.{i}.implicit' for i in range(3))
        + '; their 3 anchors x 3 class rows were skipped and keep their initialisation'}

    for key, value in loaded.items():  # frozen_stages=4: the whole backbone stays the file's
        if key.startswith('backbone.') and 'num_batches_tracked' not in key:
            assert torch.equal(trained[key], value), key
    assert not torch.equal(trained['neck.spp.final_conv.conv.weight'], loaded['neck.spp.final_conv.conv.weight'])


def test_other_num_classes_is_still_refused_by_test_tool_and_strict_loads(tmp_path):
    coco = build_model('tiny')
    torch.save(dict(state_dict=coco.state_dict()), tmp_path / 'coco.pth')
    three = build_model('tiny', **{'bbox_head.num_classes': 3})
    with pytest.raises(ValueError, match=r'shape of bbox_head.lead_preds.0.weight: checkpoint \(255'):
        check_checkpoint_fits(three, str(tmp_path / 'coco.pth'))
    with pytest.raises(RuntimeError, match='the checkpoint predicts 80 classes, this head 3'):
        three.load_state_dict(coco.state_dict(), strict=False)


def small_head(num_classes: int, *, aux: bool = True) -> YOLOv7Head:
    channels = dict(in_channels=(4, 8), feat_channels=(8, 16))
    if aux:
        channels.update(aux_in_channels=(4, 8), aux_feat_channels=(8, 16))
    head = YOLOv7Head(num_classes=num_classes, anchors=[[(10, 13), (16, 30)], [(30, 61), (62, 45)]],
                      strides=(8, 16), **channels)
    head.init_weights()
    return head


def test_lead_and_aux_class_rows_with_mmengine_load_state_dict():
    coco, three = small_head(80), small_head(3)
    initialised = {key: value.clone() for key, value in three.state_dict().items()}
    load_state_dict(three, coco.state_dict())  # mmengine's lenient load (load_from)
    for key, theirs in coco.state_dict().items():
        ours = three.state_dict()[key]
        if ours.shape == theirs.shape:
            assert torch.equal(ours, theirs), key
            continue
        dim = 1 if key.startswith('lead_implicit_m') else 0
        # (.., A*(5+C), ..) -> (.., A, 5+C, ..)
        ours, theirs, before = (t.unflatten(dim, (2, -1)) for t in (ours, theirs, initialised[key]))
        assert torch.equal(ours.narrow(dim + 1, 0, 5), theirs.narrow(dim + 1, 0, 5)), key
        assert torch.equal(ours.narrow(dim + 1, 5, 3), before.narrow(dim + 1, 5, 3)), key
    three_lead_only = small_head(3, aux=False)
    with pytest.raises(RuntimeError, match=r'head 3: loaded only .* aux_preds.1.bias, lead_implicit_m.0.implicit'):
        small_head(3).load_state_dict(coco.state_dict())
    load_state_dict(three_lead_only, coco.state_dict())  # the aux tensors are unexpected keys, nothing else
    assert torch.equal(three_lead_only.lead_preds[1].bias[:5], coco.lead_preds[1].bias[:5])
