"""RepAblationNet: the small nets of the planned re-parameterization ablation (docs/rep_conv.md)."""
import pytest
import torch

from yolov7_mmdet.models.backbones import BLOCK_KINDS, CONV_KINDS, RepAblationNet
from yolov7_mmdet.models.backbones.rep_ablation import AblationBlock
from yolov7_mmdet.models.deploy import switch_to_deploy
from yolov7_mmdet.models.layers import RepConvN


def _randomise_bn(module: torch.nn.Module) -> None:
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)


@pytest.mark.parametrize('block_kind', BLOCK_KINDS)
@pytest.mark.parametrize('conv_kind', CONV_KINDS)
def test_shapes_identity_branches_and_deploy(block_kind, conv_kind):
    torch.manual_seed(0)
    net = RepAblationNet(block_kind=block_kind, conv_kind=conv_kind, stem_channels=8,
                         stage_channels=(8, 16, 16, 32))
    net.init_weights()
    _randomise_bn(net)
    net.eval()
    x = torch.rand(2, 3, 64, 64)
    outs = net(x)
    assert net.out_channels == (16, 16, 32) and net.strides == (8, 16, 32)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 8), (2, 16, 4, 4), (2, 32, 2, 2)]
    rep_convs = [m for m in net.modules() if isinstance(m, RepConvN)]
    assert len(rep_convs) == (0 if conv_kind == 'conv' else 8)  # 2 per block, 1 block per stage
    assert all((m.identity_bn is not None) == (conv_kind == 'repconv') for m in rep_convs)
    switch_to_deploy(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for before, after in zip(outs, net(x)):
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_residual_block_adds_its_input():
    block = AblationBlock(block_kind='residual', conv_kind='conv', channels=8).eval()
    torch.nn.init.zeros_(block.conv_b.bn.weight)  # the branch outputs SiLU(0) = 0
    torch.nn.init.zeros_(block.conv_b.bn.bias)
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(block(x), x)
    plain = AblationBlock(block_kind='plain', conv_kind='conv', channels=8).eval()
    plain.load_state_dict(block.state_dict())
    assert plain(x).abs().max() == 0


def test_bad_kinds_are_errors():
    with pytest.raises(ValueError, match="block_kind must be one of .* got 'dense'"):
        AblationBlock(block_kind='dense', conv_kind='conv', channels=8)
    with pytest.raises(ValueError, match="conv_kind must be one of .* got 'rep'"):
        AblationBlock(block_kind='plain', conv_kind='rep', channels=8)
    with pytest.raises(ValueError, match='out_indices'):
        RepAblationNet(block_kind='plain', conv_kind='conv', out_indices=(1, 4))


def test_ablation_configs_set_their_kinds_and_train():
    from pathlib import Path

    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData

    config_dir = Path(__file__).resolve().parents[2] / 'configs' / 'ablation' / 'rep_conv'
    names = sorted(p.stem for p in config_dir.glob('*_*.py') if p.stem != 'rep_ablation_base')
    assert names == sorted(f'{b}_{c}' for b in BLOCK_KINDS for c in CONV_KINDS)
    for name in names:  # each file sets exactly its own kinds (reading 9 configs fully takes ~1 s each)
        block, conv = name.split('_')
        assert f"block_kind='{block}', conv_kind='{conv}'" in (config_dir / f'{name}.py').read_text()
    init_default_scope('mmdet')
    cfg = Config.fromfile(config_dir / 'concat_repconv.py')
    assert (cfg.model.backbone.block_kind, cfg.model.backbone.conv_kind) == ('concat', 'repconv')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), batch_input_shape=(128, 128)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20.0, 30.0, 60.0, 90.0]]),
                                       labels=torch.tensor([2]))
    losses = model(torch.rand(1, 3, 128, 128), [sample], mode='loss')
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    identity = model.backbone.stages[1][1].conv_a.identity_bn
    assert identity.weight.grad is not None and identity.weight.grad.abs().sum() > 0
