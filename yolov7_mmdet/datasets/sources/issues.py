"""Counting what was wrong with a dataset, and saying it once.

Real datasets are dirty (background images, orphan label files, zero-size boxes, boxes outside the
image, PNGs named ``.jpg``, unreadable files, EXIF-rotated photos). The readers in this package never
crash on those and never drop or change anything silently: every skip or repair is counted in a
:class:`DataIssues`, and :meth:`DataIssues.log_summary` prints one warning that lists the counts.
"""
from collections import Counter
from types import MappingProxyType
from typing import Mapping

from mmengine.logging import print_log

# case -> what the readers do about it (the words of the warning summary).
ISSUE_CASES: Mapping[str, str] = MappingProxyType({
    'background_image': 'images without labels, kept as background images',
    'missing_image': 'annotation/label files whose image is missing, skipped',
    'orphan_label_file': 'label files with no image, skipped',
    'unreadable_image': 'unreadable image files, skipped',
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
})


class DataIssues:
    """Per-case counts of skipped or repaired data (cases and their meaning: ``ISSUE_CASES``)."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()

    def add(self, case: str, count: int = 1) -> None:
        """Count ``count`` occurrences of ``case`` (a key of ``ISSUE_CASES``)."""
        if case not in ISSUE_CASES:
            raise KeyError(f'unknown data issue {case!r}; known: {sorted(ISSUE_CASES)}')
        if count:
            self._counts[case] += int(count)

    def __getitem__(self, case: str) -> int:
        return self._counts[case]

    def as_dict(self) -> dict:
        """The non-zero counts, in the order of ``ISSUE_CASES``."""
        return {case: self._counts[case] for case in ISSUE_CASES if self._counts[case]}

    def summary(self, name: str) -> str:
        """One paragraph naming each non-zero case with its count (empty string when clean)."""
        counts = self.as_dict()
        if not counts:
            return ''
        lines = [f'{name}: data issues found and handled:']
        lines += [f'  {count:6d} {ISSUE_CASES[case]} [{case}]' for case, count in counts.items()]
        return '\n'.join(lines)

    def log_summary(self, name: str, logger: str = 'current') -> None:
        """Print :meth:`summary` as a single warning through mmengine's logger (nothing if clean)."""
        summary = self.summary(name)
        if summary:
            print_log(summary, logger=logger, level=30)  # logging.WARNING
