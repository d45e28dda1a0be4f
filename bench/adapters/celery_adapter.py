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
from celery import Celery
from celery.signals import worker_ready

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
    app.conf.update(conf)
    return app


class CeleryQ(c.SyncSystem):
    batch_na = "no batch enqueue API (a group sends one message at a time)"

    def __init__(self, p: P) -> None:
        self.p = p
        self.app = make_app(p)
        self.task = self.app.task(name="bench_job")(c.job_body)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = Path(p["workdir"]) / "ready"

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.task.apply_async((job, sleep_s, t_sched, tag))

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
        while not self.ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)

    def stop_worker(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def enqueue(p: P) -> c.Metrics:
    return c.sync_enqueue(CeleryQ(p), p)


def drain(p: P) -> c.Metrics:
    return c.drain_metrics(p["n"], c.sync_drain(CeleryQ(p), p))


def sleep(p: P) -> c.Metrics:
    return c.sleep_metrics(p, c.sync_drain(CeleryQ(p), p, p["sleep_s"]))


def latency(p: P) -> c.Metrics:
    return c.sync_latency(CeleryQ(p), p)


def enqueue_all_fn(p: P) -> Any:
    q = CeleryQ(p)

    def enqueue_all(n: int, job_s: float) -> None:
        for i in range(n):
            q.enqueue(i, job_s)

    return enqueue_all


def crash(p: P) -> c.Metrics:
    out = c.run_crash(p, enqueue_all_fn(p), {})
    out["note"] = f"acks_late, reject_on_worker_lost, visibility_timeout={p['lease_s']} s"
    return out


def longjobs(p: P) -> c.Metrics:
    return c.run_longjobs(p, enqueue_all_fn(p))


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
    logging.disable(logging.CRITICAL)
    c.main(
        {
            "enqueue": enqueue,
            "drain": drain,
            "sleep": sleep,
            "latency": latency,
            "crash": crash,
            "fairness": lambda p: c.sync_fairness(CeleryQ(p), p),
            "longjobs": longjobs,
        },
        worker,
    )
