"""The store-wide gauges as OpenTelemetry observable gauges (serve_store_gauges),
read back through the SDK's in-memory metric reader, under virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import quickq
from quickq.stores.memory import MemoryStore

from ._otel import make_sdk
from ._stores import Partition, run_virtual, virtual_clock


async def _store_with_jobs() -> tuple[MemoryStore, quickq.JobQueue]:
    store = MemoryStore()
    queue = quickq.JobQueue(store, clock=virtual_clock, telemetry=None)
    await queue.enqueue("shop-1", "t", 1)
    await queue.enqueue("shop-1", "t", 2, delay=60)
    await queue.enqueue("shop-2", "t", 3)
    return store, queue


async def start(nursery: trio.Nursery, queue: quickq.JobQueue, **options: Any) -> None:
    await nursery.start(lambda task_status: quickq.serve_store_gauges(
        queue, **options, task_status=task_status))  # fmt: skip


def test_the_gauges_report_each_queue_by_state_and_the_totals() -> None:
    sdk = make_sdk()

    async def main() -> None:
        _, queue = await _store_with_jobs()
        async with trio.open_nursery() as nursery:
            await start(nursery, queue, telemetry=sdk.telemetry)
            for qid in ("shop-1", "shop-2"):
                stats = await queue.stats(qid)
                for state in ("pending", "scheduled", "running", "dead"):
                    where = {"messaging.quickq.queue.id": qid, "messaging.quickq.job.state": state}
                    found = sdk.total("quickq.queue.jobs", **where)
                    assert found == getattr(stats, state), (qid, state)
            assert sdk.total("quickq.jobs", **{"messaging.quickq.job.state": "pending"}) == 2
            assert sdk.total("quickq.jobs", **{"messaging.quickq.job.state": "scheduled"}) == 1
            assert sdk.total("quickq.queues.truncated") == 0
            (age,) = [p for p in sdk.points("quickq.queue.oldest_ready.age")
                      if p.attributes["messaging.quickq.queue.id"] == "shop-2"]  # fmt: skip
            assert age.attributes["messaging.quickq.age.exact"] == "true"
            await trio.sleep(40)  # the job of shop-2 waits; read again at 15 and 30 s
            (age,) = [p for p in sdk.points("quickq.queue.oldest_ready.age")
                      if p.attributes["messaging.quickq.queue.id"] == "shop-2"]  # fmt: skip
            assert age.value == pytest.approx(30)
            assert all(
                p.attributes["messaging.system"] == "quickq" for p in sdk.points("quickq.jobs")
            )
            nursery.cancel_scope.cancel()

    run_virtual(main)


def test_the_workers_gauge_counts_a_live_consumer_and_forgets_a_stopped_one() -> None:
    sdk = make_sdk()

    def workers() -> dict[str, float]:
        return {p.attributes["messaging.quickq.worker.state"]: p.value
                for p in sdk.points("quickq.workers")}  # fmt: skip

    async def main() -> None:
        store, queue = await _store_with_jobs()
        async with trio.open_nursery() as nursery:
            async with quickq.open_consumer(store, quickq.JobRegistry(), clock=virtual_clock,
                                            telemetry=None):  # fmt: skip
                await start(nursery, queue, interval=5, telemetry=sdk.telemetry)
                assert workers() == {"live": 1, "stopping": 0, "stale": 0}
            await trio.sleep(6)
            assert workers() == {"live": 0, "stopping": 0, "stale": 0}
            nursery.cancel_scope.cancel()

    run_virtual(main)


def test_totals_only_and_two_readers_of_the_same_provider() -> None:
    sdk = make_sdk()

    async def main() -> None:
        _, queue = await _store_with_jobs()
        async with trio.open_nursery() as nursery:
            await start(nursery, queue, per_queue=False, telemetry=sdk.telemetry)
            assert sdk.points("quickq.queue.jobs") == []
            assert sdk.total("quickq.jobs", **{"messaging.quickq.job.state": "pending"}) == 2
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:  # the provider's instruments are reused
            await start(nursery, queue, telemetry=sdk.telemetry)
            assert sdk.total("quickq.queue.jobs", **{"messaging.quickq.queue.id": "shop-1"}) == 2
            nursery.cancel_scope.cancel()
        assert sdk.points("quickq.jobs") == []  # stopped: nothing reported any more

    run_virtual(main)


def test_a_store_that_stops_answering_makes_the_gauges_go_quiet_not_stale() -> None:
    sdk = make_sdk()

    async def main() -> None:
        store, _ = await _store_with_jobs()
        partition = Partition(store)
        queue = quickq.JobQueue(partition, clock=virtual_clock, telemetry=None)
        async with trio.open_nursery() as nursery:
            await start(nursery, queue, interval=10, telemetry=sdk.telemetry)
            assert sdk.total("quickq.jobs", **{"messaging.quickq.job.state": "pending"}) == 2
            partition.cut()
            await trio.sleep(25)  # two failed readings: the last good one is still recent
            assert sdk.total("quickq.jobs", **{"messaging.quickq.job.state": "pending"}) == 2
            await trio.sleep(20)  # more than three intervals without an answer
            assert sdk.points("quickq.jobs") == []
            partition.is_cut = False
            await trio.sleep(10)
            assert sdk.total("quickq.jobs", **{"messaging.quickq.job.state": "pending"}) == 2
            nursery.cancel_scope.cancel()

    run_virtual(main)


def test_without_an_sdk_it_reads_nothing() -> None:
    reads: list[float] = []

    class Counted(quickq.JobQueue):
        async def overview(self, *, max_queues: int | None = 1000) -> quickq.StoreOverview:
            reads.append(trio.current_time())
            return await super().overview(max_queues=max_queues)

    async def main() -> None:
        queue = Counted(MemoryStore(), clock=virtual_clock)
        async with trio.open_nursery() as nursery:
            await start(nursery, queue, telemetry=None)
            await trio.sleep(100)
            nursery.cancel_scope.cancel()
        assert reads == []

    run_virtual(main)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"interval": 0}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"max_queues": 0}, "max_queues"),
        ({"telemetry": "yes"}, "telemetry"),
        ({"per_queue": "no"}, "per_queue"),
    ],
)
def test_bad_arguments_are_refused_by_name(options: dict[str, Any], named: str) -> None:
    async def main() -> None:
        with pytest.raises(quickq.InvalidArgumentError, match=named):
            await quickq.serve_store_gauges(quickq.JobQueue(MemoryStore()), **options)

    run_virtual(main)


def test_a_queue_is_required() -> None:
    async def main() -> None:
        with pytest.raises(quickq.InvalidArgumentError, match="queue"):
            await quickq.serve_store_gauges(MemoryStore())  # type: ignore[arg-type]

    run_virtual(main)
