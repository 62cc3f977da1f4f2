"""Reading a dataset's text files (lists, yaml, JSON) with one-line errors that name the file.

Dataset files come from strangers: a file that is not UTF-8, a JSON nested a million levels deep or
a YAML "billion laughs" (anchors and aliases that expand exponentially once traversed) is a
``ValueError`` naming the file, not a traceback or an exhausted memory. YAML aliases (``*name``)
are refused outright: no data yaml needs them, and a bound on their expansion would be a guess.
"""
import json
from pathlib import Path
from typing import Any, Union

import yaml

PathLike = Union[str, Path]


class _NoAliasSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``), so no alias bomb can expand."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, 'aliases (*name) are not allowed in a dataset yaml',
                self.peek_event().start_mark)
        return super().compose_node(parent, index)


def read_text(path: PathLike, *, what: str = 'file') -> str:
    """The UTF-8 text of ``path``; a file that is not UTF-8 is a ``ValueError`` naming it."""
    try:
        return Path(path).read_text(encoding='utf-8')
    except UnicodeDecodeError as error:
        raise ValueError(f'{path}: the {what} is not UTF-8 text (byte {error.start}); save it as '
                         'UTF-8') from None


def load_yaml(path: PathLike) -> Any:
    """The parsed YAML of ``path`` (safe types only, no aliases); errors name the file."""
    text = read_text(path, what='yaml file')
    try:
        return yaml.load(text, Loader=_NoAliasSafeLoader)
    except yaml.YAMLError as error:
        problem = ' '.join(str(error).split())
        raise ValueError(f'{path}: not a valid dataset yaml ({problem})') from None
    except RecursionError:
        raise ValueError(f'{path}: nested too deeply to be a dataset yaml') from None


def load_json(path: PathLike) -> Any:
    """The parsed JSON of ``path``; an empty, invalid or too deeply nested file names it."""
    text = read_text(path, what='JSON file')
    if not text.strip():
        raise ValueError(f'{path}: the file is empty')
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'{path}: not valid JSON ({error})') from None
    except RecursionError:
        raise ValueError(f'{path}: nested too deeply to be a COCO file') from None


def printable(text: object) -> str:
    """``str(text)`` with what a terminal or a UTF-8 file cannot take escaped: the bytes of a
    non-UTF-8 file name (``\\udcff``), line breaks and other control characters."""
    text = str(text)
    if text.isprintable():
        return text
    return ''.join(char if char.isprintable() else repr(char)[1:-1] for char in text)
