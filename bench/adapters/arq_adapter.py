"""arq 0.28 on Redis.

Worker: arq's ``Worker`` in this process with ``max_jobs=concurrency``, its
default ``poll_delay`` of 0.5 s, ``keep_result=0`` (no result kept) and
``handle_signals=False``. arq has no batch enqueue. A job whose worker died
comes back once its in-progress key expires (``job_timeout + 10 s``); the crash
scenario sets ``job_timeout`` to the scenario's lease (5 s), as quickq's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import _common as c
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

P = c.Params


async def bench_job(ctx: Any, job: int, sleep_s: float, t_sched: float, tag: str) -> None:
    await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)


class Arq(c.AsyncSystem):
    batch_na = "no batch enqueue API (one enqueue_job per job)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.settings = RedisSettings.from_dsn(p["redis_url"])
        self.worker: Worker | None = None
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.redis = await create_pool(self.settings)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        await self.redis.enqueue_job("bench_job", job, sleep_s, t_sched, tag)

    def make_worker(self, concurrency: int) -> Worker:
        timeout = self.p.get("lease_s", 300) if self.p["scenario"] == "crash" else 300
        return Worker(
            functions=[func(bench_job, name="bench_job", timeout=timeout, max_tries=5)],
            redis_settings=self.settings,
            max_jobs=concurrency,
            keep_result=0,
            handle_signals=False,
        )

    async def start_worker(self, concurrency: int) -> None:
        self.worker = self.make_worker(concurrency)
        self.task = asyncio.create_task(self.worker.async_run())

    async def stop_worker(self) -> None:
        assert self.worker is not None and self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker.close()


def run(p: P, fn: Any) -> Any:
    async def main() -> Any:
        s = Arq(p)
        await s.connect()
        try:
            return await fn(s)
        finally:
            await s.redis.aclose()

    return asyncio.run(main())


def enqueue(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_enqueue(s, p))


def drain(p: P) -> c.Metrics:
    async def go(s: Arq) -> c.Metrics:
        return c.drain_metrics(p["n"], await c.a_drain(s, p))

    return run(p, go)


def sleep(p: P) -> c.Metrics:
    async def go(s: Arq) -> c.Metrics:
        return c.sleep_metrics(p, await c.a_drain(s, p, p["sleep_s"]))

    return run(p, go)


def latency(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_latency(s, p))


def crash(p: P) -> c.Metrics:
    def enqueue_all(n: int, job_s: float) -> None:
        async def go(s: Arq) -> None:
            for i in range(n):
                await s.enqueue(i, job_s)

        run(p, go)

    out = c.run_crash(p, enqueue_all, {})
    out["note"] = f"job_timeout={p['lease_s']} s: a dead worker's jobs return after it + 10 s"
    return out


def worker(p: P) -> None:
    async def go(s: Arq) -> None:
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
