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
        RECORDER.to_file(p["record_file"], starts=bool(p.get("record_starts")))
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
        self._starts = False

    def reset(self, target: int) -> None:
        with self.lock:
            self.target = target
            self.done = 0
            self.latencies: list[float] = []
            self.started_tags: list[tuple[str, float]] = []
            self.first_done = 0.0
            self.reset_at = time.perf_counter()
            self.event = threading.Event()
            if target == 0:
                self.event.set()

    def retarget(self, target: int) -> None:
        """Fewer jobs are coming than reset() was told (a producer stopped early)."""
        with self.lock:
            self.target = target
            if self.done >= target:
                self.event.set()

    def to_file(self, path: str, starts: bool = False) -> None:
        """Append completions (and, with *starts*, an ``S id`` line per start) to *path*."""
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._starts = starts

    def begin(self, job: int) -> None:
        if self._fd is not None and self._starts:
            os.write(self._fd, f"S {job}\n".encode())

    def started(self, t_sched: float, tag: str = "") -> float | None:
        if not t_sched:
            return None
        lat = time.time() - t_sched
        if self._fd is not None:
            return lat  # written with the completion
        with self.lock:
            self.latencies.append(lat)
            if tag:
                self.started_tags.append((tag, lat))
        return lat

    def finished(self, job: int, lat: float | None = None, tag: str = "") -> None:
        if self._fd is not None:  # "id", or "id latency [tag]" (read by follow())
            line = f"{job} {lat} {tag}".rstrip() if lat is not None else f"{job}"
            os.write(self._fd, f"{line}\n".encode())
            return
        with self.lock:
            if not self.done:
                self.first_done = time.perf_counter()
            self.done += 1
            if self.done >= self.target:
                self.event.set()

    def follow(self, path: str) -> None:
        """Count completions that worker processes append to *path* (a thread)."""
        Path(path).touch()

        def tail() -> None:
            with open(path, "rb") as f:
                buf = b""
                while True:
                    chunk = f.read()
                    if not chunk:
                        time.sleep(0.001)
                        continue
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        parts = line.split()
                        if not parts or parts[0] == b"S":
                            continue
                        with self.lock:
                            if len(parts) > 1:
                                self.latencies.append(float(parts[1]))
                            if len(parts) > 2:
                                self.started_tags.append((parts[2].decode(), float(parts[1])))
                            if not self.done:
                                self.first_done = time.perf_counter()
                            self.done += 1
                            if self.done >= self.target:
                                self.event.set()

        threading.Thread(target=tail, daemon=True).start()

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
    RECORDER.begin(job)
    lat = RECORDER.started(t_sched, tag)
    if sleep_s:
        time.sleep(sleep_s)
    RECORDER.finished(job, lat, tag)


async def ajob_body(
    job: int,
    sleep_s: float,
    t_sched: float,
    sleep: Callable[[float], Awaitable[Any]],
    tag: str = "",
) -> None:
    """The body of the benchmark job for async systems (``sleep`` from their loop)."""
    RECORDER.begin(job)
    lat = RECORDER.started(t_sched, tag)
    if sleep_s:
        await sleep(sleep_s)
    RECORDER.finished(job, lat, tag)


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


def latency_result(
    p: Params, t0: float, sched: list[float], behind: float, sent: int | None = None
) -> Metrics:
    """Percentiles of every scheduled job's wait. A job that had not started when
    the run stopped, or was never sent because the producer fell too far behind,
    counts with its wait so far since its scheduled send (a lower bound), taking
    the latest sends as the unstarted ones (the queues here are FIFO), so that a
    system that falls behind is not flattered by leaving its slowest jobs out."""
    with RECORDER.lock:
        lat = list(RECORDER.latencies)
    missing = len(sched) - len(lat)
    now = time.time()
    if missing > 0:
        lat += [now - (t0 + off) for off in sched[-missing:]]
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
    k = n if meter.done < 0 else meter.done
    if k == 0:
        raise RuntimeError("no job completed within the time limit")
    steady = meter.end - RECORDER.first_done if RECORDER.first_done else meter.wall
    out: Metrics = {
        "jobs": k,
        "wall_s": meter.wall,
        "jobs_per_s": (k - 1) / steady if k > 1 and steady > 0 else k / meter.wall,
        "jobs_per_s_incl_start": k / meter.wall,
        "cpu_s": meter.cpu,
        "cpu_us_per_job": meter.cpu / k * 1e6,
    }
    if k < n:
        out["note"] = f"time-boxed: {k} of {n} jobs done in {meter.wall:.0f} s"
    return out


