"""Class names from the files users already have.

Accepted sources (:func:`load_class_names`):

- a sequence of names;
- ``'coco'``: the 80 COCO names in the usual order (mmdet's ``CocoDataset``, the same order as the
  official YOLOv7 ``data/coco.yaml``);
- a ``.yaml``/``.yml`` file with ``names`` (a list, or a ``{id: name}`` mapping as in newer YOLO
  data yamls), checked against ``nc`` when present. ``names: person`` (a string, not a list) is an
  error that shows the fix (``names: [person]``), as is a name that YAML reads as a boolean or null
  (``yes``, ``no``, ``on``, ``off``, ``null``: quote it);
- a ``.pbtxt`` TensorFlow label map (``item { id: 1 name: 'nine' }``), ordered by ``id``;
- any other text file: one name per line (blank lines skipped);
- any other string that is not an existing file and does not look like a path (no folder separator,
  no ``.txt``/``.yaml``/``.yml``/``.pbtxt`` suffix): a single class name (``'kangaroo'``), the case
  of every one-class dataset.
"""
import re
from pathlib import Path
from typing import Sequence, Tuple, Union

from .text_files import load_yaml, read_text

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
    """``names`` of a YOLO data yaml (list or ``{id: name}``), checked against ``nc``.

    Raises:
        ValueError: Naming ``origin`` and the field, when ``names`` is missing, not a list or
            mapping, holds something that is not a name, or disagrees with ``nc``.
    """
    names = data.get('names')
    if names is None:
        raise ValueError(f'{origin} has no `names` entry')
    if isinstance(names, str):
        raise ValueError(f'{origin}: `names` is the string {names!r}, not a list of names; for one '
                         f'class write `names: [{names}]`')
    if isinstance(names, dict):
        names = _names_of_id_mapping(names, origin)
    elif not isinstance(names, list):
        raise ValueError(f'{origin}: `names` must be a list of class names, got '
                         f'{type(names).__name__} {names!r:.60}')
    for index, name in enumerate(names):
        if not isinstance(name, (str, int)) or isinstance(name, bool):
            raise ValueError(f'{origin}: `names[{index}]` is {name!r:.60}, not a class name (YAML '
                             'reads yes/no/on/off as booleans and null as None: quote the name)')
    names = tuple(str(name) for name in names)
    nc = data.get('nc', len(names))
    if not isinstance(nc, int) or isinstance(nc, bool):
        raise ValueError(f'{origin}: `nc` must be the number of classes, got {nc!r:.60}')
    if nc != len(names):
        raise ValueError(f'{origin}: nc={nc} but {len(names)} names are listed')
    return names


def _names_of_id_mapping(names: dict, origin: str) -> list:
    """The values of a ``{id: name}`` mapping in id order; the ids must be 0..N-1."""
    try:
        ids = {int(key): key for key in names if not isinstance(key, bool)}
    except (TypeError, ValueError):
        ids = {}
    if sorted(ids) != list(range(len(names))):
        raise ValueError(f'{origin}: `names` ids must be 0..{len(names) - 1}, got '
                         f'{list(names)[:10]!r:.80}')
    return [names[ids[index]] for index in range(len(names))]


def _names_from_file_or_alias(source: Union[str, Path]) -> Tuple[str, ...]:
    if str(source).lower() == 'coco':
        from mmdet.datasets import CocoDataset
        return tuple(CocoDataset.METAINFO['classes'])
    path = Path(source)
    if not path.is_file():
        if isinstance(source, Path) or _looks_like_a_path(str(source)):
            raise FileNotFoundError(f'class names file not found: {path}')
        return (str(source),)
    if path.suffix.lower() in ('.yaml', '.yml'):
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise ValueError(f'{path}: a names yaml is a mapping with `names`, got '
                             f'{type(data).__name__}')
        return names_from_data_yaml(data, str(path))
    text = read_text(path, what='class names file')
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
