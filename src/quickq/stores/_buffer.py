"""A transaction's pending writes: read-your-writes, limits and conflict ranges.

Shared by the stores that implement transactions in Python (memory, SQLite):
the buffer holds what a transaction wrote until commit, answers reads by
merging those writes over the store's own view, and records the read- and
write-conflict ranges the store checks at commit.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Final

import attrs

from .._exceptions import TransactionClosedError, TransactionTooOldError
from ._limits import (
    COUNTER_BYTES,
    MUTATION_BYTES,
    check_key,
    check_size,
    check_value,
    clear_range_bytes,
    key_range_bytes,
    range_bytes,
)
from ._protocol import KeyValue, Limits, Range, RetryState, add_to_counter


def key_after(key: bytes) -> bytes:
    """The first key after *key* in byte order: ``[key, key_after(key))`` is just *key*."""
    return key + b"\x00"


@attrs.frozen
class Known:
    """The key's value is known to this transaction (``None``: cleared)."""

    value: bytes | None


@attrs.frozen
class Delta:
    """An atomic add on a value this transaction has not read."""

    delta: int


@attrs.frozen
class CompareClear:
    """FoundationDB's atomic COMPARE_AND_CLEAR on a value this transaction has
    not read: at commit, the key is cleared if its value is then *value*."""

    value: bytes


@attrs.frozen
class Stacked:
    """Atomic ops on a value this transaction has not read that FoundationDB
    cannot merge into one (a compare-and-clear beside any other atomic op):
    applied in order at commit, each its own mutation (``WriteMap::coalesceOver``)."""

    ops: tuple[Delta | CompareClear, ...]


Op = Known | Delta | CompareClear | Stacked


def resolve(op: Op, stored: bytes | None) -> bytes | None:
    """The key's value once *op* is applied over *stored* (None: absent)."""
    if isinstance(op, Known):
        return op.value
    if isinstance(op, Delta):
        return add_to_counter(stored, op.delta)
    if isinstance(op, CompareClear):
        return None if stored == op.value else stored
    for step in op.ops:
        stored = resolve(step, stored)
    return stored


_CLEARED: Final = Known(None)
_EMPTY: Final = Known(b"")
"""Shared (they are frozen): most writes are clears and empty index entries."""


def _mutation_bytes(key: bytes, op: Op) -> int:
    """The mutations FoundationDB sends for a key's last op (see ``_limits``)."""
    if isinstance(op, Delta):
        return MUTATION_BYTES + len(key) + COUNTER_BYTES
    if isinstance(op, CompareClear):
        return MUTATION_BYTES + len(key) + len(op.value)
    if isinstance(op, Stacked):
        return sum(_mutation_bytes(key, step) for step in op.ops)
    if op.value is None:
        return MUTATION_BYTES + 2 * len(key) + 1
    return MUTATION_BYTES + len(key) + len(op.value)


def _stack(old: Op | None, new: Delta | CompareClear) -> Op:
    """*new* atomic op after *old*, an atomic op on an unread value (or none),
    as FoundationDB's write map keeps them: adds merge, anything else stacks."""
    if old is None:
        return new
    steps = old.ops if isinstance(old, Stacked) else (old,)
    top = steps[-1]
    if isinstance(top, Delta) and isinstance(new, Delta):
        return _unstack((*steps[:-1], Delta(top.delta + new.delta)))
    return _unstack((*steps, new))


def _unstack(steps: tuple[Delta | CompareClear, ...]) -> Op:
    return steps[0] if len(steps) == 1 else Stacked(steps)


