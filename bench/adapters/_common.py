"""What every adapter shares: the protocol, meters, job recorders and scenario drivers.

An adapter is a script run by the harness with its system's own Python, as
``python ADAPTER.py PARAMS_JSON``. It runs one scenario once and prints exactly
one line starting with :data:`RESULT_PREFIX` followed by a JSON object::

    {"status": "ok", "metrics": {...}}
    {"status": "n/a", "reason": "..."}
    {"status": "error", "reason": "...traceback..."}

This module uses the standard library only, so it imports in every peer's venv.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "

Params = dict[str, Any]
Metrics = dict[str, Any]


class NotApplicable(Exception):
    """The system cannot run this scenario; the message says why."""


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stdout.write(RESULT_PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(
    handlers: dict[str, Callable[[Params], Metrics]], worker: Callable[[Params], None]
) -> None:
    """Run the scenario named in argv[1]'s JSON and print the one result line.

    ``params["role"] == "worker"`` runs ``worker(params)`` instead: a consumer
    process that records completions to ``params["record_file"]`` until killed
    (the crash scenario starts and kills these).
    """
    p: Params = json.loads(sys.argv[1])
    if p.get("role") == "worker":
        RECORDER.to_file(p["record_file"])
        worker(p)
        return
    handler = handlers.get(p["scenario"])
    try:
        if handler is None:
            raise NotApplicable(f"scenario {p['scenario']!r} is not implemented for this system")
        metrics = handler(p)
    except NotApplicable as exc:
        emit({"status": "n/a", "reason": str(exc)})
    except BaseException:
        emit({"status": "error", "reason": traceback.format_exc()[-4000:]})
        sys.stdout.flush()
        os._exit(1)
    else:
        emit({"status": "ok", "metrics": metrics})
    sys.stdout.flush()
    # Peers leave non-daemon threads and pools behind; do not wait for them.
    os._exit(0)


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Meter:
    """Wall and CPU time of one phase (CPU of this process and its reaped children)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._w0 = 0.0
        self._c0 = 0.0

    def start(self) -> Meter:
        self._w0 = time.perf_counter()
        self._c0 = cpu_seconds()
        return self

    def stop(self) -> Meter:
        self.wall = time.perf_counter() - self._w0
        self.cpu = cpu_seconds() - self._c0
        return self

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


