"""Conformance tests of ``transact``, limits, transaction age, and the
state machine that checks a store against a model.
"""

from __future__ import annotations

import functools

import anyio
import anyio.to_thread
import pytest
from trio.testing import MockClock

from .._exceptions import (
    KeyTooLargeError,
    TransactionTooLargeError,
    TransactionTooOldError,
    ValueTooLargeError,
)
from ..stores._protocol import Transaction
from ._store_base import K, S, StoreTestBase, _set_and_commit
from ._store_machine import run_store_machine


class TransactTests(StoreTestBase[S], abstract=True):
    """The transact, limits, age and state-machine tests of StoreTests."""

    # -- transact -------------------------------------------------------------------

    async def test_transact_retries_conflicting_body_and_succeeds(self, store: S) -> None:
        """transact runs the body again after a conflict, on fresh data, and returns what the
        successful run returned."""
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

    async def test_transact_does_not_retry_other_errors(self, store: S) -> None:
        """transact runs the body once when it raises anything but a retryable error, lets the error
        through and writes nothing."""
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

    async def test_concurrent_tasks_serialize(self, store: S) -> None:
        """Concurrent read-modify-write transactions through transact lose no update."""

        async def bump(tr: Transaction) -> None:
            value = await tr.get(K)
            tr.set(K, b"%d" % (int(value or b"0") + 1))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(store.transact, bump)
        assert self.backdoor_get(store, K) == b"10"  # no lost update

    # -- limits ---------------------------------------------------------------------

    async def test_oversize_value_is_refused_and_nothing_written(self, store: S) -> None:
        """A value over the limit raises ValueTooLargeError, at the write or at commit, and the
        transaction writes nothing; a value at the limit is fine."""
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

    async def test_oversize_key_is_refused_and_nothing_written(self, store: S) -> None:
        """A key over the limit raises KeyTooLargeError and the transaction writes nothing; a key at
        the limit is fine."""
        big = b"k" * (self.limits.key_bytes + 1)

        async def body(tr: Transaction) -> None:
            tr.set(b"a", b"1")
            tr.set(big, b"v")

        with pytest.raises(KeyTooLargeError):
            await store.transact(body)
        assert self.backdoor_get(store, b"a") is None
        await self._commit_write(store, big[:-1], b"v")  # at the limit is fine
        assert self.backdoor_get(store, big[:-1]) == b"v"

    async def test_transaction_too_large_is_refused_and_nothing_written(self, store: S) -> None:
        """A transaction over the size limit raises TransactionTooLargeError and writes nothing."""
        value = b"v" * self.limits.value_bytes
        count = self.limits.transaction_bytes // self.limits.value_bytes + 1

        async def body(tr: Transaction) -> None:
            for i in range(count):
                tr.set(b"t%06d" % i, value)

        with pytest.raises(TransactionTooLargeError):
            await store.transact(body)
        assert self.backdoor_get(store, b"t000000") is None

    # -- transaction age --------------------------------------------------------------

    @pytest.mark.parametrize(
        "anyio_backend",
        [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")],
    )
    async def test_transaction_age_limit(self, store: S) -> None:
        """A transaction older than the age limit raises TransactionTooOldError at its next read,
        and transact retries it (runs only where the store's age follows trio's MockClock)."""
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

    # -- the state machine --------------------------------------------------------------

    async def test_state_machine(self, store: S) -> None:
        """Interleaved transactions against a model (see :class:`StoreMachine`)."""
        inject = self.inject_commit_fault if self.supports_fault_injection else None
        run = functools.partial(
            run_store_machine, store, backdoor_get=self.backdoor_get, inject_commit_fault=inject
        )
        await anyio.to_thread.run_sync(run)