class Ops(dict[bytes, Op]):
    """A transaction's last op per key: a dict (a write is a dict store), with
    its keys sorted only when a range needs them, then kept sorted."""

    __slots__ = ("sorted",)

    def __init__(self) -> None:
        super().__init__()
        self.sorted: list[bytes] | None = None
        """The keys in order, once a range needed them (None: not sorted yet)."""

    def sorted_keys(self) -> list[bytes]:
        if self.sorted is None:
            self.sorted = sorted(self)
        return self.sorted

    def irange(
        self,
        begin: bytes,
        end: bytes,
        inclusive: tuple[bool, bool] = (True, False),
        reverse: bool = False,
    ) -> list[bytes]:
        """The keys in ``[begin, end)``, in order (the half-open range only)."""
        if inclusive != (True, False):
            raise ValueError("only half-open ranges")
        keys = self.sorted_keys()
        got = keys[bisect.bisect_left(keys, begin) : bisect.bisect_left(keys, end)]
        if reverse:
            got.reverse()
        return got

    def pop_range(self, begin: bytes, end: bytes) -> list[tuple[bytes, Op]]:
        """Remove and return the ops in ``[begin, end)``."""
        keys = self.sorted_keys()
        lo, hi = bisect.bisect_left(keys, begin), bisect.bisect_left(keys, end)
        out = [(key, self.pop(key)) for key in keys[lo:hi]]
        del keys[lo:hi]
        return out


