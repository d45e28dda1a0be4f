"""Conformance tests of injected commit faults and of the optional
capabilities (watches, RetryState).
"""

from __future__ import annotations

import anyio
import pytest

from .._exceptions import CommitUnknownResultError, ConflictError, RetryableError
from ..stores._faults import CommitFault
from ..stores._protocol import RetryState, SupportsRetryState, SupportsWatch, Transaction
from ._store_base import OUT, K, S, StoreTestBase, counter


class FaultTests(StoreTestBase[S], abstract=True):
    """The fault-injection and optional-capability tests of StoreTests."""

    # -- fault injection ------------------------------------------------------------

    @pytest.mark.parametrize(
        ("fault", "applied"),
        [(CommitFault.UNKNOWN_APPLIED, True), (CommitFault.UNKNOWN_NOT_APPLIED, False)],
    )
    async def test_commit_unknown_result_is_its_own_exception(
        self, store: S, fault: CommitFault, applied: bool
    ) -> None:
        """An injected unknown result raises CommitUnknownResultError (retryable, not a
        ConflictError), applies the writes or not as the fault says, and closes the transaction."""
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

    async def test_transact_retries_commit_unknown_result(self, store: S) -> None:
        """transact retries a commit whose result is unknown, as FoundationDB does: an idempotent
        body is safe, and one that is not applies twice (hence: bodies must be idempotent)."""
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

    async def test_injected_conflict_writes_nothing_and_transact_retries(self, store: S) -> None:
        """An injected conflict raises ConflictError and writes nothing; transact retries it."""
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

    async def test_real_conflict_wins_over_injected_unknown_result(self, store: S) -> None:
        """A commit that really conflicts raises ConflictError and writes nothing, even when an
        unknown-but-applied result was injected for it."""
        self._need_faults()
        reader = store.create_transaction()
        await reader.get(K)
        await self._commit_write(store, K, b"concurrent")
        reader.set(OUT, b"reader")
        self.inject_commit_fault(store, CommitFault.UNKNOWN_APPLIED)
        with pytest.raises(ConflictError):
            await reader.commit()
        assert self.backdoor_get(store, OUT) is None

    # -- optional capabilities ----------------------------------------------------------

    async def test_wait_for_change(self, store: S) -> None:
        """wait_for_change returns at once when the value already differs, and wakes its waiter when
        a commit changes the key (skipped for stores without SupportsWatch)."""
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

    async def test_retry_state_repeats_draws_on_re_runs(self, store: S) -> None:
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
