"""quickq on its memory store or its SQLite store, on trio or asyncio (through anyio).

Runs with the project's own Python (quickq installed in editable mode), so it
measures the working tree. Producer and consumer share one process and one
event loop, as when quickq is embedded (scenarios 4c and 11 put consumers in
other processes: quickq_processes.py). Consumer options are quickq's
defaults except ``concurrency`` and, where a scenario says so, ``lease_duration``.
The ``-otel`` systems set up an OpenTelemetry SDK first (quickq_otel.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

import _common as c
import quickq
import quickq_otel
from _common.processes import kill_group, spawn_worker
from quickq.stores import MemoryStore
from quickq_processes import QUEUES, read_json, workers_scaling, write_json_atomic
from quickq_retries import RetryCounts, count_retries, enqueue_side, note

P = c.Params
T = TypeVar("T")
TOPIC = "bench"
STARTS: list[int] = []  # job ids in start order (long-jobs scenario)


def make_registry() -> quickq.JobRegistry:
    jobs = quickq.JobRegistry()

    @jobs.job(TOPIC, max_retries=3)
    async def perform(payload: dict[str, Any], meta: Any) -> None:
        STARTS.append(payload["j"])
        await c.ajob_body(payload["j"], payload["s"], payload["t"], anyio.sleep, payload["g"])

    return jobs


class Quickq(c.AsyncSystem):
    def __init__(self, p: P, store: Any) -> None:
        self.p = p
        self.store = store
        self.jobs = make_registry()
        self.queue = quickq.JobQueue(store, self.jobs)
        self.stack: contextlib.AsyncExitStack | None = None
        self.lease = p.get("lease_s", 30.0)
        self.counts: RetryCounts | None = None  # set by the scenarios that count retries

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "", **opts: Any
    ) -> None:
        payload = {"j": job, "s": sleep_s, "t": t_sched, "g": tag}
        with enqueue_side():
            await self.queue.enqueue(opts.pop("queue", "tenant"), TOPIC, payload, **opts)

    async def enqueue_prio(
        self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int
    ) -> None:
        await self.enqueue(job, sleep_s, t_sched, tag, priority=prio)

    async def enqueue_batch(
        self, jobs: list[int], sleep_s: float = 0.0, queue: str = "tenant", **opts: Any
    ) -> None:
        with enqueue_side():
            await self.queue.enqueue_many(
                [
                    quickq.NewJob(queue, TOPIC, {"j": j, "s": sleep_s, "t": 0.0, "g": ""}, **opts)
                    for j in jobs
                ]
            )

    async def start_worker(self, concurrency: int) -> None:
        self.stack = contextlib.AsyncExitStack()
        await self.stack.enter_async_context(
            quickq.open_consumer(
                self.store, self.jobs, concurrency=concurrency, lease_duration=self.lease
            )
        )

    async def stop_worker(self) -> None:
        assert self.stack is not None
        await self.stack.aclose()

    async def wait_ready(self, concurrency: int) -> None:
        await super().wait_ready(concurrency)
        if self.counts is not None:  # count the open loop's transactions, not the start's
            self.counts.reset()


async def open_store(p: P, name: str = "quickq.db") -> Any:
    if p["variant"] == "memory":
        return MemoryStore()
    from quickq.stores.sqlite import SQLiteStore

    return await SQLiteStore.open(str(Path(p["workdir"]) / name))


def run(p: P, fn: Callable[[Quickq], Awaitable[T]], /) -> T:
    """The :class:`c.Runner` for quickq: a fresh store per run, on anyio's *backend*."""
    quickq_otel.set_up(p)

    async def main() -> T:
        store = await open_store(p)
        try:
            return await fn(Quickq(p, store))
        finally:
            if hasattr(store, "aclose"):
                await store.aclose()

    return anyio.run(main, backend=p["backend"])


def latency(p: P) -> c.Metrics:
    """Scenario 4, with the transactions retried during the open loop counted."""

    async def go(s: Quickq) -> c.Metrics:
        s.counts = count_retries(s.store)
        out = await c.a_latency(s, p)
        counts = s.counts.metrics()
        out.update(counts, note_retries=note(counts))
        return out

    return run(p, go)


