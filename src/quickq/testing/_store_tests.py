"""The store conformance suite: a pytest base class every store's tests subclass.

A store passes when every test here passes: the promises of
:class:`~quickq.stores.Store` and :class:`~quickq.stores.Transaction`, each in a
test named after it, plus :class:`~quickq.testing.StoreMachine`'s interleaved
transactions checked against a model.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import AsyncIterator
from typing import ClassVar

import anyio
import anyio.to_thread
import pytest
from trio.testing import MockClock

from .._exceptions import (
    CommitUnknownResultError,
    ConflictError,
    KeyTooLargeError,
    RetryableError,
    TransactionClosedError,
    TransactionTooLargeError,
    TransactionTooOldError,
    ValueTooLargeError,
)
from ..stores._faults import CommitFault
from ..stores._protocol import (
    Limits,
    RetryState,
    Store,
    SupportsRetryState,
    SupportsWatch,
    Transaction,
    get_many,
)
from ._store_machine import run_store_machine

__all__ = ["StoreTests"]

_I64 = struct.Struct("<q")
K = b"k"  # the key most tests work on
OUT = b"x"  # a key outside every range the tests read, to make a commit write


def counter(n: int) -> bytes:
    """The bytes of a 64-bit little-endian counter (what ``Transaction.add`` writes)."""
    return _I64.pack(n)


async def _set_and_commit(tr: Transaction, key: bytes, value: bytes) -> None:
    """Set and commit: a store may refuse a bad write at once or at commit."""
    tr.set(key, value)
    await tr.commit()


class StoreTests:
    """Conformance tests for a :class:`~quickq.stores.Store`; subclass to run them.

    A subclass provides:

    - an async-generator pytest fixture ``store`` yielding a fresh, empty store
      (and closing it afterwards);
    - :meth:`backdoor_get` and :meth:`backdoor_set`, which read and write
      committed data *without* the store under test (for the memory store:
      ``raw_get`` and ``raw_set``). They run in the event loop's thread;
    - optionally, class attributes describing what the store cannot do:
      :attr:`limits`, :attr:`supports_fault_injection`, :attr:`supports_mock_clock`;
      and :meth:`inject_commit_fault` when its fault injection is not
      ``store.inject(fault)``.

    The tests run under anyio's pytest plugin, on every backend the
    ``anyio_backend`` fixture names. Keys are short byte strings in
    ``[b"", b"\\xff")``, so the store must own that whole key space.
    """

    pytestmark = pytest.mark.anyio

    limits: ClassVar[Limits] = Limits()
    """The limits the store enforces (FoundationDB's by default)."""
    supports_fault_injection: ClassVar[bool] = True
    """The store can script its next writing commit's outcome (:meth:`inject_commit_fault`)."""
    supports_mock_clock: ClassVar[bool] = True
    """Transaction age is measured on the event loop's clock (``anyio.current_time``),
    so trio's ``MockClock`` ages transactions without real sleeping."""

    # -- what a subclass provides ---------------------------------------------

    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        """Override: yield a fresh, empty store, and close it afterwards."""
        raise NotImplementedError("a StoreTests subclass overrides the `store` fixture")
        yield  # noqa: PT022  (an async generator, like its overrides)

    def backdoor_get(self, store: Store, key: bytes) -> bytes | None:
        """Override: the committed value at *key*, read without *store*."""
        raise NotImplementedError

    def backdoor_set(self, store: Store, key: bytes, value: bytes | None) -> None:
        """Override: commit *value* at *key* (``None``: clear it) without *store*."""
        raise NotImplementedError

    def inject_commit_fault(self, store: Store, fault: CommitFault) -> None:
        """Make the store's next commit that writes fail with *fault*.

        The contract the suite checks: that commit reports the fault (``CONFLICT``:
        :class:`~quickq.ConflictError`, nothing written; ``UNKNOWN_APPLIED``:
        :class:`~quickq.CommitUnknownResultError`, writes applied;
        ``UNKNOWN_NOT_APPLIED``: the same error, nothing written), except that a
        commit which really conflicts fails with ``ConflictError`` and writes
        nothing. The default calls ``store.inject(fault)``.
        """
        store.inject(fault)  # type: ignore[attr-defined]

    # -- helpers ----------------------------------------------------------------

    def _need_faults(self) -> None:
        if not self.supports_fault_injection:
            pytest.skip("this store has no fault injection")

    async def _commit_write(self, store: Store, key: bytes, value: bytes) -> None:
        """Commit one write through the store, as a concurrent transaction."""
        tr = store.create_transaction()
        tr.set(key, value)
        await tr.commit()

    async def _outcome_after_write(self, store: Store, reader: Transaction, key: bytes) -> bool:
        """Commit a write to *key* in another transaction, then commit *reader*
        (which also writes, so it is checked); True when *reader* conflicted."""
        await self._commit_write(store, key, b"concurrent")
        reader.set(OUT, b"reader")
        try:
            await reader.commit()
        except ConflictError:
            assert self.backdoor_get(store, OUT) is None
            return True
        assert self.backdoor_get(store, OUT) == b"reader"
        return False

    # -- basics -----------------------------------------------------------------

    async def test_commit_writes_and_reads_see_committed_data(self, store: Store) -> None:
        tr = store.create_transaction()
        tr.set(b"a", b"1")
        tr.set(b"empty", b"")
        assert self.backdoor_get(store, b"a") is None  # invisible until commit
        await tr.commit()
        assert self.backdoor_get(store, b"a") == b"1"
        assert self.backdoor_get(store, b"empty") == b""  # an empty value is a value

        self.backdoor_set(store, b"b", b"2")
        tr = store.create_transaction()
        assert await tr.get(b"b") == b"2"
        assert await tr.get(b"empty") == b""
        assert await tr.get(b"absent") is None
        assert await tr.get_range(b"", b"\xff") == [(b"a", b"1"), (b"b", b"2"), (b"empty", b"")]
        tr.cancel()

    async def test_cancel_discards_writes(self, store: Store) -> None:
        tr = store.create_transaction()
        tr.set(K, b"1")
        tr.cancel()
        tr.cancel()  # idempotent
        assert self.backdoor_get(store, K) is None

    async def test_clear(self, store: Store) -> None:
        self.backdoor_set(store, b"a", b"1")
        self.backdoor_set(store, b"b", b"2")
        tr = store.create_transaction()
        tr.clear(b"a")
        tr.clear(b"absent")  # no error
        await tr.commit()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"b") == b"2"

    async def test_clear_range_removes_begin_inclusive_end_exclusive(self, store: Store) -> None:
        for key in (b"a", b"b", b"ba", b"b\xff", b"c", b"d"):
            self.backdoor_set(store, key, key)
        tr = store.create_transaction()
        tr.clear_range(b"b", b"c")
        tr.clear_range(b"d", b"d")  # empty: no-op
        await tr.commit()
        for key, kept in ((b"a", True), (b"b", False), (b"ba", False), (b"b\xff", False)):
            assert (self.backdoor_get(store, key) is not None) == kept, key
        assert self.backdoor_get(store, b"c") == b"c"
        assert self.backdoor_get(store, b"d") == b"d"

    async def test_get_range_reverse_and_limit(self, store: Store) -> None:
        pairs = [(k, k.upper()) for k in (b"a", b"b", b"c", b"d", b"e")]
        for key, value in pairs:
            self.backdoor_set(store, key, value)
        tr = store.create_transaction()
        assert await tr.get_range(b"a", b"f") == pairs
        assert await tr.get_range(b"b", b"d") == pairs[1:3]  # begin in, end out
        assert await tr.get_range(b"a", b"f", limit=2) == pairs[:2]
        assert await tr.get_range(b"a", b"f", reverse=True) == pairs[::-1]
        assert await tr.get_range(b"a", b"f", limit=2, reverse=True) == pairs[:2:-1]
        assert await tr.get_range(b"b", b"d", limit=1, reverse=True) == [pairs[2]]
        assert await tr.get_range(b"a", b"f", limit=99) == pairs
        assert await tr.get_range(b"a", b"f", limit=0) == pairs  # 0: no limit
        assert await tr.get_range(b"c", b"c") == []
        assert await tr.get_range(b"d", b"b") == []
        assert await tr.get_range(b"bb", b"bz") == []
        tr.cancel()

    async def test_atomic_add(self, store: Store) -> None:
        self.backdoor_set(store, b"n", counter(10))
        self.backdoor_set(store, b"max", counter(2**63 - 1))
        tr = store.create_transaction()
        tr.add(b"n", 5)
        tr.add(b"n", -20)
        tr.add(b"absent", 3)  # an absent counter counts as zero
        tr.add(b"max", 1)  # wraps around, like FoundationDB's ADD
        await tr.commit()
        assert self.backdoor_get(store, b"n") == counter(-5)
        assert self.backdoor_get(store, b"absent") == counter(3)
        assert self.backdoor_get(store, b"max") == counter(-(2**63))

    async def test_atomic_adds_do_not_conflict(self, store: Store) -> None:
        one, two = store.create_transaction(), store.create_transaction()
        await one.get(OUT)  # both hold a read version before either commits
        await two.get(OUT)
        one.add(K, 1)
        two.add(K, 2)
        await one.commit()
        await two.commit()  # add takes no read conflict
        assert self.backdoor_get(store, K) == counter(3)

    async def test_blind_writes_do_not_conflict(self, store: Store) -> None:
        one, two = store.create_transaction(), store.create_transaction()
        await one.get(OUT)
        await two.get(OUT)
        one.set(K, b"1")
        two.set(K, b"2")
        await one.commit()
        await two.commit()  # it read nothing: the last commit wins
        assert self.backdoor_get(store, K) == b"2"

    # -- conflicts ---------------------------------------------------------------

    async def test_normal_read_conflicts_with_concurrent_committed_write(
        self, store: Store
    ) -> None:
        self.backdoor_set(store, K, b"0")
        reader = store.create_transaction()
        assert await reader.get(K) == b"0"
        assert await self._outcome_after_write(store, reader, K)

    async def test_normal_read_of_absent_key_conflicts_with_its_insertion(
        self, store: Store
    ) -> None:
        reader = store.create_transaction()
        assert await reader.get(K) is None
        assert await self._outcome_after_write(store, reader, K)

    async def test_snapshot_read_does_not_conflict(self, store: Store) -> None:
        self.backdoor_set(store, K, b"0")
        reader = store.create_transaction()
        assert await reader.get(K, snapshot=True) == b"0"
        assert await reader.get_range(b"a", b"z", snapshot=True) == [(K, b"0")]
        assert not await self._outcome_after_write(store, reader, K)

    async def test_get_many_reads_like_gets_and_conflicts_like_them(self, store: Store) -> None:
        # Through quickq.stores.get_many: the store's own get_many if it has one.
        self.backdoor_set(store, b"ga", b"1")
        self.backdoor_set(store, b"gb", b"2")
        reader = store.create_transaction()
        reader.set(b"gb", b"mine")
        reader.add(b"gc", 5)
        values = await get_many(reader, [b"ga", b"gb", b"gc", b"gd"])
        assert values == [b"1", b"mine", struct.pack("<q", 5), None]
        snapshot = await get_many(reader, [b"ge"], snapshot=True)
        assert snapshot == [None]
        assert await self._outcome_after_write(store, reader, b"gd")  # read: conflicts
        reader = store.create_transaction()
        assert await get_many(reader, [b"ge"], snapshot=True) == [None]
        assert not await self._outcome_after_write(store, reader, b"ge")

    async def test_range_read_conflicts_with_insertion_into_the_range(self, store: Store) -> None:
        self.backdoor_set(store, b"ka", b"1")
        reader = store.create_transaction()
        assert await reader.get_range(b"k", b"l") == [(b"ka", b"1")]
        assert await self._outcome_after_write(store, reader, b"kz")  # a phantom

    @pytest.mark.parametrize(
        ("reverse", "written", "conflicts"),
        [
            (False, b"k", True),  # begin
            (False, b"k0", True),  # between begin and the key read
            (False, b"ka", True),  # the key read
            (False, b"ka\x00", False),  # just past what it observed
            (False, b"kc", False),  # the next key, never observed
            (True, b"kz", True),
            (True, b"kc", True),
            (True, b"kb\xff", False),
            (True, b"ka", False),
        ],
    )
    async def test_limited_range_read_conflicts_only_on_what_it_observed(
        self, store: Store, reverse: bool, written: bytes, conflicts: bool
    ) -> None:
        # limit=1 reading ka conflicts on [k, ka\x00) only; reversed, reading kc
        # conflicts on [kc, l) only, as FoundationDB's range reads do.
        self.backdoor_set(store, b"ka", b"1")
        self.backdoor_set(store, b"kc", b"3")
        reader = store.create_transaction()
        seen = await reader.get_range(b"k", b"l", limit=1, reverse=reverse)
        assert seen == ([(b"kc", b"3")] if reverse else [(b"ka", b"1")])
        assert await self._outcome_after_write(store, reader, written) == conflicts

    async def test_add_read_conflict_key(self, store: Store) -> None:
        reader = store.create_transaction()
        await reader.get(OUT, snapshot=True)
        reader.add_read_conflict_key(K)
        assert await self._outcome_after_write(store, reader, K)

        reader = store.create_transaction()
        await reader.get(OUT, snapshot=True)
        reader.add_read_conflict_key(K)
        assert not await self._outcome_after_write(store, reader, K + b"\x00")

    @pytest.mark.parametrize(
        ("written", "conflicts"),
        [(b"b", True), (b"bzz", True), (b"a\xff", False), (b"c", False)],
    )
    async def test_add_read_conflict_range(
        self, store: Store, written: bytes, conflicts: bool
    ) -> None:
        reader = store.create_transaction()
        await reader.get(OUT, snapshot=True)
        reader.add_read_conflict_range(b"b", b"c")
        assert await self._outcome_after_write(store, reader, written) == conflicts

    # -- read-your-writes ---------------------------------------------------------

    async def test_read_your_writes_point(self, store: Store) -> None:
        self.backdoor_set(store, b"a", b"old")
        self.backdoor_set(store, b"n", counter(10))
        tr = store.create_transaction()
        tr.set(b"a", b"new")
        assert await tr.get(b"a") == b"new"
        tr.clear(b"a")
        assert await tr.get(b"a") is None
        tr.set(b"b", b"2")
        assert await tr.get(b"b") == b"2"
        assert await tr.get(b"b", snapshot=True) == b"2"
        tr.add(b"n", 5)  # atomic add over a base this transaction never read
        assert await tr.get(b"n") == counter(15)
        tr.add(b"n", 1)
        assert await tr.get(b"n") == counter(16)
        tr.add(b"m", 3)  # over an absent key
        assert await tr.get(b"m") == counter(3)
        await tr.commit()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"n") == counter(16)
        assert self.backdoor_get(store, b"m") == counter(3)

    async def test_read_your_writes_range(self, store: Store) -> None:
        for key in (b"a", b"b", b"c"):
            self.backdoor_set(store, key, key)
        self.backdoor_set(store, b"d", counter(1))
        tr = store.create_transaction()
        tr.set(b"b", b"B")
        tr.clear(b"c")
        tr.set(b"bb", b"BB")
        tr.add(b"d", 1)  # over an unknown base
        expected = [(b"a", b"a"), (b"b", b"B"), (b"bb", b"BB"), (b"d", counter(2))]
        assert await tr.get_range(b"a", b"e") == expected
        assert await tr.get_range(b"a", b"e", snapshot=True) == expected
        assert await tr.get_range(b"a", b"e", reverse=True) == expected[::-1]
        assert await tr.get_range(b"a", b"e", limit=2) == expected[:2]
        assert await tr.get_range(b"a", b"e", limit=2, reverse=True) == expected[:1:-1]
        assert await tr.get_range(b"b", b"c") == expected[1:3]
        await tr.commit()
        assert self.backdoor_get(store, b"c") is None
        assert self.backdoor_get(store, b"d") == counter(2)

    async def test_read_your_writes_clear_range_then_set(self, store: Store) -> None:
        for key in (b"a", b"b", b"c"):
            self.backdoor_set(store, key, key)
        tr = store.create_transaction()
        tr.clear_range(b"a", b"c")
        assert await tr.get_range(b"", b"\xff") == [(b"c", b"c")]
        tr.set(b"b", b"B")
        tr.add(b"a", 7)  # after a clear, the base is known: zero
        assert await tr.get(b"a") == counter(7)
        assert await tr.get_range(b"", b"\xff") == [(b"a", counter(7)), (b"b", b"B"), (b"c", b"c")]
        assert await tr.get_range(b"", b"\xff", limit=1, reverse=True) == [(b"c", b"c")]
        await tr.commit()
        assert self.backdoor_get(store, b"a") == counter(7)
        assert self.backdoor_get(store, b"b") == b"B"

    # -- MVCC -------------------------------------------------------------------------

    async def test_transaction_sees_one_consistent_snapshot(self, store: Store) -> None:
        self.backdoor_set(store, b"a", b"1")
        self.backdoor_set(store, b"b", b"1")
        reader = store.create_transaction()
        assert await reader.get(b"a") == b"1"  # its read version is now fixed
        writer = store.create_transaction()
        writer.set(b"a", b"2")
        writer.set(b"b", b"2")
        writer.set(b"c", b"2")
        await writer.commit()
        self.backdoor_set(store, b"d", b"2")
        # Everything the reader reads afterwards is still as of its read version.
        assert await reader.get(b"b") == b"1"
        assert await reader.get(b"b", snapshot=True) == b"1"
        assert await reader.get(b"c") is None
        assert await reader.get_range(b"", b"\xff") == [(b"a", b"1"), (b"b", b"1")]
        assert await reader.get_range(b"", b"\xff", reverse=True, limit=1) == [(b"b", b"1")]
        reader.cancel()
        fresh = store.create_transaction()
        assert await fresh.get_range(b"", b"\xff") == [(k, b"2") for k in (b"a", b"b", b"c", b"d")]
        fresh.cancel()

    # -- transact -------------------------------------------------------------------

    async def test_transact_retries_conflicting_body_and_succeeds(self, store: Store) -> None:
        self.backdoor_set(store, K, b"0")
        attempts = 0

        async def body(tr: Transaction) -> int:
            nonlocal attempts
            attempts += 1
            value = await tr.get(K)
            assert value is not None
            if attempts == 1:  # a concurrent writer commits first
                await self._commit_write(store, K, b"10")
            tr.set(K, value + b"+")
            return attempts

        assert await store.transact(body) == 2
        assert self.backdoor_get(store, K) == b"10+"

    async def test_transact_does_not_retry_other_errors(self, store: Store) -> None:
        attempts = 0

        async def body(tr: Transaction) -> None:
            nonlocal attempts
            attempts += 1
            tr.set(K, b"1")
            raise LookupError("not retryable")

        with pytest.raises(LookupError):
            await store.transact(body)
        assert attempts == 1
        assert self.backdoor_get(store, K) is None

    async def test_concurrent_tasks_serialize(self, store: Store) -> None:
        async def bump(tr: Transaction) -> None:
            value = await tr.get(K)
            tr.set(K, b"%d" % (int(value or b"0") + 1))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(store.transact, bump)
        assert self.backdoor_get(store, K) == b"10"  # no lost update

    # -- limits ---------------------------------------------------------------------

    async def test_oversize_value_is_refused_and_nothing_written(self, store: Store) -> None:
        big = b"v" * (self.limits.value_bytes + 1)

        async def body(tr: Transaction) -> None:
            tr.set(b"a", b"1")
            tr.set(b"b", big)  # the store may refuse here or at commit

        with pytest.raises(ValueTooLargeError):
            await store.transact(body)
        tr = store.create_transaction()
        tr.set(b"a", b"1")
        with pytest.raises(ValueTooLargeError):
            await _set_and_commit(tr, b"b", big)
        tr.cancel()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"b") is None
        # At the limit is fine.
        await self._commit_write(store, b"b", big[:-1])
        assert self.backdoor_get(store, b"b") == big[:-1]

    async def test_oversize_key_is_refused_and_nothing_written(self, store: Store) -> None:
        big = b"k" * (self.limits.key_bytes + 1)

        async def body(tr: Transaction) -> None:
            tr.set(b"a", b"1")
            tr.set(big, b"v")

        with pytest.raises(KeyTooLargeError):
            await store.transact(body)
        assert self.backdoor_get(store, b"a") is None
        await self._commit_write(store, big[:-1], b"v")  # at the limit is fine
        assert self.backdoor_get(store, big[:-1]) == b"v"

    async def test_transaction_too_large_is_refused_and_nothing_written(self, store: Store) -> None:
        value = b"v" * self.limits.value_bytes
        count = self.limits.transaction_bytes // self.limits.value_bytes + 1

        async def body(tr: Transaction) -> None:
            for i in range(count):
                tr.set(b"t%06d" % i, value)

        with pytest.raises(TransactionTooLargeError):
            await store.transact(body)
        assert self.backdoor_get(store, b"t000000") is None

    # -- closed transactions ----------------------------------------------------

    async def _assert_closed(self, tr: Transaction) -> None:
        with pytest.raises(TransactionClosedError):
            await tr.get(K)
        with pytest.raises(TransactionClosedError):
            await tr.get_range(b"a", b"z")
        with pytest.raises(TransactionClosedError):
            await _set_and_commit(tr, K, b"again")
        with pytest.raises(TransactionClosedError):
            await tr.commit()
        tr.cancel()  # always allowed

    async def test_committed_transaction_cannot_be_reused(self, store: Store) -> None:
        tr = store.create_transaction()
        tr.set(K, b"1")
        await tr.commit()
        await self._assert_closed(tr)
        assert self.backdoor_get(store, K) == b"1"

    async def test_cancelled_transaction_cannot_be_used(self, store: Store) -> None:
        tr = store.create_transaction()
        tr.cancel()
        await self._assert_closed(tr)
        assert self.backdoor_get(store, K) is None

    async def test_conflicted_transaction_cannot_be_reused(self, store: Store) -> None:
        reader = store.create_transaction()
        await reader.get(K)
        assert await self._outcome_after_write(store, reader, K)
        await self._assert_closed(reader)

    # -- fault injection ------------------------------------------------------------

    @pytest.mark.parametrize(
        ("fault", "applied"),
        [(CommitFault.UNKNOWN_APPLIED, True), (CommitFault.UNKNOWN_NOT_APPLIED, False)],
    )
    async def test_commit_unknown_result_is_its_own_exception(
        self, store: Store, fault: CommitFault, applied: bool
    ) -> None:
        self._need_faults()
        tr = store.create_transaction()
        tr.set(K, b"1")
        self.inject_commit_fault(store, fault)
        with pytest.raises(CommitUnknownResultError) as raised:
            await tr.commit()
        assert not isinstance(raised.value, ConflictError)
        assert isinstance(raised.value, RetryableError)
        assert self.backdoor_get(store, K) == (b"1" if applied else None)
        await self._assert_closed(tr)

    async def test_transact_retries_commit_unknown_result(self, store: Store) -> None:
        # Retried like FoundationDB does: an idempotent body is safe, and a body
        # that is not idempotent applies twice. Hence "bodies must be idempotent".
        self._need_faults()
        self.inject_commit_fault(store, CommitFault.UNKNOWN_APPLIED)
        attempts = 0

        async def body(tr: Transaction) -> None:
            nonlocal attempts
            attempts += 1
            tr.set(K, b"done")
            tr.add(b"n", 1)

        await store.transact(body)
        assert attempts == 2
        assert self.backdoor_get(store, K) == b"done"
        assert self.backdoor_get(store, b"n") == counter(2)

    async def test_injected_conflict_writes_nothing_and_transact_retries(
        self, store: Store
    ) -> None:
        self._need_faults()
        tr = store.create_transaction()
        tr.set(K, b"1")
        self.inject_commit_fault(store, CommitFault.CONFLICT)
        with pytest.raises(ConflictError):
            await tr.commit()
        assert self.backdoor_get(store, K) is None

        self.inject_commit_fault(store, CommitFault.CONFLICT)
        attempts = 0

        async def body(tr: Transaction) -> None:
            nonlocal attempts
            attempts += 1
            tr.set(K, b"2")

        await store.transact(body)
        assert attempts == 2
        assert self.backdoor_get(store, K) == b"2"

    async def test_real_conflict_wins_over_injected_unknown_result(self, store: Store) -> None:
        self._need_faults()
        reader = store.create_transaction()
        await reader.get(K)
        await self._commit_write(store, K, b"concurrent")
        reader.set(OUT, b"reader")
        self.inject_commit_fault(store, CommitFault.UNKNOWN_APPLIED)
        with pytest.raises(ConflictError):
            await reader.commit()
        assert self.backdoor_get(store, OUT) is None

    # -- transaction age --------------------------------------------------------------

    @pytest.mark.parametrize(
        "anyio_backend",
        [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")],
    )
    async def test_transaction_age_limit(self, store: Store) -> None:
        if not self.supports_mock_clock:
            pytest.skip("this store's transaction age does not follow trio's MockClock")
        self.backdoor_set(store, K, b"0")
        tr = store.create_transaction()
        assert await tr.get(K) == b"0"
        await anyio.sleep(self.limits.transaction_seconds * 0.9)
        assert await tr.get(K) == b"0"  # still young enough
        await anyio.sleep(self.limits.transaction_seconds * 0.2)
        with pytest.raises(TransactionTooOldError):
            await tr.get(K)
        tr.cancel()

        attempts = 0

        async def slow_once(tr: Transaction) -> None:
            nonlocal attempts
            attempts += 1
            await tr.get(K)
            if attempts == 1:
                await anyio.sleep(self.limits.transaction_seconds + 1)
            tr.set(K, b"1")

        await store.transact(slow_once)  # too old is retryable
        assert attempts == 2
        assert self.backdoor_get(store, K) == b"1"

    # -- optional capabilities ----------------------------------------------------------

    async def test_wait_for_change(self, store: Store) -> None:
        if not isinstance(store, SupportsWatch):
            pytest.skip("this store has no watches")
        self.backdoor_set(store, K, b"1")
        with anyio.fail_after(5):
            await store.wait_for_change(K, b"0")  # already differs: at once
            await store.wait_for_change(b"absent", b"0")
        woke = anyio.Event()

        async def waiter() -> None:
            await store.wait_for_change(K, b"1")
            woke.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.01)
                await self._commit_write(store, K, b"2")
                await woke.wait()

    async def test_retry_state_repeats_draws_on_re_runs(self, store: Store) -> None:
        """A body re-run by ``transact`` draws the same values (SupportsRetryState)."""
        probe = store.create_transaction()
        probe.cancel()
        if not isinstance(probe, SupportsRetryState):
            pytest.skip("this store's transactions carry no RetryState")
        assert probe.retry_state is None  # made by hand: nothing to repeat
        self._need_faults()
        draws: list[object] = []

        async def body(tr: Transaction) -> None:
            state = getattr(tr, "retry_state", None)
            assert isinstance(state, RetryState)
            draws.append(state.draw(object))
            tr.set(K, b"1")

        self.inject_commit_fault(store, CommitFault.UNKNOWN_NOT_APPLIED)
        await store.transact(body)
        assert len(draws) == 2 and draws[0] is draws[1]

    # -- the state machine --------------------------------------------------------------

    async def test_state_machine(self, store: Store) -> None:
        """Interleaved transactions against a model (see :class:`StoreMachine`)."""
        inject = self.inject_commit_fault if self.supports_fault_injection else None
        run = functools.partial(
            run_store_machine, store, backdoor_get=self.backdoor_get, inject_commit_fault=inject
        )
        await anyio.to_thread.run_sync(run)
