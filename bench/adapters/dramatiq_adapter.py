"""Dramatiq 2 with its StubBroker (in memory) or its RedisBroker.

Workers: Dramatiq's ``Worker`` with ``worker_threads=concurrency`` in this
process. Dramatiq has no batch enqueue (``group`` sends one message at a time).

Priority is an actor's, not a message's, and it is worker-local: a worker
runs the highest-priority messages among those it has prefetched (twice its
threads), while the broker's queue stays FIFO. Scenario 8 sends the stream to
an actor of priority 0 and the one job to an actor of priority 100 (lower
numbers run first).
"""

from __future__ import annotations

import dramatiq
from dramatiq import Worker

import _common as c

P = c.Params


def make_broker(p: P) -> dramatiq.Broker:
    if p["variant"] == "redis":
        from dramatiq.brokers.redis import RedisBroker

        opts = {}
        if c.leased(p):
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
        self.low = dramatiq.actor(
            c.job_body, actor_name="bench_job_low", max_retries=0, priority=100
        )
        self.worker: Worker | None = None

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.actor.send(job, sleep_s, t_sched, tag)

    def enqueue_prio(self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int) -> None:
        (self.low if prio else self.actor).send(job, sleep_s, t_sched, tag)

    def start_worker(self, concurrency: int) -> None:
        self.worker = Worker(self.broker, worker_threads=concurrency, worker_timeout=100)
        self.worker.start()

    def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.stop()


def crash(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("StubBroker is in memory: a killed process loses every job")
    return c.run_crash(p, c.sync_enqueue_all(Dramatiq(p)))


def longjobs(p: P) -> c.Metrics:
    if p["variant"] != "redis":
        raise c.NotApplicable("StubBroker: one process, no redelivery to expire")
    note = f"heartbeat_timeout={p['lease_s']} s, maintenance on every fetch"
    return c.run_longjobs(p, c.sync_enqueue_all(Dramatiq(p)), note)


def priority(p: P) -> c.Metrics:
    out = c.blocking(c.a_priority, Dramatiq(p), p, 0, 100)
    note = "actor priority, worker-local: orders only the messages a worker has prefetched"
    out["note"] = "; ".join(x for x in (note, out.get("note", "")) if x)
    return out


if __name__ == "__main__":
    c.main(
        {
            **c.sync_scenarios(Dramatiq),
            "crash": crash,
            "longjobs": longjobs,
            "priority": priority,
        },
        c.sync_worker(Dramatiq),
    )
