"""ImplicitA / ImplicitM (YOLOR) and their exact folding into the 1x1 prediction conv."""
import pytest
import torch
from torch import nn

from yolov7_mmdet.models.layers import ImplicitA, ImplicitM, fold_implicit_into_conv


def test_initialisation_statistics_and_shapes():
    torch.manual_seed(0)
    a, m = ImplicitA(4096), ImplicitM(4096)
    assert a.implicit.shape == m.implicit.shape == (1, 4096, 1, 1)
    assert abs(a.implicit.mean().item()) < 0.002 and abs(a.implicit.std().item() - 0.02) < 0.002
    assert abs(m.implicit.mean().item() - 1) < 0.002 and abs(m.implicit.std().item() - 0.02) < 0.002


def test_forward_adds_and_multiplies_per_channel():
    a, m = ImplicitA(3), ImplicitM(3)
    with torch.no_grad():
        a.implicit.copy_(torch.tensor([1., 2., 3.]).view(1, 3, 1, 1))
        m.implicit.copy_(torch.tensor([2., 3., 4.]).view(1, 3, 1, 1))
    x = torch.ones(2, 3, 2, 2)
    assert a(x)[:, :, 0, 0].tolist() == [[2., 3., 4.]] * 2
    assert m(x)[:, :, 1, 1].tolist() == [[2., 3., 4.]] * 2


@pytest.mark.parametrize('use_a,use_m', [(True, True), (True, False), (False, True)])
def test_folding_is_exact(use_a, use_m):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 255, 1)
    a = ImplicitA(16, std=0.5) if use_a else None
    m = ImplicitM(255, std=0.5) if use_m else None
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        y = conv(a(x) if a is not None else x)
        expected = m(y) if m is not None else y
        fold_implicit_into_conv(conv, implicit_a=a, implicit_m=m)
        assert (conv(x) - expected).abs().max().item() < 1e-5


def test_folding_rejects_convs_where_it_is_not_exact():
    with pytest.raises(ValueError, match='1x1'):
        fold_implicit_into_conv(nn.Conv2d(4, 4, 3, padding=1), implicit_a=ImplicitA(4))
    with pytest.raises(ValueError, match='1x1'):
        fold_implicit_into_conv(nn.Conv2d(4, 4, 1, bias=False), implicit_a=ImplicitA(4))
    with pytest.raises(ValueError, match='channels'):
        fold_implicit_into_conv(nn.Conv2d(4, 6, 1), implicit_a=ImplicitA(6))
    with pytest.raises(ValueError, match='channels'):
        fold_implicit_into_conv(nn.Conv2d(4, 6, 1), implicit_m=ImplicitM(4))
