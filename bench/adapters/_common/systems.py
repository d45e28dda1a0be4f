"""What an adapter implements: the system under test, as the drivers see it.

A thread-based system (:class:`SyncSystem`) runs through the same async
drivers as the async ones (:class:`AsyncSystem`), wrapped in
:class:`Blocking`: each call blocks the (otherwise idle) event loop, which is
what a plain loop would do; its worker runs in threads or processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .processes import kill_group, spawn_worker
from .protocol import Metrics, NotApplicable, Params
from .recorder import RECORDER

T = TypeVar("T")


def leased(p: Params) -> bool:
    """Whether the scenario sets the system's lease / visibility / job timeout to
    ``lease_s`` (crash and long jobs: the same setting bounds both how soon a
    dead worker's jobs come back and how long a job may run unclaimed)."""
    return p["scenario"] in ("crash", "longjobs")


class SyncSystem:
    """What a thread-based adapter provides to the drivers."""

    batch_na: str | None = None  # why batched enqueue is n/a, if it is

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        raise NotImplementedError

    def enqueue_batch(self, jobs: list[int]) -> None:
        raise NotApplicable(self.batch_na or "no batch enqueue")

    def enqueue_prio(self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int) -> None:
        raise NotApplicable("no job priorities")

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
        self.proc = spawn_worker({**self.p, "record_file": record, "concurrency": concurrency})

    def stop_worker(self) -> None:
        assert self.proc is not None
        kill_group(self.proc)

    def wait_started(self, concurrency: int) -> None:
        self.wait_ready(concurrency)  # a pool of processes takes seconds to start

    @staticmethod
    def wait_for_pool(ready: Callable[[], bool], interval: float) -> None:
        """Poll *ready* every *interval* seconds for up to a minute, then give
        the pool half a second more (for :meth:`wait_ready`)."""
        deadline = time.monotonic() + 60
        while not ready() and time.monotonic() < deadline:
            time.sleep(interval)
        time.sleep(0.5)


class AsyncSystem:
    """What an async adapter provides to the drivers (asyncio or trio)."""

    batch_na: str | None = None

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = ""
    ) -> None:
        raise NotImplementedError

    async def enqueue_batch(self, jobs: list[int], sleep_s: float = 0.0) -> None:
        raise NotApplicable(self.batch_na or "no batch enqueue")

    async def enqueue_prio(
        self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int
    ) -> None:
        raise NotApplicable("no job priorities")

    async def start_worker(self, concurrency: int) -> None:
        raise NotImplementedError

    async def stop_worker(self) -> None:
        raise NotImplementedError

    async def wait_ready(self, concurrency: int) -> None:
        """Return once a just-started worker can take jobs."""
        await self.sleep(0.5)

    async def wait_started(self, concurrency: int) -> None:
        """Return once the worker exists: at once for a task in this loop."""


class AsyncioSystem(AsyncSystem):
    """An async system on asyncio, opened and closed around each run by
    :func:`asyncio_runner`."""

    async def open(self) -> None:
        """Connect to the broker (before the scenario)."""

    async def close(self) -> None:
        """Disconnect (after the scenario)."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a worker's task and wait until it has stopped."""
    assert task is not None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
        self.s.enqueue_prio(job, sleep_s, t_sched, tag, prio)

    async def start_worker(self, concurrency: int) -> None:
        self.s.start_worker(concurrency)

    async def stop_worker(self) -> None:
        self.s.stop_worker()

    async def wait_ready(self, concurrency: int) -> None:
        self.s.wait_ready(concurrency)

    async def wait_started(self, concurrency: int) -> None:
        self.s.wait_started(concurrency)


def blocking(
    driver: Callable[..., Coroutine[Any, Any, Metrics]], s: SyncSystem, *args: Any
) -> Metrics:
    """Run an async driver (``a_latency``, ``a_priority``, ...) on a thread-based system."""
    return asyncio.run(driver(Blocking(s), *args))


S_co = TypeVar("S_co", bound=AsyncSystem, covariant=True)
A = TypeVar("A", bound=AsyncioSystem)


class Runner(Protocol[S_co]):
    """``run(p, fn)``: open the async system for *p*, await ``fn(system)``, close it."""

    def __call__(self, p: Params, fn: Callable[[S_co], Awaitable[T]], /) -> T: ...


def asyncio_runner(factory: Callable[[Params], A]) -> Runner[A]:
    """A :class:`Runner` on asyncio for an :class:`AsyncioSystem`.

    Unlike ``asyncio.run`` it does not cancel and await the tasks a peer left
    behind: some never finish once cancelled (taskiq's receiver hung a run
    that way), and the adapter's ``main`` ends the process with ``os._exit`` anyway.
    """

    def run(p: Params, fn: Callable[[A], Awaitable[T]], /) -> T:
        async def go() -> T:
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
