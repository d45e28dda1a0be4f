"""The ordered, transactional key-value store protocol quickq runs on.

It mirrors FoundationDB's transaction model closely enough that queue logic
proven on one store holds on every store:

- keys and values are ``bytes``, ordered bytewise;
- a transaction reads at one consistent version and sees its own writes;
- commits are strictly serializable by optimistic concurrency: a commit fails
  with :class:`~quickq.ConflictError` when anything it read (except snapshot
  reads) was written by a transaction that committed after it began;
- atomic ``add`` mutates a counter, and atomic ``compare_and_clear`` clears a
  key still holding a given value, without reading it (and without conflicts).

Optional capabilities are separate runtime-checkable protocols
(:class:`SupportsWatch`, :class:`SupportsWatchMany`, :class:`SupportsRetryState`,
:class:`SupportsGetMany`); the queue works without them.

The shapes every store shares live here too: :data:`Range`, the counters
that atomic ``add`` writes (:func:`add_to_counter`, :func:`decode_counter`)
and the :class:`Limits` a store refuses to exceed (how a transaction's size
is counted against them is ``_limits``).
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, Protocol, TypeGuard, TypeVar, cast, runtime_checkable

import attrs

T = TypeVar("T")
KeyValue = tuple[bytes, bytes]


class Transaction(Protocol):
    """One transaction. Unusable after ``commit()``, ``cancel()`` or a failure.

    Point and range reads see this transaction's own writes. Non-snapshot reads
    add read-conflict ranges; writes add write-conflict ranges.
    """

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        """Return the value of *key*, or ``None`` when it is absent."""
        ...

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]:
        """Return the pairs with ``begin <= key < end`` in key order (or reversed).

        ``limit=0`` means no limit. A limited read conflicts only on the part of
        the range it observed, as FoundationDB's does.
        """
        ...

    def set(self, key: bytes, value: bytes) -> None:
        """Write *value* at *key*."""
        ...

    def clear(self, key: bytes) -> None:
        """Remove *key* (no error when it is absent)."""
        ...

    def clear_range(self, begin: bytes, end: bytes) -> None:
        """Remove every key with ``begin <= key < end``."""
        ...

    def add(self, key: bytes, delta: int) -> None:
        """Atomically add *delta* to the little-endian signed 64-bit counter at *key*.

        An absent key counts as zero. Takes no read conflict.
        """
        ...

    def compare_and_clear(self, key: bytes, value: bytes) -> None:
        """FoundationDB's atomic COMPARE_AND_CLEAR: at commit, clear *key* if its
        value is then *value* (else leave it). Takes no read conflict.

        A read of *key* later in the same transaction applies it to the value
        read (over a value this transaction wrote, it applies at once).
        """
        ...

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        """Make the commit fail if anyone commits a write to ``[begin, end)`` first."""
        ...

    def add_read_conflict_key(self, key: bytes) -> None:
        """Make the commit fail if anyone commits a write to *key* first."""
        ...

    async def commit(self) -> None:
        """Commit the writes atomically, or raise and write nothing.

        :class:`~quickq.CommitUnknownResultError` means the outcome is unknown.
        """
        ...

    def cancel(self) -> None:
        """Abandon the transaction without writing; never blocks. Idempotent."""
        ...


class Store(Protocol):
    """An ordered transactional key-value store."""

    def create_transaction(self) -> Transaction:
        """Begin a new transaction. The caller commits or cancels it."""
        ...

    async def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``await fn(tr)`` in a fresh transaction and commit it, retrying.

        Like ``@fdb.transactional``: on a :class:`~quickq.RetryableError` the
        transaction is abandoned and *fn* runs again after a short, growing,
        jittered backoff. *fn* must therefore be safe to run more than once.
        Any other exception is raised with nothing written.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's resources. Transactions must not be used afterwards."""
        ...


@runtime_checkable
class SupportsWatch(Protocol):
    """A store that can wake a task when a key changes (low-latency wake-up)."""

    async def wait_for_change(self, key: bytes, seen: bytes | None) -> None:
        """Return once the value at *key* differs from *seen* (at once if it already does).

        May return spuriously; callers re-check. Callers bound the wait with a
        cancel scope.
        """
        ...


@runtime_checkable
class SupportsWatchMany(Protocol):
    """A store that can wake a task when any of several keys changes, at the
    cost of one watch (see :func:`quickq.stores._watchers.wait_for_any_change`,
    which serves other stores too)."""

    async def wait_for_any_change(self, seen: Mapping[bytes, bytes | None]) -> None:
        """Return once the value at any key of *seen* differs from its value there.

        May return spuriously; callers re-check and bound the wait.
        """
        ...


