"""arq 0.28 on Redis.

Worker: arq's ``Worker`` in this process with ``max_jobs=concurrency``, its
default ``poll_delay`` of 0.5 s, ``keep_result=0`` (no result kept) and
``handle_signals=False``. arq has no batch enqueue. A job whose worker died
comes back once its in-progress key expires (``job_timeout + 10 s``); the crash
scenario sets ``job_timeout`` to the scenario's lease (5 s), as quickq's lease.
The same ``job_timeout`` stops a job that runs longer (it is cancelled and
retried, up to ``max_tries``): the long-job scenario runs jobs of 3x it.
arq has no job priorities.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

import _common as c

P = c.Params


async def bench_job(ctx: Any, job: int, sleep_s: float, t_sched: float, tag: str) -> None:
    await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)


class Arq(c.AsyncioSystem):
    batch_na = "no batch enqueue API (one enqueue_job per job)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.settings = RedisSettings.from_dsn(p["redis_url"])
        self.worker: Worker | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.redis = await create_pool(self.settings)

    async def close(self) -> None:
        await self.redis.aclose()

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        await self.redis.enqueue_job("bench_job", job, sleep_s, t_sched, tag)

    def make_worker(self, concurrency: int) -> Worker:
        timeout = self.p.get("lease_s", 300) if c.leased(self.p) else 300
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


run = c.asyncio_runner(Arq)


if __name__ == "__main__":
    c.main(
        {
            **c.async_scenarios(run),
            **c.leased_scenarios(
                lambda p: c.async_enqueue_all(run, p),
                lambda p: (
                    f"job_timeout={p['lease_s']} s: a dead worker's jobs return after it"
                    " + 10 s; a longer job is stopped (not retried)"
                ),
            ),
            "priority": c.not_applicable("arq has no job priorities (one queue, by enqueue time)"),
        },
        c.async_worker(run),
    )
