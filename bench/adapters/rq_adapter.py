"""RQ 2 on Redis.

Worker: RQ's ``WorkerPool`` with ``num_workers=concurrency`` worker processes
(RQ runs one job at a time per worker, each in a forked work horse: its
documented model), started as a child process of this adapter; jobs report
completion through a file (see ``Recorder.follow``). Batched enqueue:
``Queue.enqueue_many`` (one pipeline). A dead worker's jobs are moved out of
the started registry at a worker's maintenance pass after their timeout and
retried if they have retries left: the crash scenario sets ``job_timeout`` and
the maintenance interval to its lease (5 s) and ``Retry(max=3)``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as c
from redis import Redis
from rq import Queue, Retry, Worker
from rq.worker_pool import WorkerPool

P = c.Params
LEASE = 5


class MaintainedWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, maintenance_interval=LEASE, **kwargs)


class Rq(c.SyncSystem):
    def __init__(self, p: P) -> None:
        self.p = p
        self.redis = Redis.from_url(p["redis_url"])
        self.q = Queue("bench", connection=self.redis)
        self.crash = p["scenario"] == "crash"
        self.proc: subprocess.Popen[bytes] | None = None

    def _opts(self) -> dict[str, Any]:
        if self.crash:
            return {"job_timeout": int(self.p["lease_s"]), "retry": Retry(max=3)}
        return {}

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.q.enqueue(c.job_body, job, sleep_s, t_sched, tag, result_ttl=0, **self._opts())

    def enqueue_batch(self, jobs: list[int]) -> None:
        self.q.enqueue_many(
            [Queue.prepare_data(c.job_body, args=(j, 0.0, 0.0, ""), result_ttl=0) for j in jobs]
        )

    def start_worker(self, concurrency: int) -> None:
        record = str(Path(self.p["workdir"]) / "done.txt")
        c.RECORDER.follow(record)
        wp = {**self.p, "role": "worker", "record_file": record, "concurrency": concurrency}
        self.proc = subprocess.Popen(
            [sys.executable, sys.argv[0], json.dumps(wp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, concurrency: int) -> None:
        deadline = time.monotonic() + 60
        while Worker.count(connection=self.redis) < concurrency and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)

    def stop_worker(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def enqueue(p: P) -> c.Metrics:
    return c.sync_enqueue(Rq(p), p)


def drain(p: P) -> c.Metrics:
    return c.drain_metrics(p["n"], c.sync_drain(Rq(p), p))


def sleep(p: P) -> c.Metrics:
    return c.sleep_metrics(p, c.sync_drain(Rq(p), p, p["sleep_s"]))


def latency(p: P) -> c.Metrics:
    return c.sync_latency(Rq(p), p)


def crash(p: P) -> c.Metrics:
    r = Rq(p)

    def enqueue_all(n: int, job_s: float) -> None:
        for i in range(n):
            r.enqueue(i, job_s)

    out = c.run_crash(p, enqueue_all, {})
    out["note"] = f"job_timeout and maintenance interval {p['lease_s']} s, Retry(max=3)"
    return out


def worker(p: P) -> None:
    global LEASE
    LEASE = int(p.get("lease_s", 600)) if p["scenario"] == "crash" else 600
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
    logging.disable(logging.CRITICAL)
    c.main(
        {
            "enqueue": enqueue,
            "drain": drain,
            "sleep": sleep,
            "latency": latency,
            "crash": crash,
            "fairness": lambda p: c.sync_fairness(Rq(p), p),
        },
        worker,
    )
