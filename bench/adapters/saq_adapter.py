"""SAQ 0.26 on Redis.

Worker: SAQ's ``Worker`` in this process with ``concurrency``; its defaults
otherwise (blocking dequeue, so no poll delay). SAQ has no batch enqueue
(``Queue.map`` gathers single enqueues and waits for results). A job whose
worker died is re-queued by the sweep once its ``timeout`` passes; the crash
scenario sets timeout to the lease (5 s), the sweep to every 5 s and
``retries=3`` (SAQ's default of 1 attempt would drop it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import _common as c
from saq import Queue, Worker

P = c.Params


async def bench_job(ctx: Any, *, job: int, sleep_s: float, t_sched: float, tag: str) -> None:
    await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)


class Saq(c.AsyncSystem):
    batch_na = "no batch enqueue API (Queue.map gathers single enqueues)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.queue = Queue.from_url(p["redis_url"])
        self.crash = p["scenario"] == "crash"
        self.task: asyncio.Task[None] | None = None
        self.worker: Worker | None = None

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        opts: dict[str, Any] = {}
        if self.crash:
            opts = {"timeout": int(self.p["lease_s"]), "retries": 3}
        await self.queue.enqueue(
            "bench_job", job=job, sleep_s=sleep_s, t_sched=t_sched, tag=tag, **opts
        )

    async def start_worker(self, concurrency: int) -> None:
        timers: Any = {"sweep": int(self.p["lease_s"])} if self.crash else None
        self.worker = Worker(self.queue, [bench_job], concurrency=concurrency, timers=timers)
        self.task = asyncio.create_task(self.worker.start())

    async def stop_worker(self) -> None:
        assert self.worker is not None and self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def run(p: P, fn: Any) -> Any:
    async def main() -> Any:
        s = Saq(p)
        await s.queue.connect()
        try:
            return await fn(s)
        finally:
            await s.queue.disconnect()

    return asyncio.run(main())


def enqueue(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_enqueue(s, p))


def drain(p: P) -> c.Metrics:
    async def go(s: Saq) -> c.Metrics:
        return c.drain_metrics(p["n"], await c.a_drain(s, p))

    return run(p, go)


def sleep(p: P) -> c.Metrics:
    async def go(s: Saq) -> c.Metrics:
        return c.sleep_metrics(p, await c.a_drain(s, p, p["sleep_s"]))

    return run(p, go)


def latency(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_latency(s, p))


def crash(p: P) -> c.Metrics:
    def enqueue_all(n: int, job_s: float) -> None:
        async def go(s: Saq) -> None:
            for i in range(n):
                await s.enqueue(i, job_s)

        run(p, go)

    out = c.run_crash(p, enqueue_all, {})
    out["note"] = f"timeout={p['lease_s']} s, sweep every {p['lease_s']} s, retries=3"
    return out


def worker(p: P) -> None:
    async def go(s: Saq) -> None:
        await s.start_worker(p["concurrency"])
        await asyncio.Event().wait()

    run(p, go)


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    c.main(
        {
            "enqueue": enqueue,
            "drain": drain,
            "sleep": sleep,
            "latency": latency,
            "crash": crash,
            "fairness": lambda p: run(p, lambda s: c.a_fairness(s, p)),
        },
        worker,
    )
