"""Class names from the files users already have.

Accepted sources (:func:`load_class_names`):

- a sequence of names;
- ``'coco'``: the 80 COCO names in the usual order (mmdet's ``CocoDataset``, the same order as the
  official YOLOv7 ``data/coco.yaml``);
- a ``.yaml``/``.yml`` file with ``names`` (a list, or a ``{id: name}`` mapping as in newer YOLO
  data yamls), checked against ``nc`` when present;
- a ``.pbtxt`` TensorFlow label map (``item { id: 1 name: 'nine' }``), ordered by ``id``;
- any other text file: one name per line (blank lines skipped);
- any other string that is not an existing file and does not look like a path (no folder separator,
  no ``.txt``/``.yaml``/``.yml``/``.pbtxt`` suffix): a single class name (``'kangaroo'``), the case
  of every one-class dataset.
"""
import re
from pathlib import Path
from typing import Sequence, Tuple, Union

import yaml

ClassesSource = Union[str, Path, Sequence[str]]

_PBTXT_ITEM = re.compile(r'item\s*\{(.*?)\}', re.S)
_PBTXT_ID = re.compile(r'\bid\s*:\s*(\d+)')
_PBTXT_NAME = re.compile(r'\b(?:display_)?name\s*:\s*[\'"]([^\'"]*)[\'"]')
_NAMES_FILE_SUFFIXES = frozenset({'.txt', '.yaml', '.yml', '.pbtxt'})


def load_class_names(source: ClassesSource) -> Tuple[str, ...]:
    """Read class names (see the module docstring for the accepted sources).

    Raises:
        ValueError: When the source gives no names, repeats a name, or disagrees with its ``nc``.
    """
    if isinstance(source, (str, Path)):
        names = _names_from_file_or_alias(source)
    else:
        names = tuple(str(name) for name in source)
    if not names:
        raise ValueError(f'no class names found in {source!r}')
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f'class names repeat in {source!r}: {repeated}')
    return names


def names_from_data_yaml(data: dict, origin: str) -> Tuple[str, ...]:
    """``names`` of a YOLO data yaml (list or ``{id: name}``), checked against ``nc``."""
    names = data.get('names')
    if names is None:
        raise ValueError(f'{origin} has no `names` entry')
    if isinstance(names, dict):
        ids = sorted(int(key) for key in names)
        if ids != list(range(len(ids))):
            raise ValueError(f'{origin}: `names` ids must be 0..{len(ids) - 1}, got {ids}')
        names = [names[key] for key in sorted(names, key=int)]
    names = tuple(str(name) for name in names)
    if 'nc' in data and int(data['nc']) != len(names):
        raise ValueError(f'{origin}: nc={data["nc"]} but {len(names)} names are listed')
    return names


def _names_from_file_or_alias(source: Union[str, Path]) -> Tuple[str, ...]:
    if str(source).lower() == 'coco':
        from mmdet.datasets import CocoDataset
        return tuple(CocoDataset.METAINFO['classes'])
    path = Path(source)
    if not path.is_file():
        if isinstance(source, Path) or _looks_like_a_path(str(source)):
            raise FileNotFoundError(f'class names file not found: {path}')
        return (str(source),)
    text = path.read_text(encoding='utf-8')
    if path.suffix.lower() in ('.yaml', '.yml'):
        return names_from_data_yaml(yaml.safe_load(text) or {}, str(path))
    if path.suffix.lower() == '.pbtxt':
        return _names_from_label_map(text, path)
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _looks_like_a_path(text: str) -> bool:
    return ('/' in text or '\\' in text
            or Path(text).suffix.lower() in _NAMES_FILE_SUFFIXES)


def _names_from_label_map(text: str, path: Path) -> Tuple[str, ...]:
    """Names of a TF label map ordered by ``id`` (ids must be 1..N, as the format requires)."""
    items = {}
    for body in _PBTXT_ITEM.findall(text):
        item_id, name = _PBTXT_ID.search(body), _PBTXT_NAME.search(body)
        if item_id is None or name is None:
            raise ValueError(f'{path}: label map item without id or name: {body.strip()!r}')
        items[int(item_id.group(1))] = name.group(1)
    if sorted(items) != list(range(1, len(items) + 1)):
        raise ValueError(f'{path}: label map ids must be 1..{len(items)}, got {sorted(items)}')
    return tuple(items[item_id] for item_id in sorted(items))
