"""OpenTelemetry metrics after a known workload (docs/observability.md lists them)."""

from __future__ import annotations

from typing import Any

import trio

import quickq
from quickq._telemetry import DURATION_BUCKETS, WAIT_BUCKETS
from quickq.stores import MemoryStore

from ._otel import make_sdk
from ._stores import run_virtual, virtual_clock
from .test_consumer import wait_until

BASE = {"messaging.system": "quickq", "messaging.destination.name": "work"}


def test_metric_values_after_a_known_workload() -> None:
    """10 jobs: 7 complete, 2 fail once then complete, 1 dies (max_retries 1)."""
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("work", backoff=quickq.Backoff(base=1.0, jitter=0.0))
    async def work(payload: str, meta: quickq.JobMeta) -> None:
        await trio.sleep(0.02)
        if (payload == "flaky" and meta.attempt == 1) or payload == "doomed":
            raise RuntimeError(payload)

    kinds = ["ok"] * 7 + ["flaky"] * 2 + ["doomed"]

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        await queue.enqueue_many(
            [
                quickq.NewJob("q", "work", kind, max_retries=1 if kind == "doomed" else 3)
                for kind in kinds
            ]
        )
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, telemetry=sdk.telemetry, concurrency=4
        ) as c:
            with trio.fail_after(600):
                await wait_until(
                    lambda: c.statistics().completed == 9 and c.statistics().dead_lettered == 1
                )
            assert sdk.total("quickq.consumer.jobs.capacity") == 4
            assert sdk.total("quickq.consumer.jobs.running") == 0

        sent = sdk.points("messaging.client.sent.messages")
        assert [(p.value, dict(p.attributes)) for p in sent] == [
            (10, {**BASE, "messaging.operation.name": "send"})
        ]
        process = {**BASE, "messaging.operation.name": "process"}
        assert sdk.total("messaging.client.consumed.messages", **process) == 13
        assert sdk.total("messaging.client.consumed.messages") == 13
        durations = sdk.points("messaging.process.duration")
        assert sum(p.count for p in durations) == 13
        assert all(tuple(p.explicit_bounds) == DURATION_BUCKETS for p in durations)
        by_outcome = {
            (p.attributes["messaging.quickq.job.outcome"], p.attributes.get("error.type")): p.count
            for p in durations
        }
        assert by_outcome == {
            ("completed", None): 9,
            ("retried", "RuntimeError"): 3,
            ("dead_lettered", "RuntimeError"): 1,
        }
        assert all(p.min >= 0.0199 for p in durations)  # virtual time: the handler's sleep
        waits = sdk.points("quickq.job.wait.duration")
        assert sum(p.count for p in waits) == 13
        assert all(tuple(p.explicit_bounds) == WAIT_BUCKETS for p in waits)
        assert sdk.total("quickq.job.retries", **process, **{"error.type": "RuntimeError"}) == 3
        assert sdk.total("quickq.job.retries") == 3
        dead = sdk.points("quickq.job.dead_letters")
        assert [(p.value, p.attributes["messaging.quickq.dead.reason"]) for p in dead] == [
            (1, "failed")
        ]
        assert sdk.total("quickq.lease.lost") == 0
        assert sdk.total("quickq.job.released") == 0
        operations = sdk.points("messaging.client.operation.duration")
        send = [p for p in operations if p.attributes["messaging.operation.name"] == "send"]
        settle = [p for p in operations if p.attributes["messaging.operation.name"] == "settle"]
        assert sum(p.count for p in send) == 1
        assert sum(p.count for p in settle) >= 1
        # Stopped: the consumer leaves the gauges.
        assert sdk.total("quickq.consumer.jobs.capacity") == 0

    run_virtual(main)


def test_released_and_lost_attempts_are_counted() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("work")
    async def work(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(1000)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        await queue.enqueue_many([quickq.NewJob("q", "work") for _ in range(2)])
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, telemetry=sdk.telemetry, grace_period=1
        ) as c:
            await wait_until(lambda: c.statistics().running == 2)
            assert sdk.total("quickq.consumer.jobs.running") == 2
        # Cancelled at the end of the grace period: both given back.
        assert sdk.total("quickq.job.released", **BASE) == 2
        assert sdk.total("messaging.client.consumed.messages") == 2
        outcomes = {
            p.attributes["messaging.quickq.job.outcome"]: p.count
            for p in sdk.points("messaging.process.duration")
        }
        assert outcomes == {"released": 2}

    run_virtual(main)


def test_attempts_started_are_observed_and_kept_once_a_consumer_stops() -> None:
    """messaging.client.consumed.messages reads each running consumer's own
    count; a consumer that stops leaves its count, so the counter never goes back."""
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("work")
    async def work(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    async def drain_once(store: MemoryStore, queue: quickq.JobQueue, n: int, total: int) -> None:
        await queue.enqueue_many([quickq.NewJob("q", "work") for _ in range(n)])
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, telemetry=sdk.telemetry
        ) as c:
            await c.wait_idle()
            assert sdk.total("messaging.client.consumed.messages", **BASE) == total

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        await drain_once(store, queue, 3, 3)
        assert sdk.total("messaging.client.consumed.messages", **BASE) == 3
        await drain_once(store, queue, 2, 5)
        assert sdk.total("messaging.client.consumed.messages", **BASE) == 5

    run_virtual(main)
