"""Latency like a cluster's: independent reads travel together, so large
batches stay inside FoundationDB's 5 seconds per transaction.

The memory store waits ``Faults.read_latency`` per read (a ``get_many`` is one
read) on the loop's clock, and enforces the 5 s lifetime on it too: under
trio's MockClock both are virtual, exact and fast.
"""

from __future__ import annotations

import trio

import quickq
from quickq import _core
from quickq._core import Layout
from quickq.stores import Faults, MemoryStore, Transaction, get_many

from ._stores import run_virtual, virtual_clock

CLUSTER = Faults(read_latency=0.001)
"""1 ms per read: the slow end of FoundationDB's 0.1-1 ms."""


def test_enqueue_many_of_5000_custom_ids_fits_in_a_transactions_life() -> None:
    # One by one, 10,002 reads: 10 s at 1 ms each, and the transaction died
    # at 5 s on every retry.
    async def main() -> float:
        store = MemoryStore(faults=CLUSTER)
        queue = quickq.JobQueue(store, clock=virtual_clock)
        jobs = [quickq.NewJob("q", "t", n, job_id=f"id-{n}") for n in range(5_000)]
        start = trio.current_time()
        with trio.fail_after(30):
            await queue.enqueue_many(jobs)
        elapsed = trio.current_time() - start
        assert (await queue.stats("q")).pending == 5_000
        return elapsed

    assert run_virtual(main) < 5.0


def test_lease_items_of_1000_over_4000_due_items_fits_in_a_transactions_life() -> None:
    # One by one, 5,005 reads: over 5 s at 1 ms each.
    async def main() -> float:
        store = MemoryStore(faults=CLUSTER)
        queue = quickq.JobQueue(store, clock=virtual_clock)
        for _ in range(4):
            await queue.enqueue_many([quickq.NewJob("q", "t", n, delay=1) for n in range(1_000)])
        await trio.sleep(2)  # all 4,000 due: promoted by the leasing transaction
        layout = Layout()
        now = round(virtual_clock() * 1000)
        taken = await store.transact(
            lambda tr: _core.take_queue_lease(tr, layout, "q", "c", "tok", now, 5_000)
        )
        assert taken

        async def lease(tr: Transaction) -> _core.LeaseBatch:
            return await _core.lease_items(
                tr,
                layout,
                "q",
                holder="c",
                token="tok",
                batch_token="b",
                limit=1_000,
                now=now,
                lease_ms=30_000,
                idle_gc_ms=60_000,
            )

        start = trio.current_time()
        with trio.fail_after(30):
            batch = await store.transact(lease)
        elapsed = trio.current_time() - start
        assert len(batch.items) == 1_000
        return elapsed

    assert run_virtual(main) < 5.0


def test_get_many_reads_together_and_conflicts_like_gets() -> None:
    async def main() -> None:
        store = MemoryStore(faults=CLUSTER)
        store.raw_set(b"a", b"1")
        tr = store.create_transaction()
        tr.set(b"b", b"2")
        start = trio.current_time()
        assert await get_many(tr, [b"a", b"b", b"c"]) == [b"1", b"2", None]
        assert trio.current_time() - start == 0.001  # one read's latency, not three
        # a and c were read from the store: a write to either conflicts.
        store.raw_set(b"c", b"3")
        tr.set(b"x", b"")
        try:
            await tr.commit()
        except quickq.ConflictError:
            pass
        else:
            raise AssertionError("a key get_many read changed: the commit must conflict")

    run_virtual(main)


def test_the_transaction_lifetime_is_enforced_in_virtual_time() -> None:
    async def main() -> None:
        store = MemoryStore(faults=CLUSTER)
        tr = store.create_transaction()
        await trio.sleep(5.001)
        try:
            await tr.get(b"k")
        except quickq.TransactionTooOldError:
            return
        raise AssertionError("a read after 5 s must fail")

    run_virtual(main)


def test_a_custom_id_repeated_in_one_batch_still_enqueues_one_job() -> None:
    # The ids are read together before anything is written: the repeat must
    # still find the job the batch made first.
    async def main() -> None:
        store = MemoryStore(faults=CLUSTER)
        queue = quickq.JobQueue(store, clock=virtual_clock)
        first, again = await queue.enqueue_many(
            [quickq.NewJob("q", "t", 1, job_id="x"), quickq.NewJob("q", "t", 2, job_id="x")]
        )
        assert first == again and first.payload == 1
        assert (await queue.stats("q")).pending == 1

    run_virtual(main)
