"""Procrastinate 3 on PostgreSQL (psycopg 3).

Worker: ``App.run_worker_async`` in this process with ``concurrency``,
LISTEN/NOTIFY on (its default) and ``delete_jobs="always"`` (so the table does
not grow; quickq deletes finished jobs too). Batched enqueue:
``Task.batch_defer_async``. Procrastinate does not re-run a dead worker's jobs
by itself: its documentation's recipe is a periodic task that retries
``get_stalled_jobs()``. The crash scenario's new worker runs that recipe every
lease (5 s) with ``update_heartbeat_interval`` and ``seconds_since_heartbeat``
scaled to the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import _common as c
from procrastinate import App, PsycopgConnector

P = c.Params


class Procrastinate(c.AsyncSystem):
    def __init__(self, p: P) -> None:
        self.p = p
        self.app = App(connector=PsycopgConnector(conninfo=p["postgres_url"]))

        @self.app.task(name="bench_job", queue="bench")
        async def bench_job(job: int, sleep_s: float, t_sched: float, tag: str) -> None:
            await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)

        self.task = bench_job
        self.worker: asyncio.Task[None] | None = None

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        await self.task.defer_async(job=job, sleep_s=sleep_s, t_sched=t_sched, tag=tag)

    async def enqueue_batch(self, jobs: list[int], sleep_s: float = 0.0) -> None:
        await self.task.batch_defer_async(
            *({"job": j, "sleep_s": sleep_s, "t_sched": 0.0, "tag": ""} for j in jobs)
        )

    async def start_worker(self, concurrency: int) -> None:
        hb = self.p.get("lease_s", 10.0) / 3 if self.p["scenario"] == "crash" else 10.0
        self.worker = asyncio.create_task(
            self.app.run_worker_async(
                queues=["bench"],
                concurrency=concurrency,
                install_signal_handlers=False,
                delete_jobs="always",
                update_heartbeat_interval=hb,
            )
        )
        await asyncio.sleep(0)

    async def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker


def run(p: P, fn: Any) -> Any:
    async def main() -> Any:
        s = Procrastinate(p)
        async with s.app.open_async():
            if p.get("role") != "worker":
                with contextlib.suppress(Exception):  # already applied (crash workers)
                    await s.app.schema_manager.apply_schema_async()
            return await fn(s)

    return asyncio.run(main())


def enqueue(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_enqueue(s, p))


def drain(p: P) -> c.Metrics:
    async def go(s: Procrastinate) -> c.Metrics:
        return c.drain_metrics(p["n"], await c.a_drain(s, p))

    return run(p, go)


def sleep(p: P) -> c.Metrics:
    async def go(s: Procrastinate) -> c.Metrics:
        return c.sleep_metrics(p, await c.a_drain(s, p, p["sleep_s"]))

    return run(p, go)


def latency(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_latency(s, p))


def crash(p: P) -> c.Metrics:
    def enqueue_all(n: int, job_s: float) -> None:
        async def go(s: Procrastinate) -> None:
            for batch in c.chunks(range(n), 100):
                await s.enqueue_batch(batch, job_s)

        run(p, go)

    out = c.run_crash(p, enqueue_all, {})
    out["note"] = "stalled-jobs recipe every 5 s, heartbeat every 5/3 s"
    return out


def worker(p: P) -> None:
    async def go(s: Procrastinate) -> None:
        await s.start_worker(p["concurrency"])
        while True:  # the documented stalled-jobs recipe, at the lease's pace
            for job in await s.app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=p["lease_s"]
            ):
                await s.app.job_manager.retry_job(job)
            await asyncio.sleep(p["lease_s"])

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