class CrossProcess(Quickq):
    """The consumer in another process on the same SQLite file: this adapter
    again with ``role=worker``, which reports each start through a record file
    and its retry counts through a JSON file."""

    proc: Any = None

    def files(self) -> tuple[Path, Path]:
        work = Path(self.p["workdir"])
        return work / "x-record.txt", work / "x-counts.json"

    async def start_worker(self, concurrency: int) -> None:
        record, counts = self.files()
        c.RECORDER.follow(str(record))
        wp = {**self.p, "record_file": str(record), "counts_file": str(counts)}
        self.proc = spawn_worker({**wp, "concurrency": concurrency})

    async def wait_ready(self, concurrency: int) -> None:
        _, counts = self.files()
        deadline = anyio.current_time() + 60
        # Polls: the worker is another process, with nothing to await.
        while not counts.exists() and anyio.current_time() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        await anyio.sleep(0.5)  # an idle consumer, as in one process
        self.base = read_json(counts)
        assert self.counts is not None
        self.counts.reset()

    async def stop_worker(self) -> None:
        await anyio.sleep(0.2)  # the worker writes its counts every 50 ms
        self.worker_counts = read_json(self.files()[1])
        kill_group(self.proc)


def latency_x(p: P) -> c.Metrics:
    """Scenario 4c: the open-loop producer here, its consumer in another process."""
    if p["variant"] != "sqlite":
        raise c.NotApplicable("across processes: the memory store lives in one process")

    async def go(s: Quickq) -> c.Metrics:
        x = CrossProcess(p, s.store)
        x.counts = count_retries(s.store)
        out = await c.a_latency(x, p)
        consumer = {
            k: v - x.base.get(k, 0) for k, v in x.worker_counts.items() if k.startswith("consumer")
        }
        x.counts.merge(consumer)
        counts = x.counts.metrics()
        out.update(counts, note_retries=note(counts))
        return out

    return run(p, go)


def workers(p: P) -> c.Metrics:
    """Scenario 11: quickq worker processes on one SQLite file (trio only: the
    CLI runs on trio whatever the producer's loop)."""
    quickq_otel.set_up(p)
    if p["variant"] != "sqlite":
        raise c.NotApplicable("worker processes share a SQLite file")
    if p["backend"] != "trio":
        raise c.NotApplicable("the CLI worker runs on trio: measured on quickq-sqlite-trio")
    from quickq.stores.sqlite import SQLiteStore

    def fill(db: Path) -> None:
        async def go() -> None:
            store = await SQLiteStore.open(str(db))
            try:
                s = Quickq(p, store)
                for batch in c.chunks(range(p["n"]), 1_000):
                    for q in range(QUEUES):
                        await s.enqueue_batch(batch[q::QUEUES], queue=f"q{q}")
            finally:
                await store.aclose()

        anyio.run(go, backend="trio")

    return workers_scaling(p, fill)


def worker(p: P) -> None:
    """The ``role=worker`` process: a consumer until killed, writing its retry
    counts to ``counts_file`` every 50 ms when asked to."""

    parent = os.getppid()

    async def go(s: Quickq) -> None:
        counts = count_retries(s.store) if p.get("counts_file") else None
        await s.start_worker(p["concurrency"])
        while True:
            if counts is not None:
                write_json_atomic(Path(p["counts_file"]), counts.metrics())
                if os.getppid() != parent:  # the scenario's process died: do not linger
                    os._exit(1)
            await anyio.sleep(0.05 if counts is not None else 3600)

    run(p, go)


def crash(p: P) -> c.Metrics:
    if p["variant"] == "memory":
        raise c.NotApplicable("memory store: a killed process loses every job")
    out = c.run_crash(p, c.async_enqueue_all(run, p))
    out["note"] = f"lease_duration={p['lease_s']} s (default 30 s)"
    return out


def longjobs(p: P) -> c.Metrics:
    """Scenario 6: jobs that run three times the lease; duplicates must be zero."""

    async def go(s: Quickq) -> c.Metrics:
        n = p["n"]
        STARTS.clear()
        await s.enqueue_batch(list(range(n)), p["job_s"])
        c.RECORDER.reset(n)
        await s.start_worker(p["concurrency"])
        ok = await c.RECORDER.await_done(s.sleep, p["job_s"] * 4 + 30)
        await anyio.sleep(p["lease_s"] * 2)  # a lost lease would show as a re-run now
        await s.stop_worker()
        out = c.longjobs_metrics(p, list(STARTS), [], f"lease_duration={p['lease_s']} s")
        out.update(completed=c.RECORDER.done, all_done=ok)
        return out

    return run(p, go)


def fairness(p: P) -> c.Metrics:
    """Scenario 7: tenant A's backlog queued, then B's jobs as the consumer starts;
    A and B are two quickq queues."""
    return run(p, lambda s: c.a_fairness(s, p, tenants=True))


def priority(p: P) -> c.Metrics:
    """Scenario 8: quickq's priority 0 runs before 1000 (smaller first)."""
    return run(p, lambda s: c.a_priority(s, p, best=0, worst=1000))


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


SCALE_SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)


