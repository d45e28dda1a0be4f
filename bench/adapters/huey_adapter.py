"""Huey 3 with its SQLite storage (durable: fsync=True) or its in-memory storage.

Consumer: Huey's own ``Consumer`` with worker threads, started in this process
(in-memory storage only works in one process). Polling: Huey's default
``initial_delay=0.1`` with ``max_delay=0.1``, so an idle worker polls every
100 ms rather than backing off to the default 10 s.
"""

from __future__ import annotations

from pathlib import Path

from huey import Huey as HueyApp
from huey import MemoryHuey, SqliteHuey
from huey.consumer import Consumer

import _common as c

P = c.Params
HUEY = None


def make_huey(p: P) -> HueyApp:
    global HUEY
    if p["variant"] == "sqlite":
        HUEY = SqliteHuey(
            "bench", filename=str(Path(p["workdir"]) / "huey.db"), fsync=True, results=False
        )
    else:
        HUEY = MemoryHuey("bench", results=False)
    return HUEY


class Huey(c.SyncSystem):
    batch_na = "no batch enqueue API (Task.map enqueues one at a time)"

    def __init__(self, p: P) -> None:
        self.huey = make_huey(p)
        self.task = self.huey.task(name="bench_job")(c.job_body)
        self.consumer: Consumer | None = None

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.task(job, sleep_s, t_sched, tag)

    def enqueue_prio(self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int) -> None:
        # Huey: higher number runs first.
        self.task(job, sleep_s, t_sched, tag, priority=prio)

    def start_worker(self, concurrency: int) -> None:
        self.consumer = self.huey.create_consumer(
            workers=concurrency, periodic=False, initial_delay=0.1, max_delay=0.1
        )
        for _, t in self.consumer.worker_threads:
            t.start()

    def stop_worker(self) -> None:
        assert self.consumer is not None
        self.consumer.stop_flag.set()


def fresh(p: P) -> Huey:
    for f in Path(p["workdir"]).glob("huey.db*"):
        f.unlink()
    return Huey(p)


def crash(p: P) -> c.Metrics:
    if p["variant"] != "sqlite":
        raise c.NotApplicable("in-memory storage: a killed process loses every queued job")
    return c.run_crash(p, c.sync_enqueue_all(fresh(p)))


if __name__ == "__main__":
    c.main(
        {
            **c.sync_scenarios(fresh),
            "crash": crash,
            "longjobs": c.not_applicable(
                "Huey has no lease or visibility timeout: a worker takes a job off the queue"
                " for good (see the crash scenario), so a long job cannot be handed out twice"
            ),
            # Huey: a larger number runs first.
            "priority": lambda p: c.blocking(c.a_priority, fresh(p), p, 10, 0),
        },
        c.sync_worker(Huey),
    )
