"""RQ 2 on Redis.

Worker: RQ's ``WorkerPool`` with ``num_workers=concurrency`` worker processes
(RQ runs one job at a time per worker, each in a forked work horse: its
documented model), started as a child process of this adapter; jobs report
completion through a file (see ``Recorder.follow``). Batched enqueue:
``Queue.enqueue_many`` (one pipeline). A dead worker's jobs are moved out of
the started registry at a worker's maintenance pass after their timeout and
retried if they have retries left: the crash scenario sets ``job_timeout`` and
the maintenance interval to its lease (5 s) and ``Retry(max=3)``. The
long-job scenario uses the same settings with its 1 s lease: ``job_timeout``
stops a job that runs longer, and ``Retry`` runs it again. RQ has no job
priorities.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker
from rq.worker_pool import WorkerPool

import _common as c

P = c.Params
LEASE = 5


class MaintainedWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, maintenance_interval=LEASE, **kwargs)


class Rq(c.WorkerProcess):
    def __init__(self, p: P) -> None:
        self.p = p
        self.redis = Redis.from_url(p["redis_url"])
        self.q = Queue("bench", connection=self.redis)
        self.leased = c.leased(p)

    def _opts(self) -> dict[str, Any]:
        if self.leased:
            return {"job_timeout": int(self.p["lease_s"]), "retry": Retry(max=3)}
        return {}

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.q.enqueue(c.job_body, job, sleep_s, t_sched, tag, result_ttl=0, **self._opts())

    def enqueue_batch(self, jobs: list[int]) -> None:
        self.q.enqueue_many(
            [Queue.prepare_data(c.job_body, args=(j, 0.0, 0.0, ""), result_ttl=0) for j in jobs]
        )

    def wait_ready(self, concurrency: int) -> None:
        self.wait_for_pool(lambda: Worker.count(connection=self.redis) >= concurrency, 0.1)


def worker(p: P) -> None:
    global LEASE
    LEASE = max(1, int(p.get("lease_s", 600))) if c.leased(p) else 600
    pool = WorkerPool(
        ["bench"],
        connection=Redis.from_url(p["redis_url"]),
        num_workers=p["concurrency"],
        worker_class=MaintainedWorker,
    )
    pool.start(burst=False, logging_level="ERROR")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    c.main(
        {
            **c.sync_scenarios(Rq),
            **c.leased_scenarios(
                lambda p: c.sync_enqueue_all(Rq(p)),
                lambda p: (
                    f"job_timeout and maintenance interval {p['lease_s']} s, Retry(max=3):"
                    " a longer job is stopped and retried"
                ),
            ),
            "priority": c.not_applicable(
                "RQ has no job priorities (its substitute is separate queues that a worker"
                " polls in order)"
            ),
        },
        worker,
    )
