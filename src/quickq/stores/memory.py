"""The in-memory reference store: FoundationDB's semantics, in one process.

This is a reference implementation, not a mock. Each transaction reads at the
version current when it began (multi-version reads, so it sees one consistent
snapshot however long it runs), buffers its writes, and commits by optimistic
concurrency: the commit fails with :class:`~quickq.ConflictError` when any key
or range it read without ``snapshot=True`` was written by a transaction that
committed after its read version. Commits apply atomically, so the committed
history is strictly serializable.

Limits (:class:`~quickq.stores.Limits`) are FoundationDB's by default, and
deterministic, seeded fault injection (:class:`Faults`) lets tests provoke
conflicts, commit-unknown-result in both flavours, and latency.
"""

from __future__ import annotations

import heapq
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import anyio
import anyio.lowlevel
from sortedcontainers import SortedDict, SortedSet

from .._exceptions import (
    CommitUnknownResultError,
    ConflictError,
)
from ._buffer import BufferedWrites, Known, Op, WriteBuffer, key_after, resolve
from ._clock import loop_time
from ._faults import CommitFault, Faults
from ._protocol import KeyValue, Limits, Range, Transaction
from ._ranges import RangeSet
from ._retry import run_transaction
from ._watchers import Watchers

T = TypeVar("T")

__all__ = ["CommitFault", "Faults", "MemoryStore", "MemoryTransaction"]


