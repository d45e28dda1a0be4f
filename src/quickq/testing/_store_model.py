"""The model the store state machine checks a store against, and the steps it draws.

The keys, values and ranges the machine uses (few and short, so that writes
collide and transactions conflict often), the strategies of transaction steps,
and a plain-dict model of one open transaction: its snapshot with its own
writes applied, and the read conflicts it must or may take. Nothing here
touches a store.
"""

from __future__ import annotations

from typing import Any

import attrs
import hypothesis.strategies as st

from ..stores._protocol import KeyValue, Range, Transaction

#: Every key the machine writes: few and short, so that writes collide, ranges
#: overlap and transactions conflict often.
KEYS: tuple[bytes, ...] = (b"a", b"aa", b"ab", b"b", b"ba", b"bb", b"c")
#: Range bounds: the keys, keys between them, the empty key and the end of the
#: user key space.
BOUNDS: tuple[bytes, ...] = (b"", *KEYS, b"a\x00", b"b\x00", b"\xff")
EVERYTHING: Range = (b"", b"\xff")

keys = st.sampled_from(KEYS)
#: Ranges ``(begin, end)`` with ``begin <= end`` (a few empty); the named tests
#: cover inverted ones.
spans = st.sampled_from([(b, e) for b in BOUNDS for e in BOUNDS if b <= e])
values = st.one_of(st.sampled_from([b"", b"v", b"w"]), st.binary(max_size=10))
"""Values: often one of a few, so that a compare-and-clear often matches."""
deltas = st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1))
limits = st.integers(0, 3)


def _range_read(limits: st.SearchStrategy[int], snapshots: st.SearchStrategy[bool]) -> Any:
    return st.builds(
        lambda span, limit, reverse, snapshot: ("get_range", *span, limit, reverse, snapshot),
        spans,
        limits,
        st.booleans(),
        snapshots,
    )


writes = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("clear"), keys),
    spans.map(lambda span: ("clear_range", *span)),
    st.tuples(st.just("add"), keys, deltas),
    st.tuples(st.just("compare_and_clear"), keys, values),
)
"""A write step of a transaction, as ``(method name, *arguments)``."""
steps = st.one_of(
    st.tuples(st.just("get"), keys, st.booleans()),
    _range_read(limits, st.booleans()),
    writes,
    spans.map(lambda span: ("add_read_conflict_range", *span)),
    st.tuples(st.just("add_read_conflict_key"), keys),
)
"""One step of a transaction, as ``(method name, *arguments)``."""
_race_get = st.tuples(st.just("get"), keys, st.booleans())
_race_range = _range_read(st.sampled_from([1, 0, 2, 0]), st.sampled_from([False, False, True]))
reads = st.integers(0, 3).flatmap(lambda i: _race_get if i == 0 else _race_range)
"""The reads of a race: mostly range reads that take conflicts, often limited."""


def point(key: bytes) -> Range:
    return key, key + b"\x00"


def overlaps(a: Range, b: Range) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def subtract(r: Range, holes: list[Range]) -> list[Range]:
    """The parts of *r* outside every hole."""
    parts = [r]
    for hb, he in holes:
        cut: list[Range] = []
        for b, e in parts:
            if he <= b or e <= hb:
                cut.append((b, e))
                continue
            if b < hb:
                cut.append((b, hb))
            if he < e:
                cut.append((he, e))
        parts = cut
    return parts


def added(value: bytes | None, delta: int) -> bytes:
    """FoundationDB's ADD with an 8-byte little-endian operand (written apart
    from the store's own version on purpose)."""
    base = int.from_bytes((value or b"")[:8].ljust(8, b"\x00"), "little")
    return ((base + delta) % 2**64).to_bytes(8, "little")


def apply_op(data: dict[bytes, bytes], op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "set":
        data[op[1]] = op[2]
    elif kind == "clear":
        data.pop(op[1], None)
    elif kind == "clear_range":
        for key in [k for k in data if op[1] <= k < op[2]]:
            del data[key]
    elif kind == "compare_and_clear":
        if data.get(op[1]) == op[2]:
            del data[op[1]]
    else:  # add
        data[op[1]] = added(data.get(op[1]), op[2])


def model_range(
    data: dict[bytes, bytes], begin: bytes, end: bytes, limit: int, reverse: bool
) -> list[KeyValue]:
    pairs = sorted((k, v) for k, v in data.items() if begin <= k < end)
    if reverse:
        pairs.reverse()
    return pairs[:limit] if limit else pairs


@attrs.define
class ModelTx:
    """The model of one open transaction."""

    tr: Transaction
    read_version: int
    view: dict[bytes, bytes]  # its snapshot, with its own writes applied
    ops: list[tuple[Any, ...]] = attrs.Factory(list)
    # What its own writes fully determine: reads there need no conflict.
    own_keys: set[bytes] = attrs.Factory(set)
    own_ranges: list[Range] = attrs.Factory(list)
    must: list[Range] = attrs.Factory(list)  # read conflicts it must take
    may: list[Range] = attrs.Factory(list)  # read conflicts it may take
    writes: list[Range] = attrs.Factory(list)

    def independent(self, key: bytes) -> bool:
        return key in self.own_keys or any(b <= key < e for b, e in self.own_ranges)

    def holes(self) -> list[Range]:
        return [point(k) for k in self.own_keys] + self.own_ranges

    def write(self, op: tuple[Any, ...], written: Range) -> None:
        apply_op(self.view, op)
        self.ops.append(op)
        self.writes.append(written)