def scale(p: P) -> c.Metrics:
    """Scenario 9: us per drained job as future jobs and idle queues grow.

    Each series grows one store step by step (1,000 future jobs, then 9,000 more
    for 10,000, ...), seeding with ``enqueue_many`` in batches of ``seed_batch``,
    and after each step drains ``probe`` ready jobs through a consumer. The
    seeding time of each step is reported beside it.
    """
    probe: int = p["probe"]
    conc: int = p["concurrency"]
    seed_batch = p.get("seed_batch", 5_000)
    # The largest size on trio only, one per store: seeding a million jobs
    # takes 75 s, which the asyncio variants' points would not repay.
    top = p["backend"] == "trio"
    top_future = p["max_future"] if top else p["max_future_rest"]
    top_idle = p["max_idle"]
    out: c.Metrics = {}
    notes = []
    if top_future < p["max_future"]:
        notes.append(
            f"future jobs up to {top_future:,} on this variant (run-time bound;"
            f" the trio variants go to {p['max_future']:,})"
        )

    async def probe_drain(s: Quickq) -> float:
        await s.enqueue_batch(list(range(probe)))
        m = await c.a_run_queued(s, probe, conc, 300)
        return m.wall / probe * 1e6

    async def grow(s: Quickq, series: str) -> None:
        sizes = [x for x in SCALE_SIZES if x <= (top_future if series == "future" else top_idle)]
        if series == "future":
            sizes = [x for x in sizes if x >= 1_000]
        rss0, have = rss_bytes(), 0
        for size in sizes:
            with c.Meter() as m:
                for batch in c.chunks(range(have, size), seed_batch):
                    if series == "future":
                        await s.enqueue_batch(batch, queue="tenant", delay=3600.0)
                    else:
                        await s.queue.enqueue_many(
                            [
                                quickq.NewJob(f"idle-{j}", TOPIC, {"j": j}, delay=3600.0)
                                for j in batch
                            ]
                        )
            out[f"{series}_{size}_seed_s"] = m.wall
            have = size
            out[f"{series}_{size}_us"] = await probe_drain(s)
        if series == "future":
            out["future_seed_jobs_per_s"] = have / sum(
                v for k, v in out.items() if k.startswith("future_") and k.endswith("_seed_s")
            )
        if series == "future" and p["variant"] == "memory":
            out["bytes_per_job_memory"] = (rss_bytes() - rss0) / have
        out[f"{series}_jobs"] = have

    for series in ("future", "idle"):
        for f in Path(p["workdir"]).glob("quickq.db*"):
            f.unlink()
        run(p, functools.partial(grow, series=series))
        if series == "future" and p["variant"] == "sqlite":
            size = sum(f.stat().st_size for f in Path(p["workdir"]).glob("quickq.db*"))
            out["bytes_per_job_sqlite_file"] = size / out["future_jobs"]
    if notes:
        out["note"] = "; ".join(notes)
    return out


def sqlite_limit(p: P) -> c.Metrics:
    """Scenario 10: raw SQLite commits/s (WAL, synchronous=FULL) vs quickq on SQLite."""
    if p["variant"] != "sqlite":
        raise c.NotApplicable("compares the SQLite store with raw SQLite")
    n = p["n"]
    path = Path(p["workdir"]) / "raw.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=full")
    db.execute("create table kv (k blob primary key, v blob)")
    val = os.urandom(100)
    with c.Meter() as m1:
        for i in range(n):
            db.execute("begin immediate")
            db.execute("insert into kv values (?, ?)", (i.to_bytes(8, "big"), val))
            db.execute("commit")
    with c.Meter() as m2:
        for start in range(n, 2 * n, 100):
            db.execute("begin immediate")
            db.executemany(
                "insert into kv values (?, ?)",
                [(i.to_bytes(8, "big"), val) for i in range(start, start + 100)],
            )
            db.execute("commit")
    db.close()
    raw = n / m1.wall

    async def go(s: Quickq) -> tuple[float, float]:
        with c.Meter() as me:
            for i in range(n):
                await s.enqueue(i)
        md = await c.a_run_queued(s, n, p["concurrency"], 600)
        return me.wall, md.wall

    t_enq, t_drain = run(p, go)
    e2e = n / (t_enq + t_drain)
    return {
        "raw_commits_per_s": raw,
        "raw_rows_per_s_batched_100": n / m2.wall,
        "quickq_enqueue_per_s": n / t_enq,
        "quickq_drain_per_s": n / t_drain,
        "quickq_jobs_per_s": e2e,
        "ratio": e2e / raw,
        "enqueue_ratio": (n / t_enq) / raw,
        "drain_ratio": (n / t_drain) / raw,
    }


if __name__ == "__main__":
    c.main(
        {
            **c.async_scenarios(run),
            "latency": latency,
            "latency_x": latency_x,
            "workers": workers,
            "crash": crash,
            "longjobs": longjobs,
            "fairness": fairness,
            "priority": priority,
            "scale": scale,
            "sqlite_limit": sqlite_limit,
        },
        worker,
    )
