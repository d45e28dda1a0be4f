"""FoundationDBTransaction: one FoundationDB transaction behind quickq's
Transaction protocol, with paged async range reads and FoundationDB's size
accounting (``quickq.stores._limits``) checked at each write."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ..._exceptions import CommitUnknownResultError, StoreError, TransactionClosedError
from .._limits import (
    add_bytes,
    check_size,
    check_value,
    clear_bytes,
    clear_range_bytes,
    key_range_bytes,
    range_bytes,
    set_bytes,
)
from .._protocol import KeyValue, RetryState
from . import _errors as codes
from ._errors import map_error
from ._futures import wait_ready

if TYPE_CHECKING:
    from ._store import FoundationDBStore

_UINT64: Final = struct.Struct("<Q")


class FoundationDBTransaction:
    """One FoundationDB transaction behind the :class:`~quickq.stores.Transaction` protocol.

    Unusable after :meth:`commit`, :meth:`cancel` or a failed operation (the
    store's :meth:`~FoundationDBStore.transact` then hands the body a fresh
    view on the reset transaction). Key and value sizes are checked when
    written, so an oversize write fails at its call site. The transaction's
    size is counted as the memory store counts it (``quickq.stores._limits``:
    FoundationDB's rules, one mutation per key), so the write that takes it
    over the limit fails at its call site too; the client's own check at
    commit stays the authority.
    """

    __slots__ = (
        "_closed",
        "_fdb",
        "_prefix",
        "_size",
        "_stacked",
        "_store",
        "_tr",
        "_written",
        "retry_state",
    )

    def __init__(self, store: FoundationDBStore, tr: Any) -> None:
        self._store = store
        self._fdb = store._fdb
        self._prefix = store.prefix
        self._tr = tr
        self._closed = False
        self._size = 0
        self._written: dict[bytes, int] = {}  # key -> bytes of its mutation (one per key)
        # Keys whose ops include a compare-and-clear: FoundationDB keeps each
        # later atomic op there as a mutation of its own (``WriteMap::coalesceOver``).
        self._stacked: set[bytes] = set()
        # The transact call's RetryState (None for a transaction made by hand).
        self.retry_state: RetryState | None = None

    # -- reads ----------------------------------------------------------------

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        """As Transaction.get, on the key under the store's prefix; the first read
        takes the read version."""
        self._check_open()
        full = self._store._key(key)
        future = (self._tr.snapshot if snapshot else self._tr).get(full)
        await wait_ready(future)
        try:
            value = future.value
        except self._fdb.FDBError as exc:
            raise self._failed(exc) from exc
        if not snapshot:
            self._size += key_range_bytes(len(full))
        return None if value is None else bytes(value)

    async def get_many(
        self, keys: Sequence[bytes], *, snapshot: bool = False
    ) -> list[bytes | None]:
        """The values of *keys*: every future issued first, then awaited, so
        the reads travel together (one round trip, not one per key)."""
        self._check_open()
        reader = self._tr.snapshot if snapshot else self._tr
        fulls = [self._store._key(key) for key in keys]
        futures = [reader.get(full) for full in fulls]
        out: list[bytes | None] = []
        for future in futures:
            await wait_ready(future)
            try:
                value = future.value
            except self._fdb.FDBError as exc:
                raise self._failed(exc) from exc
            out.append(None if value is None else bytes(value))
        if not snapshot:
            self._size += sum(key_range_bytes(len(full)) for full in fulls)
        return out

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]:
        """The pairs with ``begin <= key < end``, paged one future at a time.

        Each page is one ``_get_range`` future of the bindings (what their
        blocking iterator uses) in ``want_all`` mode, or ``exact`` mode under a
        limit; the next page starts after the last key seen (before it, when
        reversed) and asks only for the rows still wanted.
        """
        self._check_open()
        if limit < 0:
            raise ValueError("limit must be >= 0")
        lo, hi = self._store._key(begin), self._store._key(end)
        if begin >= end:
            return []
        fdb = self._fdb
        reader = self._tr.snapshot if snapshot else self._tr
        selector = fdb.KeySelector
        first, last = selector.first_greater_or_equal(lo), selector.first_greater_or_equal(hi)
        mode = fdb.StreamingMode.exact if limit else fdb.StreamingMode.want_all
        strip = len(self._prefix)
        out: list[KeyValue] = []
        iteration = 1
        wanted = limit
        while True:
            future = reader._get_range(first, last, wanted, mode, iteration, reverse)
            await wait_ready(future)
            try:
                kvs, count, more = future.wait()
            except fdb.FDBError as exc:
                raise self._failed(exc) from exc
            out.extend((bytes(kv.key)[strip:], bytes(kv.value)) for kv in kvs)
            if not count or not more:
                return self._observed(out, lo, hi, snapshot, stopped=False, reverse=reverse)
            if limit:
                wanted -= count
                if wanted <= 0:
                    return self._observed(out, lo, hi, snapshot, stopped=True, reverse=reverse)
            iteration += 1
            last_key = kvs[-1].key
            if reverse:
                last = selector.first_greater_or_equal(last_key)
            else:
                first = selector.first_greater_than(last_key)

    # -- writes ---------------------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        """As Transaction.set, under the store's prefix; sizes are checked here."""
        self._check_open()
        full = self._store._key(key)
        check_value(value, self._store.limits)
        self._grow(full, set_bytes(len(full), len(value)))
        self._tr.set(full, value)

    def clear(self, key: bytes) -> None:
        """As Transaction.clear, under the store's prefix."""
        self._check_open()
        full = self._store._key(key)
        self._grow(full, clear_bytes(len(full)))
        self._tr.clear(full)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        """As Transaction.clear_range, under the store's prefix; an empty range does nothing."""
        self._check_open()
        lo, hi = self._store._key(begin), self._store._key(end)
        if begin >= end:
            return
        self._size += clear_range_bytes(len(lo), len(hi))
        self._check_size()
        self._tr.clear_range(lo, hi)

    def add(self, key: bytes, delta: int) -> None:
        """FoundationDB's atomic ``ADD`` of *delta* as a little-endian 8-byte operand.

        The sum wraps at 64 bits, like the counter's signed reading.
        """
        self._check_open()
        full = self._store._key(key)
        self._atomic(full, add_bytes(len(full)))
        self._tr.add(full, _UINT64.pack(delta % 2**64))

    def compare_and_clear(self, key: bytes, value: bytes) -> None:
        """FoundationDB's atomic ``COMPARE_AND_CLEAR``: at commit, clears the key
        if its value is then *value*."""
        self._check_open()
        full = self._store._key(key)
        check_value(value, self._store.limits)
        self._atomic(full, set_bytes(len(full), len(value)), stacks=True)
        self._tr.compare_and_clear(full, value)

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        """As Transaction.add_read_conflict_range, under the store's prefix."""
        self._check_open()
        lo, hi = self._store._key(begin), self._store._key(end)
        if begin < end:
            self._size += range_bytes(len(lo), len(hi))
            self._tr.add_read_conflict_range(lo, hi)

    def add_read_conflict_key(self, key: bytes) -> None:
        """As Transaction.add_read_conflict_key, under the store's prefix."""
        self._check_open()
        full = self._store._key(key)
        self._size += key_range_bytes(len(full))
        self._tr.add_read_conflict_key(full)

    # -- ending ---------------------------------------------------------------

    async def commit(self) -> None:
        """As Transaction.commit. A timeout after the commit was sent raises
        CommitUnknownResultError, since the commit may still land."""
        self._check_open()
        self._closed = True
        future = self._tr.commit()
        await wait_ready(future)
        try:
            future.wait()
        except self._fdb.FDBError as exc:
            if exc.code == codes.TRANSACTION_TIMED_OUT:
                # The commit was sent: it may still land (developer-guide.rst).
                raise CommitUnknownResultError(
                    "the transaction timed out after its commit was sent; it may still commit "
                    f"({map_error(exc.code, str(exc))})"
                ) from exc
            raise map_error(exc.code, str(exc)) from exc

    def cancel(self) -> None:
        """As Transaction.cancel: cancels the FoundationDB transaction."""
        if not self._closed:
            self._closed = True
            self._tr.cancel()

    # -- internals ------------------------------------------------------------

    def _retire(self) -> None:
        """Close this view without touching the transaction (transact reuses it)."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise TransactionClosedError("transaction used after commit, cancel or failure")

    def _failed(self, exc: Any) -> StoreError:
        self._closed = True
        return map_error(exc.code, str(exc))

    def _observed(
        self,
        out: list[KeyValue],
        lo: bytes,
        hi: bytes,
        snapshot: bool,
        *,
        stopped: bool,
        reverse: bool,
    ) -> list[KeyValue]:
        """Charge a range read's conflict range (up to the last row when the
        limit stopped it early, as FoundationDB's); return *out*."""
        if not snapshot:
            if stopped and out:
                last = len(self._prefix) + len(out[-1][0])
                begin, end = (last, len(hi)) if reverse else (len(lo), last + 1)
                self._size += range_bytes(begin, end)
            else:
                self._size += range_bytes(len(lo), len(hi))
        return out

    def _atomic(self, full: bytes, nbytes: int, *, stacks: bool = False) -> None:
        """Charge an atomic op: on top of the key's earlier ops once a
        compare-and-clear is among them (an upper bound when they were sets)."""
        if full in self._stacked or (stacks and full in self._written):
            mutation = nbytes - key_range_bytes(len(full))
            self._written[full] += mutation
            self._size += mutation
            self._check_size()
        else:
            self._grow(full, nbytes)
        if stacks:
            self._stacked.add(full)

    def _grow(self, full: bytes, nbytes: int) -> None:
        """Charge a write of *nbytes* (``_limits``) to *full*; FoundationDB keeps
        one mutation per key, so a rewrite replaces the key's earlier one."""
        mutation = nbytes - key_range_bytes(len(full))
        earlier = self._written.get(full)
        self._written[full] = mutation
        self._stacked.discard(full)
        self._size += nbytes if earlier is None else mutation - earlier
        self._check_size()

    def _check_size(self) -> None:
        check_size(self._size, self._store.limits)
