"""quickq on its memory store or its SQLite store, on trio or asyncio (through anyio).

Runs with the project's own Python (quickq installed in editable mode), so it
measures the working tree. Producer and consumer share one process and one
event loop, as when quickq is embedded. Consumer options are quickq's
defaults (batch 10, scan 0.1 s) except ``concurrency`` and, where a scenario
says so, ``lease_duration``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import _common as c
import anyio

import quickq
from quickq.stores import MemoryStore

P = c.Params
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

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def enqueue(
        self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "", **opts: Any
    ) -> None:
        payload = {"j": job, "s": sleep_s, "t": t_sched, "g": tag}
        await self.queue.enqueue(opts.pop("queue", "tenant"), TOPIC, payload, **opts)

    async def enqueue_batch(
        self, jobs: list[int], sleep_s: float = 0.0, queue: str = "tenant", **opts: Any
    ) -> None:
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


async def open_store(p: P, name: str = "quickq.db") -> Any:
    if p["variant"] == "memory":
        return MemoryStore()
    from quickq.stores.sqlite import SQLiteStore

    return await SQLiteStore.open(str(Path(p["workdir"]) / name))


def run(p: P, fn: Any) -> Any:
    async def main() -> Any:
        store = await open_store(p)
        try:
            return await fn(Quickq(p, store))
        finally:
            if hasattr(store, "aclose"):
                await store.aclose()

    return anyio.run(main, backend=p["backend"])


def enqueue(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_enqueue(s, p))


def drain(p: P) -> c.Metrics:
    async def go(s: Quickq) -> c.Metrics:
        return c.drain_metrics(p["n"], await c.a_drain(s, p))

    return run(p, go)


def sleep(p: P) -> c.Metrics:
    async def go(s: Quickq) -> c.Metrics:
        return c.sleep_metrics(p, await c.a_drain(s, p, p["sleep_s"]))

    return run(p, go)


def latency(p: P) -> c.Metrics:
    return run(p, lambda s: c.a_latency(s, p))


def crash(p: P) -> c.Metrics:
    if p["variant"] == "memory":
        raise c.NotApplicable("memory store: a killed process loses every job")

    def enqueue_all(n: int, job_s: float) -> None:
        async def go(s: Quickq) -> None:
            for batch in c.chunks(range(n), 100):
                await s.enqueue_batch(batch, job_s)

        run(p, go)

    out = c.run_crash(p, enqueue_all, {})
    out["note"] = f"lease_duration={p['lease_s']} s (default 30 s)"
    return out


def worker(p: P) -> None:
    async def go(s: Quickq) -> None:
        await s.start_worker(p["concurrency"])
        await anyio.sleep_forever()

    run(p, go)


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
        return {
            "jobs": n,
            "completed": c.RECORDER.done,
            "duplicated": len(STARTS) - len(set(STARTS)),
            "all_done": ok,
            "note": f"lease_duration={p['lease_s']} s, jobs of {p['job_s']} s",
        }

    return run(p, go)


def fairness(p: P) -> c.Metrics:
    """Scenario 7: tenant A floods, then tenant B enqueues; B's wait, total throughput."""

    async def go(s: Quickq) -> c.Metrics:
        a, b = p["a"], p["b"]
        c.RECORDER.reset(a + b)
        await s.start_worker(p["concurrency"])
        await s.sleep(0.5)
        m = c.Meter().start()
        for batch in c.chunks(range(a), p["batch"]):
            await s.enqueue_batch(batch, queue="A")
        for j in range(a, a + b):
            await s.enqueue(j, 0.0, time.time(), "B", queue="B")
        done = await c.RECORDER.await_done(s.sleep, 2 * p.get("max_s", 60))
        m.stop()
        await s.stop_worker()
        out = c.fairness_metrics(p, m, done)
        out["note"] = out["note"].replace(
            "one FIFO queue: the peer has no per-tenant scheduling",
            "A and B are two quickq queues (tenants)",
        )
        return out

    return run(p, go)


