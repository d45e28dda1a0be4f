"""Procrastinate 3 on PostgreSQL (psycopg 3).

Worker: ``App.run_worker_async`` in this process with ``concurrency``,
LISTEN/NOTIFY on (its default) and ``delete_jobs="always"`` (so the table does
not grow; quickq deletes finished jobs too). Batched enqueue:
``Task.batch_defer_async``. Procrastinate does not re-run a dead worker's jobs
by itself: its documentation's recipe is a periodic task that retries
``get_stalled_jobs()``. The crash scenario's new worker runs that recipe every
lease (5 s) with ``update_heartbeat_interval`` and ``seconds_since_heartbeat``
scaled to the lease. The long-job scenario runs the same worker with its 1 s
lease: a running job's worker keeps heartbeating, so the recipe should leave
it alone. Priorities: ``configure(priority=...)``, a larger one first.
"""

from __future__ import annotations

import asyncio
import contextlib

from procrastinate import App, PsycopgConnector

import _common as c

P = c.Params


class Procrastinate(c.AsyncioSystem):
    def __init__(self, p: P) -> None:
        self.p = p
        self.app = App(connector=PsycopgConnector(conninfo=p["postgres_url"]))

        @self.app.task(name="bench_job", queue="bench")
        async def bench_job(job: int, sleep_s: float, t_sched: float, tag: str) -> None:
            await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)

        self.task = bench_job
        self.worker: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._opened = self.app.open_async()
        await self._opened.__aenter__()
        if self.p.get("role") != "worker":
            with contextlib.suppress(Exception):  # already applied (crash workers)
                await self.app.schema_manager.apply_schema_async()

    async def close(self) -> None:
        await self._opened.__aexit__(None, None, None)

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        await self.task.defer_async(job=job, sleep_s=sleep_s, t_sched=t_sched, tag=tag)

    async def enqueue_prio(
        self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int
    ) -> None:
        await self.task.configure(priority=prio).defer_async(
            job=job, sleep_s=sleep_s, t_sched=t_sched, tag=tag
        )

    async def enqueue_batch(self, jobs: list[int], sleep_s: float = 0.0) -> None:
        await self.task.batch_defer_async(
            *({"job": j, "sleep_s": sleep_s, "t_sched": 0.0, "tag": ""} for j in jobs)
        )

    async def start_worker(self, concurrency: int) -> None:
        hb = self.p.get("lease_s", 10.0) / 3 if c.leased(self.p) else 10.0
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
        await c.cancel_task(self.worker)


run = c.asyncio_runner(Procrastinate)


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
    c.main(
        {
            **c.async_scenarios(run),
            **c.leased_scenarios(
                lambda p: c.async_enqueue_all(run, p),
                lambda p: (
                    f"stalled-jobs recipe every {p['lease_s']} s (seconds_since_heartbeat"
                    f"={p['lease_s']}), heartbeat every {p['lease_s']}/3 s"
                ),
            ),
            # Procrastinate 3: a larger priority is fetched first.
            "priority": lambda p: run(p, lambda s: c.a_priority(s, p, best=10, worst=-10)),
        },
        worker,
    )
