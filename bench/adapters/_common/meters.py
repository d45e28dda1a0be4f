"""Meters: wall and CPU time of a phase, and latency percentiles."""

from __future__ import annotations

import resource
import statistics
import time

from .protocol import Metrics


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children, user and system."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Meter:
    """Wall and CPU time of one phase (CPU of this process and its reaped children)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.end = 0.0
        self.done = -1  # jobs done when a time-boxed phase stopped (-1: not counted)
        self.planned = 0  # jobs queued for it (fewer than asked when filling was time-boxed)
        self.cpu = 0.0
        self._w0 = 0.0
        self._c0 = 0.0

    def start(self) -> Meter:
        self._w0 = time.perf_counter()
        self._c0 = cpu_seconds()
        return self

    def stop(self) -> Meter:
        self.end = time.perf_counter()
        self.wall = self.end - self._w0
        self.cpu = cpu_seconds() - self._c0
        return self

    def elapsed(self) -> float:
        """Wall seconds since :meth:`start` (for time boxes inside the phase)."""
        return time.perf_counter() - self._w0

    def jobs(self, planned: int) -> int:
        """Jobs the phase got through: *planned*, or fewer if it was time-boxed."""
        return planned if self.done < 0 else self.done

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def latency_metrics(lat_s: list[float], prefix: str = "") -> Metrics:
    """Count, percentiles, maximum and mean of latencies (seconds in, ms out)."""
    if not lat_s:
        return {f"{prefix}n": 0}
    return {
        f"{prefix}n": len(lat_s),
        f"{prefix}p50_ms": percentile(lat_s, 50) * 1e3,
        f"{prefix}p95_ms": percentile(lat_s, 95) * 1e3,
        f"{prefix}p99_ms": percentile(lat_s, 99) * 1e3,
        f"{prefix}max_ms": max(lat_s) * 1e3,
        f"{prefix}mean_ms": statistics.fmean(lat_s) * 1e3,
    }
