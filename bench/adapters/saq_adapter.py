"""SAQ 0.26 on Redis.

Worker: SAQ's ``Worker`` in this process with ``concurrency``; its defaults
otherwise (blocking dequeue, so no poll delay). SAQ has no batch enqueue
(``Queue.map`` gathers single enqueues and waits for results). A job whose
worker died is re-queued by the sweep once its ``timeout`` passes; the crash
scenario sets timeout to the lease (5 s), the sweep to every 5 s and
``retries=3`` (SAQ's default of 1 attempt would drop it). The long-job
scenario uses the same settings with its 1 s lease: the sweep aborts a job
past its timeout and retries it. SAQ's Redis queue has no job priorities.
"""

from __future__ import annotations

import asyncio
from typing import Any

from saq import Queue, Worker

import _common as c

P = c.Params


async def bench_job(ctx: Any, *, job: int, sleep_s: float, t_sched: float, tag: str) -> None:
    await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)


class Saq(c.AsyncioSystem):
    batch_na = "no batch enqueue API (Queue.map gathers single enqueues)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.queue = Queue.from_url(p["redis_url"])
        self.leased = c.leased(p)
        self.task: asyncio.Task[None] | None = None
        self.worker: Worker | None = None

    async def open(self) -> None:
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        opts: dict[str, Any] = {}
        if self.leased:
            opts = {"timeout": max(1, int(self.p["lease_s"])), "retries": 3}
        await self.queue.enqueue(
            "bench_job", job=job, sleep_s=sleep_s, t_sched=t_sched, tag=tag, **opts
        )

    async def start_worker(self, concurrency: int) -> None:
        timers: Any = {"sweep": max(1, int(self.p["lease_s"]))} if self.leased else None
        self.worker = Worker(self.queue, [bench_job], concurrency=concurrency, timers=timers)
        self.task = asyncio.create_task(self.worker.start())

    async def stop_worker(self) -> None:
        await c.cancel_task(self.task)


run = c.asyncio_runner(Saq)


if __name__ == "__main__":
    c.main(
        {
            **c.async_scenarios(run),
            **c.leased_scenarios(
                lambda p: c.async_enqueue_all(run, p),
                lambda p: f"timeout={p['lease_s']} s, sweep every {p['lease_s']} s, retries=3",
            ),
            "priority": c.not_applicable("SAQ's Redis queue has no job priorities"),
        },
        c.async_worker(run),
    )