def sleep_metrics(p: Params, meter: Meter) -> Metrics:
    n, conc, s = meter.planned or p["n"], p["concurrency"], p["sleep_s"]
    k = n if meter.done < 0 else meter.done
    ideal = k * s / conc
    out: Metrics = {
        "jobs": k,
        "wall_s": meter.wall,
        "ideal_s": ideal,
        "efficiency": ideal / meter.wall,
        "cpu_s": meter.cpu,
    }
    if k < n:
        out["note"] = f"time-boxed: {k} of {n} jobs done in {meter.wall:.0f} s"
    return out


# ---------------------------------------------------------------- crash scenario


def read_record(path: Path) -> list[str]:
    try:
        return path.read_text().split("\n")[:-1]
    except FileNotFoundError:
        return []


def read_done(path: Path) -> list[int]:
    """Ids of completed jobs, one per completion."""
    return [int(x.split()[0]) for x in read_record(path) if x and not x.startswith("S")]


def read_starts(path: Path) -> list[int]:
    """Ids of started jobs, one per execution (with ``record_starts``)."""
    return [int(x.split()[1]) for x in read_record(path) if x.startswith("S ")]


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

    logs = []

    def spawn() -> subprocess.Popen[bytes]:
        logs.append(open(Path(p["workdir"]) / f"worker-{len(logs)}.log", "wb"))  # noqa: SIM115
        return subprocess.Popen(cmd, stdout=logs[-1], stderr=logs[-1], start_new_session=True)

    t0 = time.monotonic()
    w = spawn()
    kill_at = int(n * 0.4)
    deadline = t0 + p.get("timeout_s", 300)
    while len(read_done(record)) < kill_at:
        if time.monotonic() > deadline or w.poll() is not None:
            os.killpg(w.pid, signal.SIGKILL)
            raise RuntimeError(f"worker made no progress (exit {w.poll()})")
        time.sleep(0.01)
    # The worker and every process it started (pools, work horses) die at once,
    # as on a machine crash.
    os.killpg(w.pid, signal.SIGKILL)
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
        os.killpg(w2.pid, signal.SIGKILL)
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
        "window_s": t_last - t_kill,
        "note_lost": "lost = not completed when the run stopped: every job done, or no"
        f" completion for {idle_stop:.0f} s",
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
# A thread-based system runs through the same drivers as the async ones,
# wrapped in Blocking: each call blocks the (otherwise idle) event loop, which
# is what a plain loop would do; its worker runs in threads or processes.


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

    def wait_ready(self, concurrency: int) -> None:
        """Return once a just-started worker can take jobs (pools override this)."""
        time.sleep(0.5)

    def wait_started(self, concurrency: int) -> None:
        """Return once the worker exists: at once for one in this process."""


