"""The scenario drivers: scenarios 1-4, 7 and 8, the same code for every system.

Each driver takes an :class:`AsyncSystem` (a thread-based system through
:class:`Blocking`) and the scenario's parameters, and returns its metrics.
Phases are time-boxed by ``max_s`` so that a slow system costs a bounded time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from .meters import Meter
from .metrics import (
    PRIORITY_WAIT_S,
    drain_metrics,
    fairness_metrics,
    latency_result,
    priority_metrics,
    sleep_metrics,
)
from .protocol import Metrics, Params
from .recorder import RECORDER
from .systems import AsyncSystem

T = TypeVar("T")

START_ALLOWANCE_S = 60.0
FIFO_NOTE = "one FIFO queue: the peer has no per-tenant scheduling"
TENANTS_NOTE = "A and B are two queues (tenants)"


def chunks(it: Iterable[T], size: int) -> Iterator[list[T]]:
    buf: list[T] = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def open_loop_schedule(rate: float, duration: float) -> list[float]:
    """Offsets (seconds from start) at which an open-loop producer sends."""
    n = max(1, int(rate * duration))
    return [i / rate for i in range(n)]


def latency_grace(p: Params) -> float:
    """How long a latency run waits, after the last send, for the last jobs to start."""
    return max(5.0, 2 * float(p.get("max_s", 60)))


def producer_gave_up(p: Params, behind: float) -> bool:
    """An open-loop producer more than the phase's time box behind its schedule
    stops sending (the system under test starves it: RQ's 32 forking workers
    on 2 cores); the jobs it did not send count as not started."""
    return behind > float(p.get("max_s", 60))


def drain_over(limit: float) -> bool:
    """Whether a time-boxed drain should stop: *limit* seconds after its first
    completion (a worker pool's start-up is not part of the box), or when no
    job has completed within START_ALLOWANCE_S of the start."""
    now = time.perf_counter()
    if RECORDER.first_done:
        return now - RECORDER.first_done > limit
    return now - RECORDER.reset_at > START_ALLOWANCE_S


def fill_limit(p: Params, boxes: float = 1.0) -> float:
    """Seconds that filling a queue before a drain may take (slow enqueuers get
    fewer jobs): one time box, or *boxes* of them."""
    return float(p.get("max_s", 600)) * boxes


async def enqueue_chunk(
    s: AsyncSystem, batch: list[int], sleep_s: float = 0.0, **opts: Any
) -> None:
    """Enqueue *batch* with the system's batch call, or one by one if it has none."""
    if s.batch_na:
        for j in batch:
            await s.enqueue(j, sleep_s, **opts)
    else:
        await s.enqueue_batch(batch, sleep_s, **opts)


async def await_drained(s: AsyncSystem, limit: float) -> None:
    """Wait until every job the recorder expects is done, or :func:`drain_over`."""
    while not RECORDER.event.is_set() and not drain_over(limit):
        await s.sleep(0.001)


async def a_enqueue(s: AsyncSystem, p: Params) -> Metrics:
    """Scenario 1: enqueue one at a time, then in batches; each half time-boxed."""
    n, limit = p["n"], p.get("max_s", 600) / 2
    with Meter() as m1:
        for i in range(n):
            await s.enqueue(i)
            if i % 100 == 99 and m1.elapsed() > limit:
                break
    k1 = i + 1
    out: Metrics = {"jobs": k1, "single_jobs_per_s": k1 / m1.wall, "single_cpu_s": m1.cpu}
    if s.batch_na:
        out["batch_na"] = s.batch_na
        return out
    k2 = 0
    with Meter() as m2:
        for batch in chunks(range(n, 2 * n), p["batch"]):
            await s.enqueue_batch(batch)
            k2 += len(batch)
            if m2.elapsed() > limit:
                break
    out.update(
        batch_jobs=k2, batch_jobs_per_s=k2 / m2.wall, batch_cpu_s=m2.cpu, batch_size=p["batch"]
    )
    return out


async def a_fill(s: AsyncSystem, p: Params, n: int, sleep_s: float = 0.0) -> int:
    """Queue up to *n* jobs before a drain, within :func:`fill_limit`; how many."""
    t0, k = time.perf_counter(), 0
    for batch in chunks(range(n), p["batch"]):
        await enqueue_chunk(s, batch, sleep_s)
        k += len(batch)
        if time.perf_counter() - t0 > fill_limit(p):
            break
    return k


async def a_drain(s: AsyncSystem, p: Params, sleep_s: float = 0.0) -> Meter:
    """Scenarios 2 and 3: fill the queue, then time the worker draining it."""
    n = p["n"] = await a_fill(s, p, p["n"], sleep_s)
    RECORDER.reset(n)
    m = Meter().start()
    await s.start_worker(p["concurrency"])
    await await_drained(s, p.get("max_s", 600))
    m.stop()
    m.done, m.planned = RECORDER.done, n
    await s.stop_worker()
    return m


async def a_run_queued(s: AsyncSystem, n: int, concurrency: int, limit_s: float) -> Meter:
    """Time a worker through the *n* jobs already queued, to the last one (or
    *limit_s*); no time box, for runs whose size is the point (quickq's scale
    probes and SQLite comparison)."""
    RECORDER.reset(n)
    m = Meter().start()
    await s.start_worker(concurrency)
    await RECORDER.await_done(s.sleep, limit_s)
    m.stop()
    await s.stop_worker()
    return m


async def a_drain_result(s: AsyncSystem, p: Params) -> Metrics:
    return drain_metrics(p["n"], await a_drain(s, p))


async def a_sleep_result(s: AsyncSystem, p: Params) -> Metrics:
    return sleep_metrics(p, await a_drain(s, p, p["sleep_s"]))


async def a_latency(s: AsyncSystem, p: Params) -> Metrics:
    """Scenario 4: an open-loop producer at ``rate`` jobs/s to an idle worker."""
    sched = open_loop_schedule(p["rate"], p["duration_s"])
    RECORDER.reset(len(sched))
    await s.start_worker(p["concurrency"])
    await s.wait_ready(p["concurrency"])  # an idle worker, as the scenario asks
    t0 = time.time() + 0.01
    behind, sent = 0.0, 0
    for i, off in enumerate(sched):
        target = t0 + off
        delay = target - time.time()
        if delay > 0:
            await s.sleep(delay)
        else:
            behind = max(behind, -delay)
            if producer_gave_up(p, behind):
                break
        await s.enqueue(i, 0.0, target)
        sent += 1
    RECORDER.retarget(sent)
    await RECORDER.await_done(s.sleep, latency_grace(p))
    out = latency_result(p, t0, sched, behind, sent)
    await s.stop_worker()
    return out


def fairness_fill_done(p: Params, t0: float, k: int) -> bool:
    # A's backlog is the point of the scenario: two and a half boxes to fill it.
    return k >= p["a"] or time.perf_counter() - t0 > fill_limit(p, 2.5)


async def a_fairness(s: AsyncSystem, p: Params, tenants: bool = False) -> Metrics:
    """Scenario 7: tenant A's flood queued first (with the system's fastest
    enqueue, time-boxed like a drain's fill), then the worker starts and B
    enqueues its jobs at once (for a pool of worker processes, once the pool
    is up, so that its start-up is not counted in B's wait). A peer without
    tenants gets one FIFO queue; ``tenants=True`` passes ``queue="A"`` /
    ``queue="B"``."""
    a_opts: dict[str, Any] = {"queue": "A"} if tenants else {}
    b_opts: dict[str, Any] = {"queue": "B"} if tenants else {}
    t0, k_a = time.perf_counter(), 0
    for batch in chunks(range(p["a"]), p["batch"]):
        await enqueue_chunk(s, batch, **a_opts)
        k_a += len(batch)
        if fairness_fill_done(p, t0, k_a):
            break
    RECORDER.reset(k_a + p["b"])
    m = Meter().start()
    await s.start_worker(p["concurrency"])
    await s.wait_started(p["concurrency"])
    backlog = k_a - RECORDER.done
    b_sent = []
    for j in range(k_a, k_a + p["b"]):
        t = time.time()
        b_sent.append(t)
        await s.enqueue(j, 0.0, t, "B", **b_opts)
    await await_drained(s, p.get("max_s", 60))
    m.stop()
    await s.stop_worker()
    return fairness_metrics(p, k_a, b_sent, backlog, m, TENANTS_NOTE if tenants else FIFO_NOTE)


async def a_priority(s: AsyncSystem, p: Params, best: int, worst: int) -> Metrics:
    """Scenario 8 for a system with priorities (``s.enqueue_prio``).

    A stream of best-priority jobs of ``job_s`` at exactly the capacity of
    ``concurrency`` slots; a fifth of the way in, one worst-priority job.
    """
    conc, job_s, dur = p["concurrency"], p["job_s"], p["duration_s"]
    rate = conc / job_s
    sched = open_loop_schedule(rate, dur)
    RECORDER.reset(len(sched) + 1)
    await s.start_worker(conc)
    await s.wait_ready(conc)
    t0 = time.time() + 0.01
    low_at = int(len(sched) * 0.2)
    for i, off in enumerate(sched):
        target = t0 + off
        delay = target - time.time()
        if delay > 0:
            await s.sleep(delay)
        await s.enqueue_prio(i, job_s, target, "hi", best)
        if i == low_at:
            await s.enqueue_prio(len(sched), 0.0, time.time(), "lo", worst)
    t_end = time.time()
    done = await RECORDER.await_done(s.sleep, PRIORITY_WAIT_S)
    await s.stop_worker()
    return priority_metrics(p, t0, t0 + sched[low_at], t_end, rate, done)
