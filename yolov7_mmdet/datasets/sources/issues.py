"""Counting what was wrong with a dataset, and saying it once.

Real datasets are dirty (background images, orphan label files, zero-size boxes, boxes outside the
image, PNGs named ``.jpg``, unreadable files, EXIF-rotated photos). The readers in this package never
crash on those and never drop or change anything silently: every skip or repair is counted in a
:class:`DataIssues` with the file it happened in, :meth:`DataIssues.log_summary` prints one warning
that lists the counts and the first few files of each case, and :meth:`DataIssues.report` lists
every file (the converters write it beside the output JSON).
"""
from collections import Counter
from pathlib import Path
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Union

from mmengine.logging import print_log

from .text_files import printable

# case -> what the readers do about it (the words of the warning summary).
ISSUE_CASES: Mapping[str, str] = MappingProxyType({
    'background_image': 'images without labels, kept as background images',
    'missing_image': 'annotation/label files whose image is missing, skipped',
    'orphan_label_file': 'label files with no image, skipped',
    'unreadable_image': 'unreadable image files, skipped',
    'truncated_image': 'truncated image files (the data stops early; OpenCV would decode a grey '
                       'remainder), skipped',
    'duplicate_image': 'images named by more than one annotation entry, the first one kept',
    'duplicate_image_id': 'COCO images whose `id` another image has too (their annotations '
                          'cannot be told apart), skipped',
    'filename_outside_image_dir': 'VOC <filename>s that are absolute or lead out of the image '
                                  'folder (`../`), not followed: the image is looked for by the '
                                  'XML name only',
    'extension_mismatch': 'images whose content is not what the file suffix says '
                          '(e.g. PNG named .jpg), kept: images are decoded by content',
    'exif_oriented': 'images with an EXIF orientation, kept in the orientation they decode to',
    'exif_boxes_rotated': 'images whose boxes were annotated in the stored (un-rotated) frame, '
                          'boxes moved into the decoded frame',
    'size_mismatch': 'annotations whose <size> differs from the image, boxes kept in image pixels',
    'malformed_row': 'unparsable annotation rows/objects, dropped',
    'unknown_class': 'boxes with a class that is not in the class list, dropped',
    'degenerate_box': 'boxes with zero (< 1 px) width or height, dropped',
    'outside_box': 'boxes entirely outside the image, dropped',
    'clipped_box': 'boxes partly outside the image, clipped to it',
    'duplicate_box': 'exact duplicate boxes (same class and coordinates), dropped',
    'all_boxes_dropped': 'images whose every annotation was dropped (see the cases above); '
                         'skipped (--no-drop-images-with-bad-boxes keeps them as background images)',
})
FILES_IN_SUMMARY = 3  # files named per case in the warning; the report names all of them


class DataIssues:
    """Per-case counts of skipped or repaired data, and the files they were found in.

    Cases and their meaning: ``ISSUE_CASES``.
    """

    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._files: Dict[str, Dict[str, None]] = {}  # case -> files in first-seen order

    def add(self, case: str, count: int = 1, *, source: Optional[Union[str, Path]] = None) -> None:
        """Count ``count`` occurrences of ``case`` (a key of ``ISSUE_CASES``) found in ``source``."""
        if case not in ISSUE_CASES:
            raise KeyError(f'unknown data issue {case!r}; known: {sorted(ISSUE_CASES)}')
        if count:
            self._counts[case] += int(count)
            if source is not None:
                self._files.setdefault(case, {})[printable(source)] = None

    def __getitem__(self, case: str) -> int:
        return self._counts[case]

    def files(self, case: str) -> List[str]:
        """The files ``case`` was found in, in the order they were read."""
        return list(self._files.get(case, ()))

    def as_dict(self) -> dict:
        """The non-zero counts, in the order of ``ISSUE_CASES``."""
        return {case: self._counts[case] for case in ISSUE_CASES if self._counts[case]}

    def summary(self, name: str) -> str:
        """One paragraph naming each non-zero case with its count and first few files (empty
        string when clean)."""
        return self._listing(name, files_per_case=FILES_IN_SUMMARY)

    def report(self, name: str) -> str:
        """:meth:`summary` with every file of each case, one per line (empty string when clean)."""
        return self._listing(name, files_per_case=None)

    def _listing(self, name: str, *, files_per_case: Optional[int]) -> str:
        counts = self.as_dict()
        if not counts:
            return ''
        lines = [f'{printable(name)}: data issues found and handled:']
        for case, count in counts.items():
            lines.append(f'  {count:6d} {ISSUE_CASES[case]} [{case}]')
            files = self.files(case)
            if files_per_case is None:
                lines += [f'         {file}' for file in files]
            elif files:
                hidden = len(files) - files_per_case
                more = f' (+{hidden} more)' if hidden > 0 else ''
                lines.append(f'         e.g. {", ".join(files[:files_per_case])}{more}')
        return '\n'.join(lines)

    def log_summary(self, name: str, logger: str = 'current') -> None:
        """Print :meth:`summary` as a single warning through mmengine's logger (nothing if clean)."""
        summary = self.summary(name)
        if summary:
            print_log(summary, logger=logger, level=30)  # logging.WARNING