def priority(p: P) -> c.Metrics:
    """Scenario 8: a stream of best-priority jobs at capacity, one worst-priority job."""

    async def go(s: Quickq) -> c.Metrics:
        conc, job_s, dur = p["concurrency"], p["job_s"], p["duration_s"]
        rate = conc / job_s
        sched = c.open_loop_schedule(rate, dur)
        c.RECORDER.reset(len(sched) + 1)
        await s.start_worker(conc)
        t0 = time.time() + 0.01
        low_at = int(len(sched) * 0.2)
        for i, off in enumerate(sched):
            target = t0 + off
            delay = target - time.time()
            if delay > 0:
                await anyio.sleep(delay)
            await s.enqueue(i, job_s, target, "hi", priority=0)
            if i == low_at:
                await s.enqueue(len(sched), 0.0, time.time(), "lo", priority=1000)
        t_end = time.time()
        ok = await c.RECORDER.await_done(s.sleep, 120)
        await s.stop_worker()
        if not ok:
            raise RuntimeError("priority run timed out")
        lo = [lat for tag, lat in c.RECORDER.started_tags if tag == "lo"]
        hi = [lat for tag, lat in c.RECORDER.started_tags if tag == "hi"]
        out = c.latency_metrics(hi, "high_")
        stream_left = t_end - (t0 + sched[low_at])
        out.update(low_wait_ms=lo[0] * 1e3, stream_after_low_ms=stream_left * 1e3, rate=rate)
        return out

    return run(p, go)


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def scale(p: P) -> c.Metrics:
    """Scenario 9: us per drained job as future jobs and idle queues grow."""
    probe, conc = p["probe"], p["concurrency"]
    top = p["max_future"]
    note = ""
    if p["variant"] == "sqlite" and top > 10_000:
        top, note = 10_000, "SQLite store: sizes capped at 10,000 to bound run time"
    sizes = [x for x in (10, 100, 1_000, 10_000, 100_000, 1_000_000) if x <= top]
    out: c.Metrics = {}

    async def probe_drain(s: Quickq) -> float:
        await s.enqueue_batch(list(range(probe)))
        c.RECORDER.reset(probe)
        m = c.Meter().start()
        await s.start_worker(conc)
        await c.RECORDER.await_done(s.sleep, 300)
        m.stop()
        await s.stop_worker()
        return m.wall / probe * 1e6

    for series in ("future", "idle"):
        for size in sizes:
            if series == "future" and size < 1_000:
                continue

            async def go(s: Quickq, series: str = series, size: int = size) -> float:
                rss0 = rss_bytes()
                for batch in c.chunks(range(size), 1000):
                    if series == "future":
                        await s.enqueue_batch(batch, queue="tenant", delay=3600.0)
                    else:
                        await s.queue.enqueue_many(
                            [
                                quickq.NewJob(f"idle-{j}", TOPIC, {"j": j}, delay=3600.0)
                                for j in batch
                            ]
                        )
                if series == "future" and size == sizes[-1] and p["variant"] == "memory":
                    out["bytes_per_job_memory"] = (rss_bytes() - rss0) / size
                return await probe_drain(s)

            for f in Path(p["workdir"]).glob("quickq.db*"):
                f.unlink()
            out[f"{series}_{size}_us"] = run(p, go)
            if series == "future" and size == sizes[-1] and p["variant"] == "sqlite":
                files = Path(p["workdir"]).glob("quickq.db*")
                out["bytes_per_job_sqlite_file"] = sum(f.stat().st_size for f in files) / size
    if note:
        out["note"] = note
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
        c.RECORDER.reset(n)
        md = c.Meter().start()
        await s.start_worker(p["concurrency"])
        await c.RECORDER.await_done(s.sleep, 600)
        md.stop()
        await s.stop_worker()
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
    logging.disable(logging.CRITICAL)
    c.main(
        {
            "enqueue": enqueue,
            "drain": drain,
            "sleep": sleep,
            "latency": latency,
            "crash": crash,
            "longjobs": longjobs,
            "fairness": fairness,
            "priority": priority,
            "scale": scale,
            "sqlite_limit": sqlite_limit,
        },
        worker,
    )
