"""A finished run's metrics, per scenario, from its :class:`Meter` and the recorder.

Jobs that had not started when a run stopped count at their wait so far (a
lower bound), so that a system that falls behind is not flattered by leaving
its slowest jobs out.
"""

from __future__ import annotations

import time

from .meters import Meter, latency_metrics
from .protocol import Metrics, Params
from .recorder import RECORDER

PRIORITY_WAIT_S = 120.0
"""How long the priority scenario waits for its last jobs."""


def count_unstarted(lat: list[float], sent_at: list[float]) -> int:
    """How many of the jobs sent at *sent_at* have no latency in *lat*; each is
    added to *lat* at its wait so far, the latest-sent taken as the unstarted
    ones (the queues here are FIFO)."""
    missing = len(sent_at) - len(lat)
    if missing > 0:
        now = time.time()
        lat += [now - t for t in sent_at[-missing:]]
    return missing


def steady_s(meter: Meter) -> float:
    """Seconds from the first completion to the end of the phase (its wall time
    if nothing completed), so that a worker pool's start-up is not counted."""
    return meter.end - RECORDER.first_done if RECORDER.first_done else meter.wall


def note_time_box(out: Metrics, k: int, n: int, meter: Meter) -> None:
    if k < n:
        out["note"] = f"time-boxed: {k} of {n} jobs done in {meter.wall:.0f} s"


def latency_result(
    p: Params, t0: float, sched: list[float], behind: float, sent: int | None = None
) -> Metrics:
    """Percentiles of every scheduled job's wait. A job that had not started when
    the run stopped, or was never sent because the producer fell too far behind,
    counts with its wait so far since its scheduled send."""
    with RECORDER.lock:
        lat = list(RECORDER.latencies)
    missing = count_unstarted(lat, [t0 + off for off in sched])
    out = latency_metrics(lat)
    out.update(rate=p["rate"], producer_max_behind_ms=behind * 1e3)
    if missing > 0:
        out["not_started"] = missing
        out["note"] = f"{missing} of {len(sched)} jobs not started; counted at their wait so far"
    if sent is not None and sent < len(sched):
        out["not_sent"] = len(sched) - sent
        out["note"] += (
            f" ({len(sched) - sent} never sent: the producer fell over {p.get('max_s')} s"
            " behind its schedule)"
        )
    return out


def drain_metrics(n: int, meter: Meter) -> Metrics:
    """Throughput from the first completion to the last, so that worker start-up
    (one pool of 32 processes for RQ and Celery) is not counted; the wall time
    including start-up is reported beside it."""
    n = meter.planned or n
    k = meter.jobs(n)
    if k == 0:
        raise RuntimeError("no job completed within the time limit")
    steady = steady_s(meter)
    out: Metrics = {
        "jobs": k,
        "wall_s": meter.wall,
        "jobs_per_s": (k - 1) / steady if k > 1 and steady > 0 else k / meter.wall,
        "jobs_per_s_incl_start": k / meter.wall,
        "cpu_s": meter.cpu,
        "cpu_us_per_job": meter.cpu / k * 1e6,
    }
    note_time_box(out, k, n, meter)
    return out


def sleep_metrics(p: Params, meter: Meter) -> Metrics:
    """Efficiency of sleeping jobs: the ideal wall time at the concurrency over the actual."""
    n, conc, s = meter.planned or p["n"], p["concurrency"], p["sleep_s"]
    k = meter.jobs(n)
    ideal = k * s / conc
    out: Metrics = {
        "jobs": k,
        "wall_s": meter.wall,
        "ideal_s": ideal,
        "efficiency": ideal / meter.wall,
        "cpu_s": meter.cpu,
    }
    note_time_box(out, k, n, meter)
    return out


def longjobs_metrics(p: Params, starts: list[int], done: list[int], note: str) -> Metrics:
    """Scenario 6's result: executions per job, from the start and completion ids."""
    return {
        "jobs": p["n"],
        "executions": len(starts),
        "completed": len(set(done)),
        "duplicated": len(starts) - len(set(starts)),
        "note": f"{note}; jobs of {p['job_s']} s; duplicated = executions beyond one per job",
    }


def fairness_metrics(
    p: Params, k_a: int, b_sent: list[float], backlog_at_b: int, meter: Meter, note: str
) -> Metrics:
    """Scenario 7's result: B's waits (its unstarted jobs at their wait so far)
    and A's throughput meanwhile."""
    with RECORDER.lock:
        lat = [x for tag, x in RECORDER.started_tags if tag == "B"]
        done = RECORDER.done
    missing = count_unstarted(lat, b_sent)
    out = latency_metrics(lat, "b_")
    a_done = max(0, done - (len(b_sent) - max(0, missing)))
    steady = steady_s(meter)
    out.update(
        a_jobs_per_s=a_done / steady if steady > 0 else 0.0,
        a_done=a_done,
        a_queued=k_a,
        a_backlog_at_b=backlog_at_b,
        b_started=len(b_sent) - max(0, missing),
    )
    notes = [note]
    if k_a < p["a"]:
        notes.append(f"A's flood time-boxed: {k_a} of {p['a']} jobs queued")
    if missing > 0:
        notes.append(
            f"{missing} of {len(b_sent)} B jobs not started when the {p.get('max_s')} s box"
            " ended; counted at their wait so far"
        )
    out["note"] = "; ".join(notes)
    return out


def priority_metrics(
    p: Params, t0: float, t_low: float, t_end: float, rate: float, done: bool
) -> Metrics:
    """Scenario 8's result: the worst-priority job's wait beside the stream's."""
    lo = [x for tag, x in RECORDER.started_tags if tag == "lo"]
    hi = [x for tag, x in RECORDER.started_tags if tag == "hi"]
    out = latency_metrics(hi, "high_")
    out.update(
        low_wait_ms=lo[0] * 1e3 if lo else None,
        stream_after_low_ms=(t_end - t_low) * 1e3,
        rate=rate,
    )
    if not done:
        out["note"] = f"not all jobs done within {PRIORITY_WAIT_S:.0f} s"
    return out
