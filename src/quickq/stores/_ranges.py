"""Key ranges: coalescing, overlap tests by bisection, and a compact encoding.

A commit is checked by testing its read-conflict ranges against the ranges
written by every commit after its read version (memory and SQLite stores).
The SQLite store records each commit's written ranges in one row of its commit
log; most writes are single keys, so a point ``[k, k + b"\\x00")`` is encoded
as the key alone.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator
from typing import Final

from ._protocol import Range

_POINT: Final = 0
_RANGE: Final = 1
_HEAD: Final = struct.Struct("<BI")
_LEN: Final = struct.Struct("<I")


def coalesce(ranges: Iterable[Range]) -> list[Range]:
    """Sort *ranges* and merge the ones that overlap or touch; drop empty ones."""
    out: list[Range] = []
    for begin, end in sorted(ranges):
        if begin >= end:
            continue
        if out and begin <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((begin, end))
    return out


def encode(ranges: Iterable[Range]) -> bytes:
    """Pack *ranges* into one blob (see :func:`decode`)."""
    parts: list[bytes] = []
    for begin, end in ranges:
        if end == begin + b"\x00":
            parts += (_HEAD.pack(_POINT, len(begin)), begin)
        else:
            parts += (_HEAD.pack(_RANGE, len(begin)), begin, _LEN.pack(len(end)), end)
    return b"".join(parts)


def decode(blob: bytes) -> Iterator[Range]:
    """Unpack the ranges :func:`encode` packed."""
    view = memoryview(blob)
    at = 0
    while at < len(view):
        kind, n = _HEAD.unpack_from(view, at)
        at += _HEAD.size
        begin = bytes(view[at : at + n])
        at += n
        if kind == _POINT:
            yield begin, begin + b"\x00"
            continue
        (m,) = _LEN.unpack_from(view, at)
        at += _LEN.size
        yield begin, bytes(view[at : at + m])
        at += m


class RangeSet:
    """A set of key ranges that answers "does ``[begin, end)`` touch any of them?" by bisection."""

    def __init__(self, ranges: Iterable[Range]) -> None:
        merged = coalesce(ranges)
        self._begins = [b for b, _ in merged]
        self._ends = [e for _, e in merged]

    def __bool__(self) -> bool:
        return bool(self._begins)

    def overlaps(self, begin: bytes, end: bytes) -> bool:
        # The ranges are disjoint and sorted, so their ends are sorted too: the
        # first range ending after *begin* is the only candidate.
        i = bisect.bisect_right(self._ends, begin)
        return i < len(self._begins) and self._begins[i] < end and begin < end

    def overlaps_any(self, ranges: Iterable[Range]) -> bool:
        return any(self.overlaps(b, e) for b, e in ranges)
