"""The package's imports follow its layers: each room imports only from the rooms below it.

utils (stack check, config lookup, checkpoints) <- models, datasets <- engine (hooks, optimizers)
<- deployment, visualization, comparison. A model never imports a hook; a dataset never imports a
model; a helper lives in the lowest room that all its users can import.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / 'yolov7_mmdet'
ROOMS_BELOW = {
    'utils': set(),
    'models': {'utils'},
    'datasets': {'utils'},
    'engine': {'utils', 'models', 'datasets'},
    'deployment': {'utils', 'models', 'datasets', 'engine'},
    'visualization': {'utils', 'models', 'datasets', 'engine'},
    'comparison': {'utils', 'models', 'datasets', 'engine'},
}
TOP_LEVEL = {'version', 'registry'}  # modules directly in the package that every room may import


def imported_rooms(path: Path) -> set:
    """The rooms (sub-packages of yolov7_mmdet) that ``path`` imports, relative or absolute."""
    parts = path.relative_to(PACKAGE).parts[:-1]  # the module's package, e.g. ('models', 'layers')
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = parts[:len(parts) - node.level + 1]
            target = list(base) + (node.module.split('.') if node.module else [])
            if not target:  # `from .. import x` at the top: x is a room
                rooms.update(alias.name for alias in node.names)
            else:
                rooms.add(target[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('yolov7_mmdet.'):
            rooms.add(node.module.split('.')[1])
        elif isinstance(node, ast.Import):
            rooms.update(alias.name.split('.')[1] for alias in node.names
                         if alias.name.startswith('yolov7_mmdet.'))
    return rooms - TOP_LEVEL


@pytest.mark.parametrize('room', sorted(ROOMS_BELOW))
def test_rooms_import_only_the_rooms_below(room):
    wrong = {}
    for path in sorted((PACKAGE / room).rglob('*.py')):
        above = imported_rooms(path) - ROOMS_BELOW[room] - {room}
        if above:
            wrong[str(path.relative_to(PACKAGE))] = sorted(above)
    assert not wrong, f'imports against the layers: {wrong}'


def test_every_room_is_listed():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / '__init__.py').is_file()}
    assert rooms == set(ROOMS_BELOW)