class MemoryStore:
    """An in-process, ordered, transactional key-value store.

    Safe to use from many tasks at once, on trio or asyncio. Watches
    (:class:`~quickq.stores.SupportsWatch`) wake tasks of the same event loop.
    """

    def __init__(
        self,
        *,
        limits: Limits = Limits(),
        faults: Faults = Faults(),
        clock: Callable[[], float] = loop_time,
        retry_limit: int | None = None,
    ) -> None:
        self.limits = limits
        self.faults = faults
        self._clock = clock
        self._retry_limit = retry_limit
        self._rng = random.Random(faults.seed)
        self._scripted: deque[CommitFault | None] = deque()
        self._lock = threading.Lock()
        self._data: SortedDict = SortedDict()  # bytes -> bytes
        # For multi-version reads: key -> [(version, value before that version)].
        self._history: dict[bytes, list[tuple[int, bytes | None]]] = {}
        # The keys in _history that a commit deleted from _data (some may be
        # back): range reads at older versions find them here, in order.
        self._ghosts: SortedSet = SortedSet()
        # Committed writes newer than the oldest live read version, for conflicts.
        self._commits: deque[tuple[int, list[Range], list[bytes]]] = deque()
        self._version = 0
        self._live: dict[int, int] = {}  # transaction serial -> read version
        # Serials of transactions garbage-collected while still open. Their
        # finalizer only appends here (atomic, lock-free): taking the lock from a
        # finalizer could deadlock, since the collector may run while the lock
        # is held by the very thread it interrupts.
        self._abandoned: deque[int] = deque()
        self._serial = 0
        self._watchers = Watchers()  # guarded by _lock
        self._closed = False

    # -- the Store protocol ---------------------------------------------------

    def create_transaction(self) -> MemoryTransaction:
        """As Store.create_transaction: it reads at the version committed now, and
        pins that version until it is committed, cancelled or garbage-collected."""
        started = self._clock()
        with self._lock:
            if self._abandoned:
                self._reap()
            self._serial += 1
            serial = self._serial
            self._live[serial] = self._version
            return MemoryTransaction(self, serial, self._version, started)

    async def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """As Store.transact, giving up after *retry_limit* retries when one was set."""
        return await run_transaction(self.create_transaction, fn, retry_limit=self._retry_limit)

    async def aclose(self) -> None:
        """As Store.aclose; a memory store holds nothing to release, and keeps its data."""
        self._closed = True

    async def wait_for_change(self, key: bytes, seen: bytes | None) -> None:
        """Return once the value at *key* differs from *seen* (SupportsWatch)."""
        with self._lock:
            if self._data.get(key) != seen:
                return
            event = self._watchers.add(key)
        try:
            await event.wait()
        finally:
            with self._lock:
                self._watchers.discard(key, event)

    async def wait_for_any_change(self, seen: Mapping[bytes, bytes | None]) -> None:
        """Return once the value at any key of *seen* differs from it (SupportsWatchMany):
        one event, registered on every key."""
        with self._lock:
            if any(self._data.get(key) != value for key, value in seen.items()):
                return
            event = self._watchers.add_many(seen)
        try:
            await event.wait()
        finally:
            with self._lock:
                self._watchers.discard_many(seen, event)

    # -- test helpers ---------------------------------------------------------

    def inject(self, *faults: CommitFault | None) -> None:
        """Script the outcome of the next commits that write, one fault each.

        ``None`` lets that commit succeed (unless it really conflicts). A commit
        that really conflicts consumes its scripted fault and fails with
        :class:`~quickq.ConflictError` whatever the fault.
        """
        self._scripted.extend(faults)

    def raw_get(self, key: bytes) -> bytes | None:
        """Read the latest committed value, bypassing transactions (tests, debugging)."""
        with self._lock:
            value: bytes | None = self._data.get(key)
            return value

    def raw_set(self, key: bytes, value: bytes | None) -> None:
        """Write (or with ``None`` clear) a key as a commit of its own, bypassing checks."""
        with self._lock:
            self._apply([], [(key, Known(value))], [(key, key_after(key))])

    def raw_items(self) -> list[KeyValue]:
        """Every committed pair, in key order (tests, debugging)."""
        with self._lock:
            return list(self._data.items())

    # -- internals ------------------------------------------------------------

    def _forget(self, serial: int) -> None:
        with self._lock:
            if self._live.pop(serial, None) is not None:
                self._prune()

    def _reap(self) -> None:
        """Forget transactions that were garbage-collected while open (lock held)."""
        while self._abandoned:
            self._live.pop(self._abandoned.popleft(), None)
        self._prune()

    def _prune(self) -> None:
        oldest = min(self._live.values(), default=self._version)
        while self._commits and self._commits[0][0] <= oldest:
            _, _, keys = self._commits.popleft()
            for key in keys:
                entries = self._history.get(key)
                if entries is None:
                    continue
                while entries and entries[0][0] <= oldest:
                    entries.pop(0)
                if not entries:
                    del self._history[key]
                    self._ghosts.discard(key)

    def _value_at(self, key: bytes, version: int) -> bytes | None:
        for written_at, before in self._history.get(key, ()):
            if written_at > version:
                return before
        return self._data.get(key)  # type: ignore[no-any-return]

    def _scan(self, begin: bytes, end: bytes, version: int, reverse: bool) -> Iterator[KeyValue]:
        keys: Iterator[bytes] = self._data.irange(begin, end, (True, False), reverse)
        if self._ghosts:
            merged = heapq.merge(
                keys,
                self._ghosts.irange(begin, end, (True, False), reverse),
                reverse=reverse,
            )
            keys = _unique(merged)
        for key in keys:
            value = self._value_at(key, version)
            if value is not None:
                yield key, value

    def _apply(
        self,
        cleared: list[Range],
        ops: list[tuple[bytes, Op]],
        written: list[Range],
        committer: int | None = None,
    ) -> None:
        """Apply one commit's mutations as a new version (lock held).

        History (and the commit's written ranges, for conflicts) is kept only
        while some transaction other than the *committer* (its serial) is
        open: any later one reads at this version or a newer one.
        """
        self._version += 1
        version = self._version
        data = self._data
        history = self._history
        ghosts = self._ghosts
        live = self._live
        keep_history = len(live) > 1 or (bool(live) and committer not in live)
        touched: list[bytes] = []  # keys given a history entry by this commit

        def remember(key: bytes, before: bytes | None) -> None:
            entries = history.get(key)
            if entries is None:
                history[key] = [(version, before)]
            else:
                entries.append((version, before))
            touched.append(key)

        for begin, end in cleared:
            for key in list(data.irange(begin, end, (True, False))):
                if keep_history:
                    remember(key, data[key])
                    ghosts.add(key)
                del data[key]
        # Keys cleared above may be written again below: remember each key once.
        seen = set(touched) if touched else None
        for key, op in ops:
            old = data.get(key)
            new = op.value if isinstance(op, Known) else resolve(op, old)
            if keep_history and (seen is None or key not in seen):
                remember(key, old)
            if new is None:
                if old is not None:
                    del data[key]
                    if keep_history:
                        ghosts.add(key)
            elif old is None:
                data[key] = new
            else:
                # The key is already in the sorted index: a plain dict store.
                dict.__setitem__(data, key, new)
        if keep_history:
            self._commits.append((version, written, touched))
        self._watchers.wake(cleared, (key for key, _ in ops))

    def _draw_fault(self) -> CommitFault | None:
        if self._scripted:
            return self._scripted.popleft()
        f = self.faults
        if not (f.conflict or f.unknown_applied or f.unknown_not_applied):
            return None
        x = self._rng.random()
        for fault, p in (
            (CommitFault.CONFLICT, f.conflict),
            (CommitFault.UNKNOWN_APPLIED, f.unknown_applied),
            (CommitFault.UNKNOWN_NOT_APPLIED, f.unknown_not_applied),
        ):
            if x < p:
                return fault
            x -= p
        return None

    async def _latency(self, read: bool = False) -> None:
        delay = self.faults.read_latency if read else 0.0
        if self.faults.latency:
            delay += self._rng.uniform(0, self.faults.latency)
        if delay:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()


