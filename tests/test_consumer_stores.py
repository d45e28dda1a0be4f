"""The consumer on every store, in real time (short leases and delays)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import quickq

from ._stores import TestStore

pytestmark = pytest.mark.anyio


async def test_jobs_complete_with_retries_and_a_long_job_runs_once(store: TestStore) -> None:
    jobs = quickq.JobRegistry()
    runs: dict[str, int] = {}
    lease = 0.6  # renewed every 0.2 s: a stall of 0.4 s (a loaded CI machine's) is survived

    @jobs.job("work", backoff=quickq.Backoff(base=0.05, jitter=0))
    async def work(payload: Any, meta: quickq.JobMeta) -> None:
        runs[payload] = runs.get(payload, 0) + 1
        if payload.startswith("flaky") and meta.attempt < 3:
            raise RuntimeError("not yet")
        if payload == "long":
            await anyio.sleep(3.5 * lease)  # renewed ten times

    queue = quickq.JobQueue(store, jobs)
    names = ["long", *(f"flaky-{i}" for i in range(3)), *(f"ok-{i}" for i in range(20))]
    await queue.enqueue_many([quickq.NewJob(f"t{i % 4}", "work", n) for i, n in enumerate(names)])
    stall = 0.0  # the event loop's longest stall, to tell a starved machine from a bug

    async def watch_stalls() -> None:
        nonlocal stall
        while True:
            before = anyio.current_time()
            await anyio.sleep(0.01)
            stall = max(stall, anyio.current_time() - before - 0.01)

    async with anyio.create_task_group() as watcher:
        watcher.start_soon(watch_stalls)
        async with quickq.open_consumer(store, jobs, concurrency=8, lease_duration=lease) as c:
            with anyio.fail_after(20):
                while c.statistics().completed < len(names):  # noqa: ASYNC110 (observing from outside)
                    await anyio.sleep(0.02)
        watcher.cancel_scope.cancel()
    why = f"lost={c.statistics().lost}, longest event-loop stall {stall:.3f} s"
    assert runs["long"] == 1, why
    assert all(runs[f"flaky-{i}"] == 3 for i in range(3)), why
    assert c.statistics().lost == 0, why
    for i in range(4):
        assert await queue.stats(f"t{i}") == quickq.QueueStats(f"t{i}", 0, 0, 0, 0)


async def test_an_idle_consumer_in_the_same_process_wakes_at_once(store: TestStore) -> None:
    """With a watchable store the consumer does not poll: a new job wakes it."""
    jobs = quickq.JobRegistry()
    started = anyio.Event()

    @jobs.job("ping")
    async def ping(payload: Any, meta: quickq.JobMeta) -> None:
        started.set()

    queue = quickq.JobQueue(store, jobs)
    async with quickq.open_consumer(store, jobs, idle_poll=30, scan_interval=30) as c:
        await c.wait_idle()
        await anyio.sleep(0.2)  # the consumer is now asleep in its idle wait
        begin = anyio.current_time()
        await queue.enqueue("t", "ping", None)
        with anyio.fail_after(5):
            await started.wait()
        assert anyio.current_time() - begin < 1.0
