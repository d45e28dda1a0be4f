"""Where benchmark jobs report that they started and finished, and the job's body.

Every system runs the same job: :func:`job_body` on threads,
:func:`ajob_body` in an event loop. Both report to :data:`RECORDER`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Sleep = Callable[[float], Awaitable[Any]]
"""An event loop's ``sleep`` (asyncio's, trio's or anyio's)."""


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
            self._count_done()

    def _count_done(self) -> None:
        # The caller holds the lock.
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
                            self._count_done()

        threading.Thread(target=tail, daemon=True).start()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)

    async def await_done(self, sleep: Sleep, limit_s: float) -> bool:
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


async def ajob_body(job: int, sleep_s: float, t_sched: float, sleep: Sleep, tag: str = "") -> None:
    """The body of the benchmark job for async systems (``sleep`` from their loop)."""
    RECORDER.begin(job)
    lat = RECORDER.started(t_sched, tag)
    if sleep_s:
        await sleep(sleep_s)
    RECORDER.finished(job, lat, tag)
