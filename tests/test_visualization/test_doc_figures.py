"""The concept figures are drawn from the project's code: check what they draw, then draw them."""
import torch

from yolov7_mmdet.visualization.assignment import centre_reachable, reachable_centre_region
from yolov7_mmdet.visualization.doc_figures import EXAMPLE_GT, EXAMPLE_STRIDE, example_cells


def test_worked_example_cells_and_decoder_constraint_match_the_doc():
    # docs/label_assignment.md: fine (3, 4), (2, 4), (3, 5); coarse adds (4, 4) and (3, 3), which
    # cannot reach the GT centre (3.3, 4.7): their offsets are x = -0.7 and y = 1.7.
    cells = example_cells()
    assert {(x, y) for x, y, r in cells if r == 'fine'} == {(3, 4), (2, 4), (3, 5)}
    assert {(x, y) for x, y, r in cells if r == 'coarse'} == {(4, 4), (3, 3)}
    gt = torch.tensor(EXAMPLE_GT)
    for x, y, region in cells:
        reachable = centre_reachable(gt, torch.tensor(x), torch.tensor(y), EXAMPLE_STRIDE)
        assert bool(reachable) == (region == 'fine'), (x, y)


def test_reachable_region_spans_minus_half_to_one_and_a_half_cells():
    region = reachable_centre_region(torch.tensor([2]), torch.tensor([5]), 16.0)
    assert region.tolist() == [[24.0, 72.0, 56.0, 104.0]]
    # the bounds are open: a centre exactly on the edge is not reachable by a sigmoid
    on_edge = torch.tensor([[14.0, 62.0, 34.0, 82.0]])  # centre (24, 72)
    assert not centre_reachable(on_edge, torch.tensor([2]), torch.tensor([5]), 16.0).item()


def test_draw_doc_figures_writes_small_pngs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'draw_doc_figures.py'
    spec = importlib.util.spec_from_file_location('draw_doc_figures', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(['--out', str(tmp_path)])
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob('*.png')}
    assert set(sizes) == {'label_assignment_worked_example.png', 'label_assignment_decoder_constraint.png',
                          'e_elan.png', 'compound_scaling.png'}
    assert all(0 < size < 200 * 1024 for size in sizes.values())
    # compound scaling is read from the built backbones: X's blocks are L's, 1.5x deeper, 1.25x wider
    large, extra_large = tool.stage_table('l'), tool.stage_table('x')
    assert len(large) == len(extra_large) == 4
    for (_, depth, concat, out), (_, depth_x, concat_x, out_x) in zip(large, extra_large):
        assert (depth_x, concat_x, out_x) == (depth * 3 // 2, concat * 5 // 4, out * 5 // 4)
