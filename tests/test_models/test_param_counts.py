"""Parameter counts of all seven variants equal the official ones (80 classes), in three forms.

training: ``cfg/training/*.yaml`` (implicit, unfused RepConv, aux head for P6);
deploy: ``cfg/deploy/*.yaml`` (no implicit, no aux head, BN and RepConv unfused) = ``switch_to_deploy(fuse_bn=False)``;
fused: deploy after ``Model.fuse()`` = ``switch_to_deploy()``, the paper's #Param.
The numbers are those of ``REFERENCE.md`` (``sum(p.numel())`` of the official ``models.yolo.Model``).
Models are built on the meta device: nothing is allocated and no forward pass is run.
"""
import pytest
from yolov7_builders import ARCHS, build_model

from yolov7_mmdet.models.deploy import switch_to_deploy

OFFICIAL = {  # training, deploy, fused
    'tiny': (6_228_762, 6_227_101, 6_219_709),
    'l': (37_622_682, 37_620_125, 36_905_341),
    'x': (71_347_394, 71_344_389, 71_311_741),
    'w6': (82_312_436, 70_426_236, 70_394_300),
    'e6': (111_898_292, 97_246_652, 97_202_940),
    'd6': (154_709_364, 133_810_044, 133_757_052),
    'e6e': (166_408_884, 151_757_244, 151_687_420),
}


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch', ARCHS)
def test_training_deploy_and_fused_counts_equal_official(arch):
    model = build_model(arch, device='meta')
    training = count(model)
    deploy = count(switch_to_deploy(model, fuse_bn=False))
    fused = count(switch_to_deploy(model))
    assert (training, deploy, fused) == OFFICIAL[arch]
