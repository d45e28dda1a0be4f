"""FoundationDBStore on the bindings stand-in, continued: paged range reads,
atomic add and prefixes, futures bridged to the event loop, and watches (see
``test_store_fdb_standin.py`` for why a stand-in).

asyncio runs in debug mode here, so a call into the loop from the network
thread that is not thread-safe raises instead of passing by luck.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import trio

from quickq import (
    ConflictError,
    StoreError,
)
from quickq.stores import Store, SupportsWatch
from quickq.stores.fdb import FoundationDBStore

from .fdb_standin import Body, StandinFDB, check_clean, open_store


@pytest.fixture(
    params=[
        pytest.param(("trio", {}), id="trio"),
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def standin() -> Iterator[StandinFDB]:
    fdb = StandinFDB(page_size=3)
    yield fdb
    fdb.close()
    check_clean(fdb)


pytestmark = pytest.mark.anyio


# -- range reads, paged -------------------------------------------------------------

KEYS = [b"k%02d" % i for i in range(50)]


async def _filled(standin: StandinFDB, prefix: bytes = b"p/") -> FoundationDBStore:
    for key in KEYS:
        standin.backdoor_set(prefix + key, key.upper())
    standin.backdoor_set(b"other/k00", b"not mine")  # outside the prefix
    return await open_store(standin, prefix=prefix)


@pytest.mark.parametrize("page_size", [1, 3, 100])
@pytest.mark.parametrize(
    ("begin", "end"), [(b"", b"\xff"), (b"k05", b"k45"), (b"k10", b"k10\x00"), (b"k4", b"k5")]
)
@pytest.mark.parametrize("limit", [0, 1, 5, 20, 50, 51])
@pytest.mark.parametrize("reverse", [False, True])
async def test_paged_range_reads_match_the_model(
    standin: StandinFDB, page_size: int, begin: bytes, end: bytes, limit: int, reverse: bool
) -> None:
    standin.page_size = page_size
    store = await _filled(standin)
    expected = [(k, k.upper()) for k in KEYS if begin <= k < end]
    if reverse:
        expected.reverse()
    if limit:
        expected = expected[:limit]
    tr = store.create_transaction()
    assert await tr.get_range(begin, end, limit=limit, reverse=reverse) == expected
    tr.cancel()
    # Page by page: each asks only for the rows still wanted, iteration counts up,
    # and exact mode is used only under a limit.
    calls = standin.range_calls
    assert [c["iteration"] for c in calls] == list(range(1, len(calls) + 1))
    assert {c["mode"] for c in calls} == {0 if limit else -2}
    if limit:
        assert calls[0]["limit"] == limit
        for before, after in itertools.pairwise(calls):
            assert after["limit"] < before["limit"]
    assert len(calls) <= len(expected) // page_size + 1


async def test_many_pages(standin: StandinFDB) -> None:
    standin.page_size = 3
    store = await _filled(standin)
    tr = store.create_transaction()
    assert len(await tr.get_range(b"", b"\xff")) == 50
    assert len(standin.range_calls) == 17  # 16 full pages and one of 2
    tr.cancel()


async def test_snapshot_range_reads_page_on_the_snapshot_and_take_no_conflict(
    standin: StandinFDB,
) -> None:
    store = await _filled(standin)
    reader = store.create_transaction()
    assert len(await reader.get_range(b"k", b"l", snapshot=True)) == 50
    assert standin.range_calls and all(c["snapshot"] for c in standin.range_calls)
    writer = store.create_transaction()
    writer.set(b"k20", b"changed")
    await writer.commit()
    reader.set(b"out", b"1")
    await reader.commit()  # no conflict

    standin.range_calls.clear()
    reader = store.create_transaction()
    await reader.get_range(b"k", b"l")
    assert not any(c["snapshot"] for c in standin.range_calls)
    writer = store.create_transaction()
    writer.set(b"k20", b"again")
    await writer.commit()
    reader.set(b"out", b"2")
    with pytest.raises(ConflictError):
        await reader.commit()


async def test_limited_paged_read_conflicts_only_on_what_it_observed(
    standin: StandinFDB,
) -> None:
    store = await _filled(standin)
    for written, conflicts in ((b"k12", False), (b"k09", True)):
        reader = store.create_transaction()
        assert len(await reader.get_range(b"k", b"l", limit=10)) == 10  # k00..k09
        writer = store.create_transaction()
        writer.set(written, b"x")
        await writer.commit()
        reader.set(b"out", b"1")
        if conflicts:
            with pytest.raises(ConflictError):
                await reader.commit()
        else:
            await reader.commit()


async def test_a_paged_read_of_a_whole_range_conflicts_on_all_of_it(
    standin: StandinFDB,
) -> None:
    # The last page ends at the range's end, not at its last row: an insertion
    # after the last row (k49) but inside [k, l) conflicts.
    store = await _filled(standin)
    reader = store.create_transaction()
    assert len(await reader.get_range(b"k", b"l")) == 50
    writer = store.create_transaction()
    writer.set(b"k99", b"new")
    await writer.commit()
    reader.set(b"out", b"1")
    with pytest.raises(ConflictError):
        await reader.commit()


async def test_snapshot_point_reads_take_no_conflict(standin: StandinFDB) -> None:
    store = await open_store(standin)
    for snapshot in (True, False):
        reader = store.create_transaction()
        await reader.get(b"k", snapshot=snapshot)
        writer = store.create_transaction()
        writer.set(b"k", b"x")
        await writer.commit()
        reader.set(b"out", b"1")
        if snapshot:
            await reader.commit()
        else:
            with pytest.raises(ConflictError):
                await reader.commit()


# -- atomic add, conflict ranges, prefixes -----------------------------------------------


async def test_add_is_fdb_add_with_a_little_endian_8_byte_operand(standin: StandinFDB) -> None:
    store = await open_store(standin)
    tr = store.create_transaction()
    tr.add(b"n", 5)
    tr.add(b"n", -1)
    tr.add(b"n", 2**64 + 3)  # wraps like the 64-bit counter it is
    await tr.commit()
    assert standin.add_params == [struct.pack("<q", 5), b"\xff" * 8, struct.pack("<q", 3)]
    assert standin.backdoor_get(b"n") == struct.pack("<q", 7)


async def test_prefixes_isolate_tenants(standin: StandinFDB) -> None:
    a = await open_store(standin, prefix=b"a/")
    b = await open_store(standin, prefix=b"b/")
    tr = a.create_transaction()
    tr.set(b"k", b"from a")
    tr.add_read_conflict_range(b"k", b"l")
    tr.add_read_conflict_key(b"m")
    await tr.commit()
    tr = b.create_transaction()
    assert await tr.get(b"k") is None
    assert await tr.get_range(b"", b"\xff") == []
    tr.clear_range(b"", b"\xff")
    await tr.commit()
    assert standin.backdoor_get(b"a/k") == b"from a"
    assert [k for k, _ in standin.store.raw_items()] == [b"a/k"]
    tr = a.create_transaction()
    assert await tr.get_range(b"", b"\xff") == [(b"k", b"from a")]  # prefix stripped
    tr.cancel()


async def test_conflict_ranges_are_prefixed(standin: StandinFDB) -> None:
    a = await open_store(standin, prefix=b"a/")
    reader = a.create_transaction()
    reader.add_read_conflict_range(b"k", b"l")
    writer = a.create_transaction()
    writer.set(b"k1", b"x")
    await writer.commit()
    reader.set(b"out", b"1")
    with pytest.raises(ConflictError):
        await reader.commit()


# -- futures on the event loop ---------------------------------------------------------


async def test_callbacks_run_on_the_network_thread(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.network.callback_threads.clear()  # open's probe may have been ready at once
    standin.slow("get", 0.05)  # not ready at once: the callback comes from the network
    tr = store.create_transaction()
    assert await tr.get(b"k") is None
    tr.cancel()
    assert standin.network.callback_threads == {standin.network.thread.ident}
    assert threading.get_ident() not in standin.network.callback_threads


async def test_waiting_does_not_block_the_event_loop(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.slow("get", 0.3, times=20)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async def reader() -> None:
        tr = store.create_transaction()
        await tr.get(b"k")
        tr.cancel()

    started = time.monotonic()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with anyio.create_task_group() as readers:
                for _ in range(20):
                    readers.start_soon(reader)
            tg.cancel_scope.cancel()
    assert time.monotonic() - started < 1.5  # 20 slow reads overlapped
    assert ticks >= 10


async def test_cancelling_the_task_cancels_the_future(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.hold("get")
    tr = store.create_transaction()
    with anyio.move_on_after(0.05) as scope:
        await tr.get(b"k")
    assert scope.cancelled_caught
    assert standin.network.cancelled == ["get"]
    assert await tr.get(b"k") is None  # the transaction itself is still usable
    tr.cancel()


async def test_cancelling_transact_cancels_the_commit_and_the_transaction(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin)
    standin.hold("commit")
    with anyio.move_on_after(0.05):
        await store.transact(Body())
    assert standin.network.cancelled == ["commit"]
    assert standin.cancelled_transactions == 1
    assert standin.on_error_calls == []


async def test_a_late_callback_after_cancellation_is_harmless(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.network.late_cancel_callbacks = True
    standin.hold("get")
    tr = store.create_transaction()
    with anyio.move_on_after(0.05):
        await tr.get(b"k")
    await anyio.sleep(0.05)  # the cancellation reaches the network thread
    assert len(standin.network.held_callbacks) == 1
    standin.network.release_held_callbacks()
    await anyio.sleep(0.01)  # the wake-up, if any, reaches the loop
    assert await tr.get(b"k") is None
    tr.cancel()


def _late_after_loop_finished(run: Any) -> None:
    fdb = StandinFDB()
    fdb.network.late_cancel_callbacks = True

    async def main() -> None:
        store = await FoundationDBStore.open(bindings=fdb)
        fdb.hold("get")
        tr = store.create_transaction()
        with anyio.move_on_after(0.05):
            await tr.get(b"k")
        await anyio.sleep(0.05)

    run(main)
    assert len(fdb.network.held_callbacks) == 1
    fdb.network.release_held_callbacks()  # the event loop is gone by now
    fdb.close()
    check_clean(fdb)


def test_a_callback_after_trio_run_finished_is_harmless() -> None:
    _late_after_loop_finished(trio.run)


def test_a_callback_after_the_asyncio_loop_closed_is_harmless() -> None:
    _late_after_loop_finished(lambda main: asyncio.run(main(), debug=True))


# -- watches ------------------------------------------------------------------------


async def test_wait_for_change_commits_a_watch_and_wakes_on_a_write(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin, prefix=b"p/")
    assert isinstance(store, SupportsWatch)
    standin.backdoor_set(b"p/k", b"1")
    woke = anyio.Event()

    async def waiter() -> None:
        await store.wait_for_change(b"k", b"1")
        woke.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.05)
            assert not woke.is_set()
            tr = store.create_transaction()
            tr.set(b"k", b"2")
            await tr.commit()
            await woke.wait()


async def test_cancelling_wait_for_change_cancels_the_watch(standin: StandinFDB) -> None:
    store = await open_store(standin, transaction_timeout=0.05)
    with anyio.move_on_after(0.2) as scope:  # longer than the transaction timeout
        await store.wait_for_change(b"k", None)
    assert scope.cancelled_caught  # the timeout did not fire the watch
    assert standin.network.cancelled == ["watch"]


@pytest.mark.parametrize(("code", "raises"), [(1032, True), (1029, False), (1101, False)])
async def test_failed_watches(standin: StandinFDB, code: int, raises: bool) -> None:
    store = await open_store(standin)
    standin.inject("watch", code)
    with anyio.fail_after(5):
        if raises:
            with pytest.raises(StoreError, match=str(code)):
                await store.wait_for_change(b"k", None)
        else:
            await store.wait_for_change(b"k", None)  # spurious: callers re-check


async def test_wait_for_change_retries_its_read(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.inject("get", 1007)
    standin.backdoor_set(b"k", b"1")
    with anyio.fail_after(5):
        await store.wait_for_change(b"k", b"0")
    assert standin.on_error_calls == [1007]


def _ended(standin: StandinFDB) -> list[str]:
    """The state of every transaction the store made: none may be left open."""
    return [tr.state for tr in standin.transactions]


async def test_open_ends_its_probe_transaction(standin: StandinFDB) -> None:
    await FoundationDBStore.open(bindings=standin)
    assert _ended(standin) == ["cancelled"]


async def test_wait_for_change_ends_its_transaction_when_the_value_differs(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin)
    standin.backdoor_set(b"k", b"1")
    with anyio.fail_after(5):
        await store.wait_for_change(b"k", b"0")  # differs already: no watch
    assert _ended(standin) == ["cancelled", "cancelled"]


async def test_a_cancelled_wait_for_change_cancels_its_transaction(standin: StandinFDB) -> None:
    # Left open, a commit already sent could still land and register a watch
    # nobody waits for (one of the client's 10,000).
    store = await open_store(standin)
    standin.hold("commit")
    with anyio.move_on_after(0.05) as scope:
        await store.wait_for_change(b"k", None)
    assert scope.cancelled_caught
    assert _ended(standin) == ["cancelled", "cancelled"]


def _implements_the_protocols(store: FoundationDBStore) -> tuple[Store, SupportsWatch]:
    """Checked by mypy: FoundationDBStore is a Store (and its transactions are
    Transactions) and supports watches."""
    return store, store
