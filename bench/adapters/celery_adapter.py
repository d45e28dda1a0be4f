"""Celery 5 with the Redis broker (kombu), no result backend.

Worker: ``celery worker`` (``app.worker_main``) with its default prefork pool
and ``-c concurrency``, in a child process; jobs report completion through a
file (see ``Recorder.follow``). Celery has no batch enqueue (a group sends one
message at a time). By default Celery acknowledges a message when a worker
receives it, so a killed worker loses its jobs; its documentation's remedy,
used in the crash and long-job scenarios, is ``task_acks_late`` with
``task_reject_on_worker_lost``, with Redis's ``visibility_timeout`` (default
1 h) set to the scenario's lease.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

import _common as c

P = c.Params


def make_app(p: P) -> Celery:
    app = Celery("bench", broker=p["redis_url"])
    conf: dict[str, Any] = {"task_ignore_result": True, "worker_hijack_root_logger": False}
    if p["scenario"] in ("crash", "longjobs"):
        conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            broker_transport_options={"visibility_timeout": p["lease_s"]},
        )
    if p["scenario"] == "priority":
        # Celery's documented set-up for priorities on Redis: ten levels (0 is
        # the highest), the priority queue order, and no prefetching beyond
        # the job each process runs (otherwise prefetched jobs run first).
        conf.update(
            broker_transport_options={
                "priority_steps": list(range(10)),
                "sep": ":",
                "queue_order_strategy": "priority",
            },
            task_acks_late=True,
            worker_prefetch_multiplier=1,
        )
    app.conf.update(conf)
    return app


class CeleryQ(c.WorkerProcess):
    batch_na = "no batch enqueue API (a group sends one message at a time)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.app = make_app(p)
        self.task = self.app.task(name="bench_job")(c.job_body)
        self.ready = Path(p["workdir"]) / "ready"

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.task.apply_async((job, sleep_s, t_sched, tag))

    def enqueue_prio(self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int) -> None:
        self.task.apply_async((job, sleep_s, t_sched, tag), priority=prio)

    def wait_ready(self, concurrency: int) -> None:
        self.wait_for_pool(self.ready.exists, 0.05)


def worker(p: P) -> None:
    q = CeleryQ(p)
    ready = q.ready

    @worker_ready.connect
    def _ready(**_: Any) -> None:
        ready.touch()

    q.app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={p['concurrency']}",
            "--loglevel=ERROR",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    c.main(
        {
            **c.sync_scenarios(CeleryQ),
            **c.leased_scenarios(
                lambda p: c.sync_enqueue_all(CeleryQ(p)),
                lambda p: f"acks_late, reject_on_worker_lost, visibility_timeout={p['lease_s']} s",
            ),
            # Redis transport: 0 is the highest priority, 9 the lowest.
            "priority": lambda p: c.blocking(c.a_priority, CeleryQ(p), p, 0, 9),
        },
        worker,
    )
