"""The in-memory reference store: the conformance suite, then what only it does."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import anyio
import attrs
import pytest
import trio
from trio.testing import MockClock

from quickq import (
    CommitUnknownResultError,
    ConflictError,
    KeyTooLargeError,
    TransactionTooLargeError,
    ValueTooLargeError,
)
from quickq.stores import CommitFault, Faults, Limits, MemoryStore, Transaction, decode_counter
from quickq.testing import StoreTests


class TestMemoryStore(StoreTests[MemoryStore]):
    limits = Limits()
    supports_fault_injection = True
    supports_mock_clock = True

    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryStore]:
        store = MemoryStore()
        yield store
        await store.aclose()

    def backdoor_get(self, store: MemoryStore, key: bytes) -> bytes | None:
        return store.raw_get(key)

    def backdoor_set(self, store: MemoryStore, key: bytes, value: bytes | None) -> None:
        store.raw_set(key, value)


# -- what only the memory store does ------------------------------------------------

pytestmark = pytest.mark.anyio

MOCK_TRIO = pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")],
)


async def _outcomes(store: MemoryStore, n: int) -> list[str]:
    """Commit *n* one-key writes, one after another; how each commit ended."""
    outcomes = []
    for i in range(n):
        tr = store.create_transaction()
        tr.set(b"k%03d" % i, b"v")
        try:
            await tr.commit()
        except ConflictError:
            outcomes.append("conflict")
        except CommitUnknownResultError:
            outcomes.append("unknown")
        else:
            outcomes.append("ok")
    return outcomes


async def test_seeded_faults_are_deterministic() -> None:
    faults = Faults(seed=7, conflict=0.2, unknown_applied=0.1, unknown_not_applied=0.1)
    one, two = MemoryStore(faults=faults), MemoryStore(faults=faults)
    first, second = await _outcomes(one, 200), await _outcomes(two, 200)
    assert first == second
    assert one.raw_items() == two.raw_items()
    assert {"ok", "conflict", "unknown"} == set(first)
    # Only the "applied" flavour of unknown writes anything.
    assert first.count("ok") < len(one.raw_items()) < first.count("ok") + first.count("unknown")
    other = await _outcomes(MemoryStore(faults=attrs.evolve(faults, seed=8)), 200)
    assert other != first


async def test_inject_scripts_the_next_writing_commits_in_order() -> None:
    store = MemoryStore()
    store.inject(None, CommitFault.CONFLICT, CommitFault.UNKNOWN_NOT_APPLIED)
    reader = store.create_transaction()
    await reader.get(b"k")
    await reader.commit()  # read-only: draws nothing
    assert await _outcomes(store, 4) == ["ok", "conflict", "unknown", "ok"]


async def test_retry_limit_gives_up_with_the_last_error() -> None:
    store = MemoryStore(faults=Faults(conflict=1.0), retry_limit=2)
    attempts = 0

    async def body(tr: Transaction) -> None:
        nonlocal attempts
        attempts += 1
        tr.set(b"k", b"v")

    with pytest.raises(ConflictError):
        await store.transact(body)
    assert attempts == 3


async def test_limits_are_configurable() -> None:
    # Two sets of a 4-byte value fit: (56 + 4 + 4) + (32 + 9) and (56 + 2 + 4) + (32 + 5).
    store = MemoryStore(limits=Limits(key_bytes=4, value_bytes=4, transaction_bytes=204))
    tr = store.create_transaction()
    tr.set(b"kkkk", b"vvvv")
    with pytest.raises(KeyTooLargeError):
        tr.set(b"kkkkk", b"v")
    with pytest.raises(ValueTooLargeError):
        tr.set(b"k", b"vvvvv")
    tr.set(b"k2", b"vvvv")
    with pytest.raises(TransactionTooLargeError):
        tr.set(b"k3", b"vvvv")
    tr.cancel()
    assert store.raw_items() == []


@MOCK_TRIO
async def test_latency_injection_runs_on_the_event_loop_clock() -> None:
    async def elapsed(seed: int) -> float:
        store = MemoryStore(faults=Faults(seed=seed, latency=0.5))
        start = trio.current_time()
        for _ in range(5):
            tr = store.create_transaction()
            await tr.get(b"k")
            tr.set(b"k", b"v")
            await tr.commit()
        return trio.current_time() - start

    first = await elapsed(1)
    assert 0 < first <= 10 * 0.5  # ten waits of at most 0.5 s, in virtual time
    assert await elapsed(1) == pytest.approx(first)  # seeded: the same waits
    assert await elapsed(2) != pytest.approx(first)


async def test_wait_for_change_wakes_on_commits_and_forgets_cancelled_waiters() -> None:
    store = MemoryStore()
    store.raw_set(b"k", b"1")
    woken: list[bytes] = []

    async def wait(key: bytes, seen: bytes | None) -> None:
        await store.wait_for_change(key, seen)
        woken.append(key)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, b"k", b"1")
            tg.start_soon(wait, b"j", None)
            await anyio.wait_all_tasks_blocked()
            assert woken == []
            tr = store.create_transaction()
            tr.clear_range(b"a", b"z")  # wakes k
            tr.add(b"j", 1)  # wakes j
            await tr.commit()
    assert sorted(woken) == [b"j", b"k"]

    with anyio.move_on_after(0.01):
        await store.wait_for_change(b"k", None)
    assert store._watchers == {}  # a cancelled waiter leaves nothing behind


async def test_many_concurrent_tasks_serialize() -> None:
    # Read-modify-write from many tasks, with injected conflicts and unknown
    # results that did not apply: every increment lands exactly once.
    store = MemoryStore(faults=Faults(seed=3, conflict=0.1, unknown_not_applied=0.1))

    async def bump(tr: Transaction) -> None:
        value = await tr.get(b"n")
        tr.set(b"n", b"%d" % (int(value or b"0") + 1))
        tr.add(b"adds", 1)

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(store.transact, bump)
    assert store.raw_get(b"n") == b"30"
    assert decode_counter(store.raw_get(b"adds")) == 30
    assert store._live == {}  # every transaction was closed


async def test_old_versions_are_released() -> None:
    # The history kept for multi-version reads is dropped once no open
    # transaction can read it, including transactions abandoned to the GC.
    store = MemoryStore()
    store.raw_set(b"k", b"0")
    reader = store.create_transaction()
    assert await reader.get(b"k") == b"0"
    for i in range(3):
        tr = store.create_transaction()
        tr.set(b"k", b"%d" % (i + 1))
        await tr.commit()
    assert await reader.get(b"k") == b"0"
    assert store._history
    del reader
    gc.collect()
    store.create_transaction().cancel()  # reaps the abandoned reader
    assert store._history == {}
    assert len(store._commits) == 0
    assert store._live == {}


def test_testing_all_is_public_names() -> None:
    import quickq.testing

    public = {n for n in dir(quickq.testing) if not n.startswith("_")}
    modules = {n for n in public if isinstance(getattr(quickq.testing, n), type(quickq))}
    assert set(quickq.testing.__all__) == public - modules


def test_a_store_test_class_must_declare_its_capabilities() -> None:
    # No capability defaults to True: a class that leaves one out fails when
    # defined (pytest would silently skip an abstract class instead).
    with pytest.raises(TypeError, match="supports_fault_injection, supports_mock_clock"):

        class TestUndeclared(StoreTests[MemoryStore]):
            limits = Limits()

            @pytest.fixture
            async def store(self) -> AsyncIterator[MemoryStore]:
                store = MemoryStore()
                yield store
                await store.aclose()

            def backdoor_get(self, store: MemoryStore, key: bytes) -> bytes | None:
                return store.raw_get(key)

            def backdoor_set(self, store: MemoryStore, key: bytes, value: bytes | None) -> None:
                store.raw_set(key, value)

    with pytest.raises(TypeError, match="store, backdoor_get, backdoor_set"):

        class TestNoHooks(StoreTests[MemoryStore]):
            limits = Limits()
            supports_fault_injection = True
            supports_mock_clock = True

    class Shared(StoreTests[MemoryStore], abstract=True):  # a base for other classes
        supports_mock_clock = True


async def test_writes_between_range_reads_stay_in_key_order() -> None:
    # A transaction's writes are sorted only once a range needs them, then kept
    # sorted as more come: each range read sees them merged in order.
    store = MemoryStore()
    store.raw_set(b"k3", b"s")
    tr = store.create_transaction()
    tr.set(b"k5", b"5")
    assert await tr.get_range(b"k", b"l") == [(b"k3", b"s"), (b"k5", b"5")]
    tr.set(b"k1", b"1")
    tr.set(b"k4", b"4")
    tr.clear(b"k3")
    assert await tr.get_range(b"k", b"l") == [(b"k1", b"1"), (b"k4", b"4"), (b"k5", b"5")]
    assert await tr.get_range(b"k", b"l", reverse=True, limit=2) == [
        (b"k5", b"5"),
        (b"k4", b"4"),
    ]
    tr.clear_range(b"k2", b"k5")
    tr.set(b"k0", b"0")
    assert await tr.get_range(b"k", b"l") == [(b"k0", b"0"), (b"k1", b"1"), (b"k5", b"5")]
    await tr.commit()
    assert store.raw_items() == [(b"k0", b"0"), (b"k1", b"1"), (b"k5", b"5")]


async def test_range_reads_at_an_old_version_see_keys_deleted_since() -> None:
    store = MemoryStore()
    for key in (b"a", b"b", b"c"):
        store.raw_set(key, key)
    reader = store.create_transaction()
    tr = store.create_transaction()
    tr.clear(b"a")
    tr.clear_range(b"b", b"c")
    tr.set(b"d", b"d")
    await tr.commit()
    tr = store.create_transaction()
    tr.set(b"a", b"again")  # deleted, then back
    await tr.commit()
    assert await reader.get_range(b"", b"z") == [(b"a", b"a"), (b"b", b"b"), (b"c", b"c")]
    assert await reader.get_range(b"", b"z", reverse=True, limit=2) == [(b"c", b"c"), (b"b", b"b")]
    reader.cancel()
    assert store._history == {} and not store._ghosts
    # With no other transaction open, a commit keeps no history at all.
    tr = store.create_transaction()
    tr.clear(b"a")
    await tr.commit()
    assert store._history == {} and not store._ghosts and not store._commits
    assert store.raw_items() == [(b"c", b"c"), (b"d", b"d")]
