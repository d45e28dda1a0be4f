"""taskiq 0.13 with its InMemoryBroker, or taskiq-redis's RedisStreamBroker (acks).

InMemoryBroker has no queue: ``kiq`` starts the task at once in the caller's
event loop, and ``max_async_tasks`` only applies to a listening receiver, so it
has no concurrency limit. Its "drain" therefore measures kick-and-run of all
jobs, and the concurrency-32 sleep scenario is n/a.

The stream broker's ``idle_timeout`` is its visibility timeout: a message not
acknowledged within it is claimed again. The crash and long-job scenarios set
it to their lease. taskiq's brokers here have no job priorities.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common as c

P = c.Params


class Taskiq(c.AsyncioSystem):
    batch_na = "no batch enqueue API (one kiq per task)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.redis = p["variant"] == "redis"
        if self.redis:
            from taskiq_redis import RedisStreamBroker

            # The stream broker acknowledges after the result is saved, so a
            # dead worker's messages are reclaimed after idle_timeout (default
            # 10 min; the crash scenario sets it to its lease).
            idle_ms = int(p.get("lease_s", 600) * 1000) if c.leased(p) else 600_000
            self.broker: Any = RedisStreamBroker(p["redis_url"], idle_timeout=idle_ms)
        else:
            from taskiq import InMemoryBroker

            self.broker = InMemoryBroker(max_stored_results=1)

        async def bench_job(job: int, sleep_s: float, t_sched: float, tag: str) -> None:
            await c.ajob_body(job, sleep_s, t_sched, asyncio.sleep, tag)

        self.task = self.broker.task(task_name="bench_job")(bench_job)
        self.worker_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.broker.startup()

    async def close(self) -> None:
        await self.broker.shutdown()

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        await self.task.kiq(job, sleep_s, t_sched, tag)

    async def start_worker(self, concurrency: int) -> None:
        if not self.redis:
            return  # tasks already run at kiq
        from taskiq.receiver import Receiver

        self.broker.is_worker_process = True
        receiver = Receiver(self.broker, max_async_tasks=concurrency, run_startup=False)
        self.finish = asyncio.Event()
        self.worker_task = asyncio.create_task(receiver.listen(self.finish))

    async def stop_worker(self) -> None:
        if self.worker_task is not None:
            self.finish.set()
            self.worker_task.cancel()


run = c.asyncio_runner(Taskiq)


def enqueue(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("InMemoryBroker has no queue: kiq runs the task at once")
    return run(p, lambda s: c.a_enqueue(s, p))


def drain(p: P) -> c.Metrics:
    async def go(s: Taskiq) -> c.Metrics:
        if s.redis:
            return await c.a_drain_result(s, p)
        c.RECORDER.reset(p["n"])
        with c.Meter() as m:
            for i in range(p["n"]):
                await s.enqueue(i)
            await s.broker.wait_all()
            await c.RECORDER.await_done(s.sleep, 600)
        out = c.drain_metrics(p["n"], m)
        out["note"] = "InMemoryBroker: kick-and-run, no queue to drain"
        return out

    return run(p, go)


def sleep(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("InMemoryBroker has no concurrency limit: all jobs run at once")
    return run(p, lambda s: c.a_sleep_result(s, p))


def fairness(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("InMemoryBroker has no queue: kiq runs the task at once, no backlog")
    return run(p, lambda s: c.a_fairness(s, p))


def crash(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("in memory: a killed process loses every job")
    return c.run_crash(p, c.async_enqueue_all(run, p))


def longjobs(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("InMemoryBroker: no queue, nothing to redeliver")
    note = f"stream broker idle_timeout={p['lease_s']} s"
    return c.run_longjobs(p, c.async_enqueue_all(run, p), note)


if __name__ == "__main__":
    c.main(
        {
            **c.async_scenarios(run),
            "enqueue": enqueue,
            "drain": drain,
            "sleep": sleep,
            "fairness": fairness,
            "crash": crash,
            "longjobs": longjobs,
            "priority": c.not_applicable(
                "taskiq's in-memory and Redis stream brokers have no job priorities"
            ),
        },
        c.async_worker(run),
    )