class Recorder:
    """Where jobs report that they started and finished.

    In-process by default (a counter and a list, guarded by a lock, so thread
    pools can use it); ``to_file`` switches a worker process to appending one
    line per completed job id to a file (``O_APPEND``: whole lines survive
    ``kill -9``), which the crash scenario reads from another process.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset(0)
        self._fd: int | None = None

    def reset(self, target: int) -> None:
        with self.lock:
            self.target = target
            self.done = 0
            self.latencies: list[float] = []
            self.started_tags: list[tuple[str, float]] = []
            self.first_start = 0.0
            self.event = threading.Event()
            if target == 0:
                self.event.set()

    def to_file(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def started(self, t_sched: float, tag: str = "") -> None:
        if t_sched:
            lat = time.time() - t_sched
            with self.lock:
                self.latencies.append(lat)
                if tag:
                    self.started_tags.append((tag, lat))

    def finished(self, job: int) -> None:
        if self._fd is not None:
            os.write(self._fd, f"{job}\n".encode())
            return
        with self.lock:
            self.done += 1
            if self.done >= self.target:
                self.event.set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)

    async def await_done(self, sleep: Callable[[float], Awaitable[Any]], limit_s: float) -> bool:
        # Polls (1 ms) rather than awaits an event: jobs finish in worker
        # threads as well as in event loops, and the loop may be trio's.
        deadline = time.monotonic() + limit_s
        while not self.event.is_set():
            if time.monotonic() > deadline:
                return False
            await sleep(0.001)
        return True


RECORDER = Recorder()


def job_body(job: int, sleep_s: float, t_sched: float, tag: str = "") -> None:
    """The body of the benchmark job for thread-based systems."""
    RECORDER.started(t_sched, tag)
    if sleep_s:
        time.sleep(sleep_s)
    RECORDER.finished(job)


async def ajob_body(
    job: int,
    sleep_s: float,
    t_sched: float,
    sleep: Callable[[float], Awaitable[Any]],
    tag: str = "",
) -> None:
    """The body of the benchmark job for async systems (``sleep`` from their loop)."""
    RECORDER.started(t_sched, tag)
    if sleep_s:
        await sleep(sleep_s)
    RECORDER.finished(job)


def open_loop_schedule(rate: float, duration: float) -> list[float]:
    """Offsets (seconds from start) at which an open-loop producer sends."""
    n = max(1, int(rate * duration))
    return [i / rate for i in range(n)]


def drain_metrics(n: int, meter: Meter) -> Metrics:
    return {
        "jobs": n,
        "wall_s": meter.wall,
        "jobs_per_s": n / meter.wall,
        "cpu_s": meter.cpu,
        "cpu_us_per_job": meter.cpu / n * 1e6,
    }


def sleep_metrics(p: Params, meter: Meter) -> Metrics:
    n, conc, s = p["n"], p["concurrency"], p["sleep_s"]
    ideal = n * s / conc
    return {
        "jobs": n,
        "wall_s": meter.wall,
        "ideal_s": ideal,
        "efficiency": ideal / meter.wall,
        "cpu_s": meter.cpu,
    }


# ---------------------------------------------------------------- crash scenario


def read_done(path: Path) -> list[int]:
    try:
        data = path.read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in data.split("\n")[:-1] if x]


def run_crash(
    p: Params,
    enqueue_all: Callable[[int, float], None],
    worker_params: Params,
) -> Metrics:
    """Scenario 5, the same for every durable system.

    ``enqueue_all(n, job_s)`` puts n jobs of ``job_s`` seconds on the durable
    queue. A worker process (this adapter with ``role=worker``) consumes them;
    at 40 % completions it is killed with SIGKILL and a new one starts. The run
    ends when every id has completed or ``recover_timeout_s`` after the kill.
    """
    n, job_s = p["n"], p["job_s"]
    record = Path(p["workdir"]) / "crash-record.txt"
    record.unlink(missing_ok=True)
    enqueue_all(n, job_s)
    wp = {**p, **worker_params, "role": "worker", "record_file": str(record)}
    cmd = [sys.executable, sys.argv[0], json.dumps(wp)]

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    t0 = time.monotonic()
    w = spawn()
    kill_at = int(n * 0.4)
    deadline = t0 + p.get("timeout_s", 300)
    while len(read_done(record)) < kill_at:
        if time.monotonic() > deadline or w.poll() is not None:
            w.kill()
            raise RuntimeError(f"worker made no progress (exit {w.poll()})")
        time.sleep(0.01)
    w.send_signal(signal.SIGKILL)
    w.wait()
    t_kill = time.monotonic()
    at_kill = len(read_done(record))
    w2 = spawn()
    first_after = None
    end = t_kill + p.get("recover_timeout_s", 120)
    # Stop early once nothing has completed for two leases and then some: the
    # jobs still missing are not coming back.
    idle_stop = 2 * p.get("lease_s", 5.0) + 20.0
    last_count, last_progress = at_kill, t_kill
    try:
        while time.monotonic() < end:
            done = read_done(record)
            now = time.monotonic()
            if first_after is None and len(done) > at_kill:
                first_after = now - t_kill
            if len(done) != last_count:
                last_count, last_progress = len(done), now
            if len(set(done)) >= n or now - last_progress > idle_stop:
                break
            time.sleep(0.02)
        t_last = time.monotonic()
        time.sleep(min(2.0, p.get("settle_s", 2.0)))  # let late duplicates land
    finally:
        w2.kill()
        w2.wait()
    done = read_done(record)
    counts: dict[int, int] = {}
    for j in done:
        counts[j] = counts.get(j, 0) + 1
    lost = sum(1 for j in range(n) if j not in counts)
    dup = sum(c - 1 for c in counts.values())
    remaining_ideal = (n - at_kill) * job_s / p["concurrency"]
    return {
        "jobs": n,
        "completed_at_kill": at_kill,
        "lost": lost,
        "duplicated": dup,
        "first_completion_after_restart_s": first_after,
        "kill_to_all_done_s": (t_last - t_kill) if lost == 0 else None,
        "ideal_remaining_s": remaining_ideal,
    }


def chunks(it: Iterable[Any], size: int) -> Iterable[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


# ------------------------------------------------------- drivers, thread-based peers


class SyncSystem:
    """What a thread-based adapter provides to the drivers below."""

    batch_na: str | None = None  # why batched enqueue is n/a, if it is

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        raise NotImplementedError

    def enqueue_batch(self, jobs: list[int]) -> None:
        raise NotApplicable(self.batch_na or "no batch enqueue")

    def start_worker(self, concurrency: int) -> None:
        raise NotImplementedError

    def stop_worker(self) -> None:
        raise NotImplementedError


def sync_enqueue(s: SyncSystem, p: Params) -> Metrics:
    n = p["n"]
    with Meter() as m1:
        for i in range(n):
            s.enqueue(i)
    out: Metrics = {"jobs": n, "single_jobs_per_s": n / m1.wall, "single_cpu_s": m1.cpu}
    if s.batch_na:
        out["batch_na"] = s.batch_na
        return out
    with Meter() as m2:
        for batch in chunks(range(n, 2 * n), p["batch"]):
            s.enqueue_batch(batch)
    out.update(batch_jobs_per_s=n / m2.wall, batch_cpu_s=m2.cpu, batch_size=p["batch"])
    return out


def sync_drain(s: SyncSystem, p: Params, sleep_s: float = 0.0) -> Meter:
    n = p["n"]
    if sleep_s or s.batch_na:
        for i in range(n):
            s.enqueue(i, sleep_s)
    else:
        for batch in chunks(range(n), p["batch"]):
            s.enqueue_batch(batch)
    RECORDER.reset(n)
    m = Meter().start()
    s.start_worker(p["concurrency"])
    ok = RECORDER.wait(p.get("timeout_s", 600))
    m.stop()
    s.stop_worker()
    if not ok:
        raise RuntimeError(f"drain timed out: {RECORDER.done}/{n} done")
    return m


def sync_latency(s: SyncSystem, p: Params) -> Metrics:
    sched = open_loop_schedule(p["rate"], p["duration_s"])
    RECORDER.reset(len(sched))
    s.start_worker(p["concurrency"])
    time.sleep(0.5)  # idle worker, as the scenario asks
    t0 = time.time() + 0.01
    behind = 0.0
    for i, off in enumerate(sched):
        target = t0 + off
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            behind = max(behind, -delay)
        s.enqueue(i, 0.0, target)
    ok = RECORDER.wait(p.get("timeout_s", 120))
    s.stop_worker()
    if not ok:
        raise RuntimeError(f"latency run timed out: {RECORDER.done}/{len(sched)}")
    out = latency_metrics(RECORDER.latencies)
    out.update(rate=p["rate"], producer_max_behind_ms=behind * 1e3)
    return out


# --------------------------------------------------------- drivers, async systems


class AsyncSystem:
    """What an async adapter provides to the drivers below (asyncio or trio)."""

    batch_na: str | None = None

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        raise NotImplementedError

    async def enqueue_batch(self, jobs: list[int], sleep_s: float = 0.0) -> None:
        raise NotApplicable(self.batch_na or "no batch enqueue")

    async def start_worker(self, concurrency: int) -> None:
        raise NotImplementedError

    async def stop_worker(self) -> None:
        raise NotImplementedError


async def a_enqueue(s: AsyncSystem, p: Params) -> Metrics:
    n = p["n"]
    with Meter() as m1:
        for i in range(n):
            await s.enqueue(i)
    out: Metrics = {"jobs": n, "single_jobs_per_s": n / m1.wall, "single_cpu_s": m1.cpu}
    if s.batch_na:
        out["batch_na"] = s.batch_na
        return out
    with Meter() as m2:
        for batch in chunks(range(n, 2 * n), p["batch"]):
            await s.enqueue_batch(batch)
    out.update(batch_jobs_per_s=n / m2.wall, batch_cpu_s=m2.cpu, batch_size=p["batch"])
    return out


async def a_fill(s: AsyncSystem, p: Params, n: int, sleep_s: float = 0.0) -> None:
    if s.batch_na:
        for i in range(n):
            await s.enqueue(i, sleep_s)
    else:
        for batch in chunks(range(n), p["batch"]):
            await s.enqueue_batch(batch, sleep_s)


async def a_drain(s: AsyncSystem, p: Params, sleep_s: float = 0.0) -> Meter:
    n = p["n"]
    await a_fill(s, p, n, sleep_s)
    RECORDER.reset(n)
    m = Meter().start()
    await s.start_worker(p["concurrency"])
    ok = await RECORDER.await_done(s.sleep, p.get("timeout_s", 600))
    m.stop()
    await s.stop_worker()
    if not ok:
        raise RuntimeError(f"drain timed out: {RECORDER.done}/{n} done")
    return m


async def a_latency(s: AsyncSystem, p: Params) -> Metrics:
    sched = open_loop_schedule(p["rate"], p["duration_s"])
    RECORDER.reset(len(sched))
    await s.start_worker(p["concurrency"])
    await s.sleep(0.5)  # idle worker, as the scenario asks
    t0 = time.time() + 0.01
    behind = 0.0
    for i, off in enumerate(sched):
        target = t0 + off
        delay = target - time.time()
        if delay > 0:
            await s.sleep(delay)
        else:
            behind = max(behind, -delay)
        await s.enqueue(i, 0.0, target)
    ok = await RECORDER.await_done(s.sleep, p.get("timeout_s", 120))
    await s.stop_worker()
    if not ok:
        raise RuntimeError(f"latency run timed out: {RECORDER.done}/{len(sched)}")
    out = latency_metrics(RECORDER.latencies)
    out.update(rate=p["rate"], producer_max_behind_ms=behind * 1e3)
    return out