class WriteBuffer:
    """The uncommitted writes and conflict ranges of one transaction.

    ``size`` is the transaction's size as FoundationDB counts it (an upper
    bound, see ``_limits``); writes that take it over the limit raise at once,
    reads only add to it, and ``check_size`` at commit sees the total.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.ops = Ops()
        self.cleared: list[Range] = []
        self.read_conflicts: list[Range] = []
        self.write_conflicts: list[Range] = []
        self.size = 0

    # -- writes ---------------------------------------------------------------

    def _check_key(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) > self.limits.key_bytes:
            check_key(key, self.limits)  # raises, or passes a subclass of bytes

    def _grow(self, nbytes: int) -> None:
        self.size += nbytes
        self.check_size()

    def check_size(self) -> None:
        """Raise TransactionTooLargeError if the transaction is over the limit."""
        check_size(self.size, self.limits)

    def _write(self, key: bytes, op: Op, cost: int) -> None:
        """Record *op* as the key's last op, charging what it changes (*cost*:
        its mutation, ``_mutation_bytes(key, op)``, passed in by the hot callers)."""
        ops = self.ops
        old = ops.get(key)
        ops[key] = op
        if old is None:
            cost += key_range_bytes(len(key))  # the key's write conflict, once
            if ops.sorted is not None:
                bisect.insort(ops.sorted, key)
        else:
            cost -= _mutation_bytes(key, old)  # FoundationDB keeps one mutation per key
        self.size += cost
        if self.size > self.limits.transaction_bytes:
            self.check_size()

    def in_cleared(self, key: bytes) -> bool:
        return bool(self.cleared) and any(b <= key < e for b, e in self.cleared)

    def set(self, key: bytes, value: bytes) -> None:
        self._check_key(key)
        if type(value) is not bytes or len(value) > self.limits.value_bytes:
            check_value(value, self.limits)
        self._write(key, Known(value) if value else _EMPTY, MUTATION_BYTES + len(key) + len(value))
        self.write_conflicts.append((key, key + b"\x00"))

    def clear(self, key: bytes) -> None:
        self._check_key(key)
        self._write(key, _CLEARED, MUTATION_BYTES + 2 * len(key) + 1)
        self.write_conflicts.append((key, key + b"\x00"))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self._check_key(begin)
        self._check_key(end)
        if begin >= end:
            return
        removed = 0
        for key, op in self.ops.pop_range(begin, end):
            removed += _mutation_bytes(key, op)
        # Their write conflicts stay charged: an upper bound (FoundationDB merges them).
        self._grow(clear_range_bytes(len(begin), len(end)) - removed)
        self.cleared.append((begin, end))
        self.write_conflicts.append((begin, end))

    def add(self, key: bytes, delta: int) -> None:
        self._check_key(key)
        self._atomic(key, Delta(delta))

    def compare_and_clear(self, key: bytes, value: bytes) -> None:
        self._check_key(key)
        check_value(value, self.limits)
        self._atomic(key, CompareClear(value))

    def _atomic(self, key: bytes, atomic: Delta | CompareClear) -> None:
        """Record an atomic op: applied at once over a value this transaction
        decided (FoundationDB resolves it there too), else kept for commit."""
        op = self.ops.get(key)
        if isinstance(op, Known):
            new: Op = Known(resolve(atomic, op.value))
        elif op is None and self.in_cleared(key):
            new = Known(resolve(atomic, None))
        else:
            new = _stack(op, atomic)
        self._write(key, new, _mutation_bytes(key, new))
        self.write_conflicts.append((key, key_after(key)))

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        if begin < end:
            self._read_conflict(begin, end)

    def _read_conflict(self, begin: bytes, end: bytes) -> None:
        """Record a read conflict range and charge it, split as FoundationDB
        splits it around the keys and ranges this transaction wrote."""
        self.read_conflicts.append((begin, end))
        cost = range_bytes(len(begin), len(end))
        ops = self.ops
        if ops:
            if end == begin + b"\x00":  # one key: no need to sort the writes
                written = [begin] if begin in ops else []
            else:
                written = ops.irange(begin, end)
            for key in written:
                if isinstance(ops[key], Known):  # an atomic op depends on the read: no split
                    cost += key_range_bytes(len(key))
        for b, e in self.cleared:
            if b < end and begin < e:
                cost += range_bytes(len(b), len(e))
        self.size += cost

    # -- reads ----------------------------------------------------------------

    async def get(
        self,
        key: bytes,
        snapshot: bool,
        read: Callable[[bytes], Awaitable[bytes | None]],
    ) -> bytes | None:
        """Read *key* through the buffer; *read* fetches the store's own value."""
        known, value, op = self._written_value(key)
        if known:
            return value
        return self._observed(key, await read(key), op, snapshot)

    def lookup(
        self, key: bytes, snapshot: bool, read: Callable[[bytes], bytes | None]
    ) -> bytes | None:
        """:meth:`get` with a synchronous *read* of the store's own value."""
        known, value, op = self._written_value(key)
        if known:
            return value
        return self._observed(key, read(key), op, snapshot)

    def _written_value(self, key: bytes) -> tuple[bool, bytes | None, Op | None]:
        """(True, value) when this transaction's writes decide *key*'s value."""
        self._check_key(key)
        op = self.ops.get(key)
        if isinstance(op, Known):
            return True, op.value, op
        if op is None and self.in_cleared(key):
            return True, None, None
        return False, None, op

    def _observed(
        self, key: bytes, stored: bytes | None, op: Op | None, snapshot: bool
    ) -> bytes | None:
        """*key*'s value read from the store: its conflict recorded, atomic ops applied."""
        if not snapshot:
            self.read_conflicts.append((key, key_after(key)))
            self.size += key_range_bytes(len(key))
        return stored if op is None else resolve(op, stored)

    def read_range(
        self,
        begin: bytes,
        end: bytes,
        limit: int,
        reverse: bool,
        snapshot: bool,
        stored: Iterable[KeyValue],
    ) -> list[KeyValue]:
        """Merge the store's pairs in ``[begin, end)`` (from *stored*, in the
        requested order, pulled lazily and only as far as needed) with this
        transaction's writes; record the observed conflict range."""
        if limit < 0:
            raise ValueError("limit must be >= 0")
        if begin >= end:
            return []
        out = self._merge(begin, end, limit, reverse, iter(stored))
        if not snapshot:
            if limit and len(out) == limit:
                # Stopped early: conflict only on what was observed, as FoundationDB.
                last = out[-1][0]
                observed = (last, end) if reverse else (begin, key_after(last))
            else:
                observed = (begin, end)
            self._read_conflict(*observed)
        return out

    def _merge(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, stored: Iterator[KeyValue]
    ) -> list[KeyValue]:
        ops = self.ops
        cleared = self.cleared
        keys = ops.irange(begin, end, reverse=reverse) if ops else []
        if not keys and not cleared:  # nothing written here: the store's pairs as they are
            return list(itertools.islice(stored, limit)) if limit else list(stored)
        out: list[KeyValue] = []
        i, n = 0, len(keys)
        for key, value in stored:
            if cleared and self.in_cleared(key):
                continue
            # Keys only this transaction wrote come first.
            while i < n and (keys[i] > key if reverse else keys[i] < key):
                mine = resolve(ops[keys[i]], None)
                if mine is not None:
                    out.append((keys[i], mine))
                    if len(out) == limit:
                        return out
                i += 1
            if i < n and keys[i] == key:
                merged = resolve(ops[key], value)
                i += 1
                if merged is None:
                    continue
                value = merged
            out.append((key, value))
            if len(out) == limit:
                return out
        for key in keys[i:]:
            mine = resolve(ops[key], None)
            if mine is not None:
                out.append((key, mine))
                if len(out) == limit:
                    break
        return out

    # -- commit ---------------------------------------------------------------

    @property
    def is_read_only(self) -> bool:
        return not self.write_conflicts


