"""Dramatiq 2 with its StubBroker (in memory) or its RedisBroker.

Workers: Dramatiq's ``Worker`` with ``worker_threads=concurrency`` in this
process. Dramatiq has no batch enqueue (``group`` sends one message at a time).
"""

from __future__ import annotations

import logging
import time

import _common as c
import dramatiq
from dramatiq import Worker

P = c.Params


def make_broker(p: P) -> dramatiq.Broker:
    if p["variant"] == "redis":
        from dramatiq.brokers.redis import RedisBroker

        opts = {}
        if p["scenario"] == "crash":
            # A dead worker's unacked messages return once its heartbeat is
            # older than heartbeat_timeout (default 60 s), at a maintenance
            # pass (default on 0.1 % of fetches): scale both to the lease.
            opts = {"heartbeat_timeout": int(p["lease_s"] * 1000), "maintenance_chance": 100_000}
        broker: dramatiq.Broker = RedisBroker(url=p["redis_url"], **opts)
    else:
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker()
    dramatiq.set_broker(broker)
    return broker


class Dramatiq(c.SyncSystem):
    batch_na = "no batch enqueue API (group() sends one message at a time)"

    def __init__(self, p: P) -> None:
        self.broker = make_broker(p)
        self.actor = dramatiq.actor(c.job_body, actor_name="bench_job", max_retries=0)
        self.worker: Worker | None = None

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.actor.send(job, sleep_s, t_sched, tag)

    def start_worker(self, concurrency: int) -> None:
        self.worker = Worker(self.broker, worker_threads=concurrency, worker_timeout=100)
        self.worker.start()

    def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.stop()


def enqueue(p: P) -> c.Metrics:
    return c.sync_enqueue(Dramatiq(p), p)


def drain(p: P) -> c.Metrics:
    return c.drain_metrics(p["n"], c.sync_drain(Dramatiq(p), p))


def sleep(p: P) -> c.Metrics:
    return c.sleep_metrics(p, c.sync_drain(Dramatiq(p), p, p["sleep_s"]))


def latency(p: P) -> c.Metrics:
    return c.sync_latency(Dramatiq(p), p)


def crash(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("StubBroker is in memory: a killed process loses every job")
    d = Dramatiq(p)

    def enqueue_all(n: int, job_s: float) -> None:
        for i in range(n):
            d.enqueue(i, job_s)

    return c.run_crash(p, enqueue_all, {})


def worker(p: P) -> None:
    d = Dramatiq(p)
    d.start_worker(p["concurrency"])
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
            "fairness": lambda p: c.sync_fairness(Dramatiq(p), p),
        },
        worker,
    )