class RetryState:
    """Values that stay the same on every run of one ``transact`` call's body.

    A body may run again after a conflict or a commit whose result is unknown.
    What it draws at random (ids, tokens) or from the clock must be the same on
    the re-run, or the re-run cannot recognise its own earlier commit: the n-th
    :meth:`draw` of every run returns what the first run's n-th draw made.
    """

    __slots__ = ("_cursor", "_values")

    def __init__(self) -> None:
        self._values: list[object] = []
        self._cursor = 0

    def rewind(self) -> None:
        """Start a new run of the body (the retry loop calls this)."""
        self._cursor = 0

    def draw(self, make: Callable[[], T]) -> T:
        """``make()`` on the first run; on a re-run, what it made then."""
        if self._cursor < len(self._values):
            value = cast(T, self._values[self._cursor])
        else:
            value = make()
            self._values.append(value)
        self._cursor += 1
        return value


@runtime_checkable
class SupportsRetryState(Protocol):
    """A transaction that can carry its ``transact`` call's RetryState.

    quickq's operations joined to such a transaction (``enqueue(..., tr=tr)``)
    draw their ids, receipt tokens and time through it, so that a body re-run
    after commit-unknown-result finds its own earlier commit instead of doing
    the work twice. A transaction made by hand has none: nothing can tell its
    re-runs apart from new calls, and its ``retry_state`` is None.
    """

    retry_state: RetryState | None


@runtime_checkable
class SupportsGetMany(Protocol):
    """A transaction that reads many keys in one round trip (see :func:`get_many`)."""

    async def get_many(
        self, keys: Sequence[bytes], *, snapshot: bool = False
    ) -> list[bytes | None]:
        """The values of *keys*, in order (``None`` for absent ones), read together."""
        ...


async def get_many(
    tr: Transaction, keys: Sequence[bytes], *, snapshot: bool = False
) -> list[bytes | None]:
    """Read *keys* together where *tr* can (one round trip on a cluster, not
    one per key), else one by one. Same conflicts as that many ``get`` calls."""
    many = getattr(tr, "get_many", None)
    if many is not None:
        values: list[bytes | None] = await many(keys, snapshot=snapshot)
        return values
    return [await tr.get(key, snapshot=snapshot) for key in keys]


async def transact(
    store_or_tr: Store | Transaction, fn: Callable[[Transaction], Awaitable[T]]
) -> T:
    """Run *fn* in the caller's open transaction, or in a new one on a store.

    With a transaction, ``fn(tr)`` runs inside it and nothing is committed: the
    caller's commit decides. This is how quickq's operations compose with the
    application's own writes.
    """
    if is_store(store_or_tr):
        return await store_or_tr.transact(fn)
    return await fn(cast(Transaction, store_or_tr))


def is_store(obj: Store | Transaction) -> TypeGuard[Store]:
    """True for a store, False for a transaction (they are told apart by ``transact``)."""
    return hasattr(obj, "create_transaction")


# -- ranges and counters: the shapes every store reads and writes -----------

Range = tuple[bytes, bytes]
"""A key range ``[begin, end)``."""

_INT64: Final = struct.Struct("<q")


def add_to_counter(value: bytes | None, delta: int) -> bytes:
    """FoundationDB's ``ADD`` on a little-endian 64-bit counter (wrapping)."""
    base = 0
    if value:
        base = int.from_bytes(value[:8].ljust(8, b"\x00"), "little", signed=True)
    total = (base + delta + 2**63) % 2**64 - 2**63
    return _INT64.pack(total)


def decode_counter(value: bytes | None) -> int:
    """Read a counter written by ``add`` (absent counts as zero)."""
    return 0 if not value else int.from_bytes(value[:8].ljust(8, b"\x00"), "little", signed=True)


# -- limits: what a store refuses ---------------------------------------------


@attrs.frozen
class Limits:
    """Size and age limits, FoundationDB's by default. Exceeding one writes nothing.

    ``transaction_bytes`` bounds a transaction's size as FoundationDB counts
    it (the rules are in ``quickq.stores._limits``), not only the bytes written.
    """

    key_bytes: int = 10_000
    value_bytes: int = 100_000
    transaction_bytes: int = 10_000_000
    transaction_seconds: float = 5.0