def _unique(keys: Iterator[bytes]) -> Iterator[bytes]:
    last = None
    for key in keys:
        if key != last:
            yield key
            last = key


class MemoryTransaction(BufferedWrites):
    """A transaction on a :class:`MemoryStore` (see :class:`~quickq.stores.Transaction`)."""

    def __init__(self, store: MemoryStore, serial: int, read_version: int, started: float) -> None:
        self._closed = False  # first: __del__ reads it even if __init__ fails
        self._store = store
        self._serial = serial
        self._read_version = read_version
        self._started = started
        self._clock = store._clock
        self._buffer = WriteBuffer(store.limits)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store._forget(self._serial)

    def __del__(self) -> None:
        # Abandoned without commit or cancel: stop pinning old versions. Only
        # an atomic append here (see MemoryStore._abandoned).
        if not self._closed:
            self._store._abandoned.append(self._serial)

    async def _read(self, key: bytes) -> bytes | None:
        store = self._store
        with store._lock:
            return store._value_at(key, self._read_version)

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        """As Transaction.get, after the read latency the store's Faults ask for."""
        self._check_open()
        await self._store._latency(read=True)
        self._check_open()
        return await self._buffer.get(key, snapshot, self._read)

    async def get_many(
        self, keys: Sequence[bytes], *, snapshot: bool = False
    ) -> list[bytes | None]:
        """The values of *keys*, read together: one latency, under one lock."""
        self._check_open()
        await self._store._latency(read=True)
        self._check_open()
        store = self._store
        version = self._read_version
        lookup = self._buffer.lookup
        with store._lock:
            return [lookup(key, snapshot, lambda k: store._value_at(k, version)) for key in keys]

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]:
        """As Transaction.get_range, after one read latency (Faults); the store's
        lock is held while the range is merged with this transaction's writes."""
        self._check_open()
        await self._store._latency(read=True)
        self._check_open()
        store = self._store
        with store._lock:  # the merge pulls lazily from the scan: no awaits inside
            return self._buffer.read_range(
                begin,
                end,
                limit,
                reverse,
                snapshot,
                store._scan(begin, end, self._read_version, reverse),
            )

    async def commit(self) -> None:
        """As Transaction.commit. A read-only commit returns at once; a commit
        that writes waits out the commit latency and then takes the next scripted
        or drawn fault (Faults, MemoryStore.inject), though a real conflict
        always wins over it."""
        self._check_open()
        store = self._store
        buffer = self._buffer
        if buffer.is_read_only:
            self._close()
            return
        try:
            buffer.check_size()  # reads count too, and may have come last
            await store._latency()
            self._check_open()
            with store._lock:
                if store._abandoned:
                    store._reap()
                # Draw first, so a script of faults is consumed one per writing
                # commit whatever happens; but a real conflict always wins: an
                # "unknown, applied" fault must never apply a conflicting commit.
                fault = store._draw_fault()
                if fault is CommitFault.CONFLICT or self._conflicts(store):
                    raise ConflictError("a value read by this transaction changed before commit")
                if fault is not CommitFault.UNKNOWN_NOT_APPLIED:
                    store._apply(
                        buffer.cleared,
                        list(buffer.ops.items()),
                        buffer.write_conflicts,
                        self._serial,
                    )
            if fault is not None:
                raise CommitUnknownResultError(f"commit result unknown (injected: {fault.value})")
        finally:
            self._close()

    def _conflicts(self, store: MemoryStore) -> bool:
        """Whether a range this transaction read was written by a later commit.

        The smaller side (its reads, or the later commits' writes) is sorted
        and merged, and the other side's ranges bisected into it.
        """
        reads = self._buffer.read_conflicts
        if not reads:
            return False
        writes: list[Range] = []
        for version, written, _ in reversed(store._commits):  # newest first
            if version <= self._read_version:
                break
            writes += written
        if not writes:
            return False
        small, large = (reads, writes) if len(reads) <= len(writes) else (writes, reads)
        return RangeSet(small).overlaps_any(large)

    def cancel(self) -> None:
        """As Transaction.cancel: unpins the read version."""
        self._close()