class BufferedWrites:
    """The write half of a Transaction, for stores that buffer writes in a
    WriteBuffer, and its open and age checks.

    Writes never touch the store before commit. Subclasses set ``_buffer``,
    ``_closed``, ``_started`` and ``_clock`` (the store's clock of transaction
    ages), and define ``_close``.
    """

    _buffer: WriteBuffer
    _closed: bool
    _started: float
    _clock: Callable[[], float]
    retry_state: RetryState | None = None
    """The ``transact`` call's RetryState (None for a transaction made by hand)."""

    def _close(self) -> None:
        raise NotImplementedError

    def _check_writable(self) -> None:
        """For buffered writes, which never touch the store: no age check (like
        FoundationDB, an old transaction fails at its next read or its commit)."""
        if self._closed:
            raise TransactionClosedError("transaction used after commit, cancel or failure")

    def _check_open(self) -> None:
        """For reads and commits: open, and younger than the age limit."""
        self._check_writable()
        limit = self._buffer.limits.transaction_seconds
        if self._clock() - self._started > limit:
            self._close()
            raise TransactionTooOldError(f"transaction older than {limit} s")

    def set(self, key: bytes, value: bytes) -> None:
        """As Transaction.set: buffered until commit; a key or value over the
        limits, or a write that takes the transaction over its size, raises at once."""
        if self._closed:
            self._check_writable()
        self._buffer.set(key, value)

    def clear(self, key: bytes) -> None:
        """As Transaction.clear: buffered until commit."""
        if self._closed:
            self._check_writable()
        self._buffer.clear(key)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        """As Transaction.clear_range: buffered until commit; an empty range does nothing."""
        self._check_writable()
        self._buffer.clear_range(begin, end)

    def add(self, key: bytes, delta: int) -> None:
        """As Transaction.add: buffered until commit (added to any value this
        transaction wrote at *key*), and takes no read conflict."""
        if self._closed:
            self._check_writable()
        self._buffer.add(key, delta)

    def compare_and_clear(self, key: bytes, value: bytes) -> None:
        """As Transaction.compare_and_clear: buffered until commit (applied at
        once to any value this transaction wrote at *key*), no read conflict."""
        self._check_writable()
        self._buffer.compare_and_clear(key, value)

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        """As Transaction.add_read_conflict_range: checked at commit."""
        self._check_writable()
        self._buffer.add_read_conflict_range(begin, end)

    def add_read_conflict_key(self, key: bytes) -> None:
        """As Transaction.add_read_conflict_key: checked at commit."""
        self._check_writable()
        self._buffer.add_read_conflict_range(key, key_after(key))
