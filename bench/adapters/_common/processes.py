"""Worker processes: this adapter again with ``role=worker``, and the scenarios
that kill one (5, crash) or watch one run long jobs (6).

A worker process records each completion (and, if asked, each start) as a
line in a file (:meth:`Recorder.to_file`), which this process reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .metrics import longjobs_metrics
from .protocol import Metrics, Params

EnqueueAll = Callable[[int, float], None]
"""``enqueue_all(n, job_s)``: put n jobs of ``job_s`` seconds on the durable queue."""


def spawn_worker(
    p: Params, output: IO[bytes] | int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """Start this adapter with ``role=worker`` and *p*, in a session of its own
    (so that :func:`kill_group` takes its pools and work horses with it)."""
    return subprocess.Popen(
        [sys.executable, sys.argv[0], json.dumps({**p, "role": "worker"})],
        stdout=output,
        stderr=output,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL *proc* and every process it started at once, as on a machine crash."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


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


def run_crash(p: Params, enqueue_all: EnqueueAll) -> Metrics:
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
    wp = {**p, "record_file": str(record)}
    logs: list[IO[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        logs.append(open(Path(p["workdir"]) / f"worker-{len(logs)}.log", "wb"))  # noqa: SIM115
        return spawn_worker(wp, logs[-1])

    t0 = time.monotonic()
    w = spawn()
    kill_at = int(n * 0.4)
    deadline = t0 + p.get("timeout_s", 300)
    while len(read_done(record)) < kill_at:
        if time.monotonic() > deadline or w.poll() is not None:
            code = w.poll()
            kill_group(w)
            raise RuntimeError(f"worker made no progress (exit {code})")
        time.sleep(0.01)
    kill_group(w)
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
        kill_group(w2)
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


def run_longjobs(p: Params, enqueue_all: EnqueueAll, note: str) -> Metrics:
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
    w = spawn_worker({**p, "record_file": str(record), "record_starts": True})
    try:
        end = time.monotonic() + job_s * 2 + 5
        while time.monotonic() < end and len(set(read_done(record))) < n:
            time.sleep(0.05)
        time.sleep(2 * p["lease_s"] + job_s)  # a redelivery would run now
    finally:
        kill_group(w)
    return longjobs_metrics(p, read_starts(record), read_done(record), note)
