"""Store limits: transaction sizes as FoundationDB counts them, and quickq's
batches, records and errors inside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

import quickq
from quickq._core import truncate_error
from quickq._jobs import validate_topic
from quickq._limits import ERROR_BYTES
from quickq.stores import Limits, MemoryStore
from quickq.stores._limits import MUTATION_BYTES, RANGE_BYTES

from ._stores import run_virtual, virtual_clock

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


async def dead_letters(queue: quickq.JobQueue, count: int) -> None:
    """Wait until queue q holds *count* dead letters (wait_idle would not wait
    for retries, which are scheduled)."""
    while (await queue.stats("q")).dead < count:  # noqa: ASYNC110 (polling from outside)
        await trio.sleep(0.5)


def one_key(key: bytes) -> int:
    """A conflict range over one key, [k, k + NUL)."""
    return RANGE_BYTES + 2 * len(key) + 1


# -- the memory store counts as FoundationDB's getSize() does ---------------------


async def test_writes_count_mutations_write_conflicts_and_their_overhead() -> None:
    tr = MemoryStore().create_transaction()
    tr.set(b"key", b"value")
    expected = MUTATION_BYTES + 3 + 5 + one_key(b"key")
    assert tr._buffer.size == expected
    tr.clear(b"gone")  # a one-key range clear: [gone, gone + NUL)
    expected += MUTATION_BYTES + 2 * 4 + 1 + one_key(b"gone")
    assert tr._buffer.size == expected
    tr.add(b"n", 1)  # an 8-byte operand
    expected += MUTATION_BYTES + 1 + 8 + one_key(b"n")
    assert tr._buffer.size == expected
    tr.clear_range(b"a", b"b")
    expected += MUTATION_BYTES + 2 + RANGE_BYTES + 2
    assert tr._buffer.size == expected
    tr.cancel()


async def test_a_key_written_again_keeps_one_mutation_as_foundationdb_coalesces() -> None:
    tr = MemoryStore().create_transaction()
    for n in range(1000):
        tr.add(b"counter", n)
    assert tr._buffer.size == MUTATION_BYTES + 7 + 8 + one_key(b"counter")
    tr.set(b"counter", b"x" * 100)  # replaces the add: one mutation, one conflict
    assert tr._buffer.size == MUTATION_BYTES + 7 + 100 + one_key(b"counter")
    tr.cancel()


async def test_reads_count_their_conflict_ranges_split_around_own_writes() -> None:
    store = MemoryStore()
    store.raw_set(b"k1", b"v")
    tr = store.create_transaction()
    await tr.get(b"k1")
    assert tr._buffer.size == one_key(b"k1")
    await tr.get(b"k1", snapshot=True)  # snapshot reads take no conflict
    assert tr._buffer.size == one_key(b"k1")
    tr.add_read_conflict_range(b"a", b"z")
    assert tr._buffer.size == one_key(b"k1") + RANGE_BYTES + 2
    tr.cancel()

    tr = store.create_transaction()
    tr.set(b"m", b"")
    written = tr._buffer.size
    await tr.get_range(b"a", b"z")
    # FoundationDB conflicts on [a, m) and [m + NUL, z): the written key splits it.
    assert tr._buffer.size == written + RANGE_BYTES + 2 + one_key(b"m")
    tr.cancel()


async def test_reads_that_cross_the_limit_fail_the_commit_and_write_nothing() -> None:
    store = MemoryStore(limits=Limits(transaction_bytes=1000))
    tr = store.create_transaction()
    tr.set(b"k", b"v")
    for n in range(20):
        await tr.get(b"read-%02d" % n)
    with pytest.raises(quickq.TransactionTooLargeError, match="limit of 1000"):
        await tr.commit()
    assert store.raw_items() == []


# -- enqueue_many within the limit ------------------------------------------------


def _queue(store: MemoryStore) -> quickq.JobQueue:
    return quickq.JobQueue(store, clock=lambda: NOW)


async def test_enqueue_many_over_foundationdbs_limit_is_refused_with_nothing_written() -> None:
    # 20,000 small jobs: 7.7 MB of keys and values, but about 17 MB as
    # FoundationDB counts a transaction: it would fail on a cluster.
    store = MemoryStore()
    jobs = [quickq.NewJob("q", "t", n) for n in range(20_000)]
    with pytest.raises(quickq.TooLargeError, match="10000000"):
        await _queue(store).enqueue_many(jobs)
    assert store.raw_items() == []


async def test_the_foundationdb_store_counts_as_the_memory_store() -> None:
    from quickq.stores.fdb import FoundationDBStore

    from .fdb_standin import StandinFDB

    store = await FoundationDBStore.open(bindings=StandinFDB(), prefix=b"app/")
    tr = store.create_transaction()
    await tr.get(b"b")
    assert tr._size == one_key(b"app/b")  # the prefix counts
    tr.set(b"a", b"1")
    await tr.get(b"c", snapshot=True)
    await tr.get_range(b"d", b"e")
    await tr.get_range(b"f", b"g", limit=1)
    for _ in range(3):
        tr.add(b"n", 1)
    tr.set(b"a", b"22")
    tr.clear(b"x")
    tr.clear_range(b"y", b"z")
    tr.add_read_conflict_key(b"r")
    tr.add_read_conflict_range(b"s", b"t")
    await tr.get(b"zz", snapshot=True)  # after the writes, on the stand-in's thread
    memory = tr._tr.memory  # the stand-in runs the transaction on a memory store
    assert tr._size == memory._buffer.size > 0
    tr.cancel()
    await store.aclose()


# -- records: the payload limit, errors stored once and cut by bytes ---------------


def test_the_payload_limit_is_exact_and_every_record_of_the_job_fits() -> None:
    from quickq._queue import MAX_PAYLOAD_BYTES

    limit = MAX_PAYLOAD_BYTES
    # The guide states the limit exactly.
    guide = (Path(__file__).parents[1] / "docs" / "guide.md").read_text()
    assert f"{limit:,} bytes" in guide
    # The topic length the limit assumes is the one validate_topic allows.
    assert validate_topic("t" * 200)
    with pytest.raises(quickq.InvalidJobError):
        validate_topic("t" * 201)

    jobs = quickq.JobRegistry()

    @jobs.job("t" * 200, backoff=quickq.Backoff(base=1.0, jitter=0.0))
    async def fail(payload: Any, meta: quickq.JobMeta) -> None:
        raise RuntimeError("\U0001f600" * 5_000)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        longest: Any = {"job_id": "\U0001f601" * 256, "priority": -(2**31), "max_retries": 1}
        big = "x" * (limit - 2)  # JSON adds two quotes
        with pytest.raises(quickq.InvalidJobError, match=f"the limit is {limit} bytes"):
            await queue.enqueue("q", "t" * 200, big + "x", **longest)
        job = await queue.enqueue("q", "t" * 200, big, timeout=123456.78901234567, **longest)
        # Leased, retried with an error, leased again, dead-lettered: every record fits.
        async with quickq.open_consumer(store, jobs, clock=virtual_clock):
            with trio.fail_after(60):
                await dead_letters(queue, 1)
        (dead,) = await queue.dead_letters("q")
        assert (dead.job.job_id, dead.job.attempt, dead.reason) == (job.job_id, 2, "failed")

    run_virtual(main)


def test_a_long_error_is_cut_to_its_budget_and_stored_once_in_the_dead_letter() -> None:
    from quickq._queue import MAX_PAYLOAD_BYTES

    jobs = quickq.JobRegistry()
    ran: list[str] = []

    @jobs.job("big", max_retries=0)
    async def big(payload: Any, meta: quickq.JobMeta) -> None:
        ran.append(meta.item_id)
        raise RuntimeError("é\n" * 1_500)  # 3,000 characters that JSON escapes

    @jobs.job("small")
    async def small(payload: Any, meta: quickq.JobMeta) -> None:
        ran.append(meta.item_id)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        job = await queue.enqueue("q", "big", "x" * (MAX_PAYLOAD_BYTES - 2))
        smalls = [await queue.enqueue("q", "small", n) for n in range(3)]
        async with quickq.open_consumer(store, jobs, clock=virtual_clock) as consumer:
            with trio.fail_after(60):
                await consumer.wait_idle()
        (dead,) = await queue.dead_letters("q")
        assert dead.reason == "failed" and "RuntimeError" in (dead.error or "")
        assert (dead.error or "").endswith("é\n\n")  # its start and its end
        assert dead.job.last_error == dead.error  # as the API shows it
        assert len(json.dumps(dead.error)) <= ERROR_BYTES
        raw = store.raw_get(queue._layout.dead_letter("q", job.job_id))
        assert raw is not None and len(raw) <= 100_000
        assert raw.count(json.dumps(dead.error).encode()) == 1  # stored once
        assert sorted(ran) == sorted([job.job_id] + [s.job_id for s in smalls])  # each once

    run_virtual(main)


def test_truncate_error_keeps_the_end_within_the_byte_budget() -> None:
    for text in ["x" * 5_000, "\U0001f600" * 3_000, "ab\n" * 2_000, "\x00" * 1_000]:
        cut = truncate_error(text)
        assert cut is not None
        head, marker, tail = cut.partition("\n[... truncated ...]\n")
        assert marker and text.startswith(head) and text.endswith(tail)
        assert len(json.dumps(cut)) <= ERROR_BYTES
        assert len(json.dumps(head + tail)) > ERROR_BYTES * 0.9  # the budget is used
    assert truncate_error("short") == "short"
    assert truncate_error(None) is None


# -- the acker splits what the store finds too large --------------------------------


def test_many_large_failures_at_once_are_split_and_all_recorded() -> None:
    # 180 failing jobs with 70 kB payloads: one settlement batch would be over
    # 12 MB. It is split, never retried whole, and no job runs twice.
    jobs = quickq.JobRegistry()
    runs: list[str] = []

    @jobs.job("fail", max_retries=0)
    async def fail(payload: Any, meta: quickq.JobMeta) -> None:
        runs.append(meta.item_id)
        await trio.sleep(1)  # all fail together
        raise RuntimeError("boom")

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        for _ in range(3):
            await queue.enqueue_many([quickq.NewJob("q", "fail", "x" * 70_000) for _ in range(60)])
        options: Any = {"concurrency": 300, "batch_size": 200, "clock": virtual_clock}
        async with quickq.open_consumer(store, jobs, **options):
            with trio.fail_after(60):
                await dead_letters(queue, 180)
        assert len(await queue.dead_letters("q", limit=500)) == 180
        assert len(runs) == len(set(runs)) == 180

    run_virtual(main)


def test_a_settlement_too_large_to_record_ends_as_an_unrecordable_dead_letter() -> None:
    jobs = quickq.JobRegistry()

    @jobs.job("t", max_retries=5)
    async def handler(payload: Any, meta: quickq.JobMeta) -> None:
        raise RuntimeError("boom " * 1_000)  # a retry would store 4,000 bytes of it

    async def main() -> None:
        # Transactions that hold a lease but not the retry's record.
        store = MemoryStore(limits=Limits(transaction_bytes=5_000))
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        job = await queue.enqueue("q", "t", "x")
        async with quickq.open_consumer(store, jobs, clock=virtual_clock):
            with trio.fail_after(60):
                await dead_letters(queue, 1)
        (dead,) = await queue.dead_letters("q")
        assert (dead.job.job_id, dead.job.attempt, dead.reason) == (job.job_id, 1, "unrecordable")
        assert "could not be recorded" in (dead.error or "")

    run_virtual(main)


# -- promotion stays within the lease batch's bytes -------------------------------


def test_promoting_many_large_scheduled_jobs_stays_a_small_transaction() -> None:
    # 250 scheduled 50 kB jobs, due together: promotion took up to 4 x the
    # lease limit of them (10 MB) into one leasing transaction, which never
    # committed, so nothing ran.
    jobs = quickq.JobRegistry()
    done: list[str] = []

    @jobs.job("t")
    async def handler(payload: Any, meta: quickq.JobMeta) -> None:
        done.append(meta.item_id)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        for _ in range(5):
            batch = [quickq.NewJob("q", "t", "x" * 50_000, delay=1) for _ in range(50)]
            await queue.enqueue_many(batch)
        async with quickq.open_consumer(store, jobs, concurrency=50, clock=virtual_clock):
            with trio.fail_after(16):
                while len(done) < 250:  # noqa: ASYNC110 (polling from outside)
                    await trio.sleep(0.5)
        assert len(set(done)) == 250

    run_virtual(main)