class WorkerProcess(SyncSystem):
    """A system whose worker is a pool of processes (RQ, Celery): this adapter
    again with ``role=worker``, in a session of its own, reporting each
    completion through a file that :meth:`Recorder.follow` reads."""

    p: Params
    proc: subprocess.Popen[bytes] | None = None

    def start_worker(self, concurrency: int) -> None:
        record = str(Path(self.p["workdir"]) / "done.txt")
        RECORDER.follow(record)
        wp = {**self.p, "role": "worker", "record_file": record, "concurrency": concurrency}
        self.proc = subprocess.Popen(
            [sys.executable, sys.argv[0], json.dumps(wp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop_worker(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait_started(self, concurrency: int) -> None:
        self.wait_ready(concurrency)  # a pool of processes takes seconds to start


START_ALLOWANCE_S = 60.0


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

    async def wait_ready(self, concurrency: int) -> None:
        """Return once a just-started worker can take jobs."""
        await self.sleep(0.5)

    async def wait_started(self, concurrency: int) -> None:
        """Return once the worker exists: at once for a task in this loop."""


class Blocking(AsyncSystem):
    """A :class:`SyncSystem` seen through the async drivers."""

    def __init__(self, s: SyncSystem) -> None:
        self.s = s
        self.batch_na = s.batch_na

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # noqa: ASYNC251 - blocking on purpose, see Blocking

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "", **opts: Any
    ) -> None:
        self.s.enqueue(job, sleep_s, t_sched, tag, **opts)

    async def enqueue_batch(self, jobs: list[int], sleep_s: float = 0.0, **opts: Any) -> None:
        if sleep_s:  # the peers' batch calls here carry no per-job arguments
            for j in jobs:
                self.s.enqueue(j, sleep_s, **opts)
        else:
            self.s.enqueue_batch(jobs, **opts)

    async def enqueue_prio(
        self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int
    ) -> None:
        self.s.enqueue_prio(job, sleep_s, t_sched, tag, prio)  # type: ignore[attr-defined]

    async def start_worker(self, concurrency: int) -> None:
        self.s.start_worker(concurrency)

    async def stop_worker(self) -> None:
        self.s.stop_worker()

    async def wait_ready(self, concurrency: int) -> None:
        self.s.wait_ready(concurrency)

    async def wait_started(self, concurrency: int) -> None:
        self.s.wait_started(concurrency)


def blocking(driver: Callable[..., Awaitable[Metrics]], s: SyncSystem, *args: Any) -> Metrics:
    """Run an async driver (``a_latency``, ``a_priority``, ...) on a thread-based system."""
    import asyncio

    return asyncio.run(driver(Blocking(s), *args))


async def a_enqueue(s: AsyncSystem, p: Params) -> Metrics:
    n, limit = p["n"], p.get("max_s", 600) / 2
    with Meter() as m1:
        for i in range(n):
            await s.enqueue(i)
            if i % 100 == 99 and time.perf_counter() - m1._w0 > limit:
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
            if time.perf_counter() - m2._w0 > limit:
                break
    out.update(batch_jobs_per_s=k2 / m2.wall, batch_cpu_s=m2.cpu, batch_size=p["batch"])
    return out


async def a_fill(s: AsyncSystem, p: Params, n: int, sleep_s: float = 0.0) -> int:
    t0, k = time.perf_counter(), 0
    for batch in chunks(range(n), p["batch"]):
        if s.batch_na:
            for i in batch:
                await s.enqueue(i, sleep_s)
        else:
            await s.enqueue_batch(batch, sleep_s)
        k += len(batch)
        if time.perf_counter() - t0 > fill_limit(p):
            break
    return k


async def a_drain(s: AsyncSystem, p: Params, sleep_s: float = 0.0) -> Meter:
    n = p["n"] = await a_fill(s, p, p["n"], sleep_s)
    RECORDER.reset(n)
    m = Meter().start()
    await s.start_worker(p["concurrency"])
    limit = p.get("max_s", 600)
    while not RECORDER.event.is_set() and not drain_over(limit):
        await s.sleep(0.001)
    m.stop()
    m.done, m.planned = RECORDER.done, n
    await s.stop_worker()
    return m


async def a_latency(s: AsyncSystem, p: Params) -> Metrics:
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


def run_longjobs(p: Params, enqueue_all: Callable[[int, float], None], note: str) -> Metrics:
    """Scenario 6 for systems whose worker runs in its own process.

    Jobs run ``job_s`` = 3x the lease, visibility timeout or job timeout that
    the adapter configures from ``lease_s`` (the setting that bounds how soon
    a dead worker's jobs come back, as in the crash scenario). The worker
    appends a line when a job starts and when it completes, so a job run twice
    (redelivered while running, or stopped at its timeout and retried) shows.
    """
    n, job_s = p["n"], p["job_s"]
    record = Path(p["workdir"]) / "long-record.txt"
    record.unlink(missing_ok=True)
    enqueue_all(n, job_s)
    wp = {**p, "role": "worker", "record_file": str(record), "record_starts": True}
    w = subprocess.Popen(
        [sys.executable, sys.argv[0], json.dumps(wp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + job_s * 2 + 5
        while time.monotonic() < end and len(set(read_done(record))) < n:
            time.sleep(0.05)
        time.sleep(2 * p["lease_s"] + job_s)  # a redelivery would run now
    finally:
        os.killpg(w.pid, signal.SIGKILL)
        w.wait()
    return longjobs_metrics(p, read_starts(record), read_done(record), note)


def longjobs_metrics(p: Params, starts: list[int], done: list[int], note: str) -> Metrics:
    return {
        "jobs": p["n"],
        "executions": len(starts),
        "completed": len(set(done)),
        "duplicated": len(starts) - len(set(starts)),
        "note": f"{note}; jobs of {p['job_s']} s; duplicated = executions beyond one per job",
    }


# ------------------------------------------------- fairness and priority, peers


FIFO_NOTE = "one FIFO queue: the peer has no per-tenant scheduling"
TENANTS_NOTE = "A and B are two queues (tenants)"


def fairness_metrics(
    p: Params, k_a: int, b_sent: list[float], backlog_at_b: int, meter: Meter, note: str
) -> Metrics:
    """Scenario 7's result. B's jobs that had not started when the time box ended
    count at their wait so far (a lower bound, as in the latency runs), the
    latest-sent ones taken as the unstarted."""
    with RECORDER.lock:
        lat = [x for tag, x in RECORDER.started_tags if tag == "B"]
        done = RECORDER.done
    missing = len(b_sent) - len(lat)
    if missing > 0:
        now = time.time()
        lat += [now - t for t in b_sent[-missing:]]
    out = latency_metrics(lat, "b_")
    a_done = max(0, done - (len(b_sent) - max(0, missing)))
    steady = meter.end - RECORDER.first_done if RECORDER.first_done else meter.wall
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
        if s.batch_na:
            for j in batch:
                await s.enqueue(j, **a_opts)
        else:
            await s.enqueue_batch(batch, **a_opts)
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
    while not RECORDER.event.is_set() and not drain_over(p.get("max_s", 60)):
        await s.sleep(0.001)
    m.stop()
    await s.stop_worker()
    return fairness_metrics(p, k_a, b_sent, backlog, m, TENANTS_NOTE if tenants else FIFO_NOTE)


def priority_metrics(
    p: Params, t0: float, t_low: float, t_end: float, rate: float, done: bool
) -> Metrics:
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


PRIORITY_WAIT_S = 120.0


async def a_priority(s: AsyncSystem, p: Params, best: int, worst: int) -> Metrics:
    """Scenario 8 for a system with priorities: ``s.enqueue_prio(job, sleep, t, tag, prio)``.

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
    enq = s.enqueue_prio  # type: ignore[attr-defined]
    for i, off in enumerate(sched):
        target = t0 + off
        delay = target - time.time()
        if delay > 0:
            await s.sleep(delay)
        await enq(i, job_s, target, "hi", best)
        if i == low_at:
            await enq(len(sched), 0.0, time.time(), "lo", worst)
    t_end = time.time()
    done = await RECORDER.await_done(s.sleep, PRIORITY_WAIT_S)
    await s.stop_worker()
    return priority_metrics(p, t0, t0 + sched[low_at], t_end, rate, done)


# ------------------------------------------------ the scenario table, per kind


Scenario = Callable[[Params], Metrics]
Runner = Callable[[Params, Callable[[Any], Awaitable[Any]]], Any]
"""``run(p, fn)``: open the async system for *p*, await ``fn(system)``, close it."""


def leased(p: Params) -> bool:
    """Whether the scenario sets the system's lease / visibility / job timeout to
    ``lease_s`` (crash and long jobs: the same setting bounds both how soon a
    dead worker's jobs come back and how long a job may run unclaimed)."""
    return p["scenario"] in ("crash", "longjobs")


def asyncio_runner(factory: Callable[[Params], Any]) -> Runner:
    """A :data:`Runner` on asyncio for systems with ``open()`` and ``close()``.

    Unlike ``asyncio.run`` it does not cancel and await the tasks a peer left
    behind: some never finish once cancelled (taskiq's receiver hung a run
    that way), and :func:`main` ends the process with ``os._exit`` anyway.
    """
    import asyncio

    def run(p: Params, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            s = factory(p)
            await s.open()
            try:
                return await fn(s)
            finally:
                await s.close()

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(go())

    return run


async def a_drain_result(s: AsyncSystem, p: Params) -> Metrics:
    return drain_metrics(p["n"], await a_drain(s, p))


async def a_sleep_result(s: AsyncSystem, p: Params) -> Metrics:
    return sleep_metrics(p, await a_drain(s, p, p["sleep_s"]))


def async_scenarios(run: Runner) -> dict[str, Scenario]:
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


def async_enqueue_all(run: Runner, p: Params) -> Callable[[int, float], None]:
    """``enqueue_all(n, job_s)`` for :func:`run_crash` and :func:`run_longjobs`:
    batches of 100 where the system has a batch enqueue, else one at a time."""

    def enqueue_all(n: int, job_s: float) -> None:
        async def go(s: AsyncSystem) -> None:
            for batch in chunks(range(n), 100):
                if s.batch_na:
                    for i in batch:
                        await s.enqueue(i, job_s)
                else:
                    await s.enqueue_batch(batch, job_s)

        run(p, go)

    return enqueue_all


def sync_enqueue_all(s: SyncSystem) -> Callable[[int, float], None]:
    def enqueue_all(n: int, job_s: float) -> None:
        for i in range(n):
            s.enqueue(i, job_s)

    return enqueue_all


def async_worker(run: Runner) -> Callable[[Params], None]:
    """The ``role=worker`` process of an async system: start, then serve until killed."""

    def worker(p: Params) -> None:
        async def go(s: AsyncSystem) -> None:
            await s.start_worker(p["concurrency"])
            while True:
                await s.sleep(3600)

        run(p, go)

    return worker


def sync_worker(make: Callable[[Params], SyncSystem]) -> Callable[[Params], None]:
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
    enqueue_all: Callable[[Params], Callable[[int, float], None]],
    setting: Callable[[Params], str],
) -> dict[str, Scenario]:
    """Scenarios 5 and 6 for a durable peer whose lease-like setting (``setting(p)``
    says which, from ``p["lease_s"]``) bounds both crash recovery and how long
    a job may run: ``enqueue_all(p)`` gives what queues their jobs."""

    def crash(p: Params) -> Metrics:
        out = run_crash(p, enqueue_all(p), {})
        out["note"] = setting(p)
        return out

    def longjobs(p: Params) -> Metrics:
        return run_longjobs(p, enqueue_all(p), setting(p))

    return {"crash": crash, "longjobs": longjobs}
