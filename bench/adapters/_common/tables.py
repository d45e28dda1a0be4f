"""Scenario tables: what an adapter hands to :func:`main`, built from the drivers.

An adapter's table maps scenario ids to functions of the parameters. The
helpers here build the parts that are the same for every system of a kind;
``bench/timing.py`` reads adapters' tables (without importing them) by these
functions' names, so keep them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .drivers import (
    a_drain_result,
    a_enqueue,
    a_fairness,
    a_latency,
    a_sleep_result,
    chunks,
    enqueue_chunk,
)
from .processes import EnqueueAll, run_crash, run_longjobs
from .protocol import Metrics, NotApplicable, Params
from .systems import AsyncSystem, Runner, SyncSystem, blocking

Scenario = Callable[[Params], Metrics]
Worker = Callable[[Params], None]
"""The ``role=worker`` process's body: serve the queue until killed."""


def async_scenarios(run: Runner[AsyncSystem]) -> dict[str, Scenario]:
    """Scenarios 1-4 and 7 through the shared async drivers."""
    return {
        "enqueue": lambda p: run(p, lambda s: a_enqueue(s, p)),
        "drain": lambda p: run(p, lambda s: a_drain_result(s, p)),
        "sleep": lambda p: run(p, lambda s: a_sleep_result(s, p)),
        "latency": lambda p: run(p, lambda s: a_latency(s, p)),
        "fairness": lambda p: run(p, lambda s: a_fairness(s, p)),
    }


def sync_scenarios(make: Callable[[Params], SyncSystem]) -> dict[str, Scenario]:
    """Scenarios 1-4 and 7 for a thread-based system, through the same drivers."""
    return {
        "enqueue": lambda p: blocking(a_enqueue, make(p), p),
        "drain": lambda p: blocking(a_drain_result, make(p), p),
        "sleep": lambda p: blocking(a_sleep_result, make(p), p),
        "latency": lambda p: blocking(a_latency, make(p), p),
        "fairness": lambda p: blocking(a_fairness, make(p), p),
    }


def async_enqueue_all(run: Runner[AsyncSystem], p: Params) -> EnqueueAll:
    """``enqueue_all(n, job_s)`` for :func:`run_crash` and :func:`run_longjobs`:
    batches of 100 where the system has a batch enqueue, else one at a time."""

    def enqueue_all(n: int, job_s: float) -> None:
        async def go(s: AsyncSystem) -> None:
            for batch in chunks(range(n), 100):
                await enqueue_chunk(s, batch, job_s)

        run(p, go)

    return enqueue_all


def sync_enqueue_all(s: SyncSystem) -> EnqueueAll:
    def enqueue_all(n: int, job_s: float) -> None:
        for i in range(n):
            s.enqueue(i, job_s)

    return enqueue_all


def async_worker(run: Runner[AsyncSystem]) -> Worker:
    """The ``role=worker`` process of an async system: start, then serve until killed."""

    def worker(p: Params) -> None:
        async def go(s: AsyncSystem) -> None:
            await s.start_worker(p["concurrency"])
            while True:
                await s.sleep(3600)

        run(p, go)

    return worker


def sync_worker(make: Callable[[Params], SyncSystem]) -> Worker:
    def worker(p: Params) -> None:
        make(p).start_worker(p["concurrency"])
        while True:
            time.sleep(1)

    return worker


def not_applicable(reason: str) -> Scenario:
    """A scenario the system has no concept for: the result says n/a, and why."""

    def handler(p: Params) -> Metrics:
        raise NotApplicable(reason)

    return handler


def leased_scenarios(
    enqueue_all: Callable[[Params], EnqueueAll], setting: Callable[[Params], str]
) -> dict[str, Scenario]:
    """Scenarios 5 and 6 for a durable peer whose lease-like setting (``setting(p)``
    says which, from ``p["lease_s"]``) bounds both crash recovery and how long
    a job may run: ``enqueue_all(p)`` gives what queues their jobs."""

    def crash(p: Params) -> Metrics:
        out = run_crash(p, enqueue_all(p))
        out["note"] = setting(p)
        return out

    def longjobs(p: Params) -> Metrics:
        return run_longjobs(p, enqueue_all(p), setting(p))

    return {"crash": crash, "longjobs": longjobs}
