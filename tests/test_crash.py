"""Crash safety, for real: ``kill -9`` on worker processes and on a producer.

1. Several ``quickq worker`` processes share one SQLite file; random workers
   are killed with SIGKILL again and again and replaced by new ones. Every job
   appends its id to a log file when it has done its work (before its
   completion is acknowledged), so a job run twice shows up twice, and counts
   its completion in the store, inside the completion's own transaction
   (``quickq.Complete(writes=...)``). Afterwards every job has run at least
   once, none is left in the queue or leased, the only jobs run twice are ones
   that can have been in flight at a kill (at most kills x concurrency), and
   every completion counter is exactly 1.
2. A producer is killed in the middle of a large ``enqueue_many``: each batch
   is entirely in the queue or not at all, and the counters agree.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import fdb.tuple as fdb_tuple
import pytest

import quickq
from quickq.stores import Transaction, decode_counter
from quickq.stores.sqlite import SQLiteStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
LOG_ENV = "QUICKQ_CRASH_LOG"

# -- the workers' jobs (imported by them as tests.test_crash:crash_jobs) -------------

crash_jobs = quickq.JobRegistry()


def _done_key(job_id: str) -> bytes:
    packed: bytes = fdb_tuple.pack(("crash-test", "completed", job_id))
    return packed


@crash_jobs.job("brew", max_retries=1000)
async def brew(payload: Any, meta: quickq.JobMeta) -> quickq.Complete:
    await anyio.sleep(random.uniform(0.02, 0.12))
    # The work's external effect: one short O_APPEND write (atomic, so concurrent
    # workers never interleave lines). A job run twice appends twice.
    line = f"{meta.item_id} {os.getpid()} {meta.attempt}\n".encode()
    fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    # More work after the effect: a kill now makes the job run (and append) again.
    await anyio.sleep(random.uniform(0.0, 0.05))

    # The effect in the store: counted in the completion's own transaction, so
    # exactly once however often the job runs.
    async def count(tr: Transaction) -> None:
        tr.add(_done_key(meta.item_id), 1)

    return quickq.Complete(writes=count)


# -- helpers -------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(SRC), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def _url(path: Path) -> str:
    return "sqlite:///" + quote(os.fspath(path))


def _completions(path: Path) -> dict[str, int]:
    """The completion counters the jobs wrote in their completion transactions."""
    begin = fdb_tuple.pack(("crash-test", "completed"))

    async def read() -> dict[str, int]:
        async with await SQLiteStore.open(path) as store:

            async def scan(tr: Transaction) -> dict[str, int]:
                rows = await tr.get_range(begin + b"\x00", begin + b"\xff")
                return {fdb_tuple.unpack(k)[-1]: decode_counter(v) for k, v in rows}

            return await store.transact(scan)

    return anyio.run(read)


def _queue_state(path: Path, qid: str) -> tuple[quickq.QueueStats, list[quickq.Job]]:
    async def read() -> tuple[quickq.QueueStats, list[quickq.Job]]:
        async with await SQLiteStore.open(path) as store:
            queue = quickq.JobQueue(store)
            return await queue.stats(qid), await queue.list_jobs(qid, "running", limit=10_000)

    return anyio.run(read)


def _log_counts(log: Path) -> Counter[str]:
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines() if line.strip())


# -- 1. kill -9 workers again and again ----------------------------------------------

N_JOBS = 600
WORKERS = 3
CONCURRENCY = 4
KILLS = 8
LEASE = 2.0


class _Workers:
    def __init__(self, tmp: Path, store_url: str, log: Path) -> None:
        self.tmp, self.store_url, self.log = tmp, store_url, log
        self.live: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.started = 0

    def _log_of(self, proc: subprocess.Popen[bytes]) -> Path:
        return self.logs[proc.pid]

    def spawn(self) -> None:
        self.started += 1
        log = self.tmp / f"worker-{self.started}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "quickq", "worker", "tests.test_crash:crash_jobs",
                 "--store", self.store_url, f"--concurrency={CONCURRENCY}",
                 f"--batch-size={CONCURRENCY}", f"--lease-duration={LEASE}",
                 "--grace-period=10"],
                cwd=REPO,
                env=_env(**{LOG_ENV: str(self.log)}),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )  # fmt: skip
        self.live.append(proc)
        self.logs[proc.pid] = log

    def kill_one(self, rng: random.Random) -> None:
        # Prefer workers that are up and consuming, not ones still starting.
        serving = [p for p in self.live if "serving" in self._log_of(p).read_text()]
        victim = rng.choice(serving or self.live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.live.remove(victim)

    def stop_all(self) -> list[int | None]:
        for proc in self.live:
            proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.live:
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes

    def kill_all(self) -> None:
        for proc in self.live:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_kill_9_workers_again_and_again_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    log = tmp_path / "done.log"
    ids = [f"job-{n:04d}" for n in range(N_JOBS)]

    async def seed() -> None:
        async with await SQLiteStore.open(path) as store:
            queue = quickq.JobQueue(store)
            for start in range(0, N_JOBS, 200):
                batch = ids[start : start + 200]
                await queue.enqueue_many([quickq.NewJob("cafe", "brew", job_id=i) for i in batch])

    anyio.run(seed)
    seed_value = random.randrange(2**32)
    rng = random.Random(seed_value)
    workers = _Workers(tmp_path, _url(path), log)
    started = time.monotonic()
    kills_in_flight = 0
    try:
        for _ in range(WORKERS):
            workers.spawn()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 0.9))
            done_before = len(_log_counts(log))
            workers.kill_one(rng)
            kills_in_flight += done_before < N_JOBS
            workers.spawn()
        # The survivors and the replacements finish the work, the killed
        # workers' jobs included once their leases expire.
        deadline = time.monotonic() + 60
        while True:
            stats, running = _queue_state(path, "cafe")
            if stats.pending + stats.scheduled + stats.running == 0:
                break
            assert time.monotonic() < deadline, f"not drained: {stats}"
            time.sleep(0.25)
        codes = workers.stop_all()
    finally:
        workers.kill_all()
    elapsed = time.monotonic() - started

    counts = _log_counts(log)
    duplicates = sum(n - 1 for n in counts.values())
    report = (
        f"seed {seed_value}: {KILLS} kills ({kills_in_flight} with work left), "
        f"{workers.started} workers, {len(counts)} jobs done, {duplicates} run twice, "
        f"{elapsed:.1f}s"
    )
    print(report)
    assert codes == [0] * WORKERS, f"graceful stop failed: {codes}; {report}"
    assert set(counts) == set(ids), f"lost: {sorted(set(ids) - set(counts))[:10]}; {report}"
    stats, running = _queue_state(path, "cafe")
    assert stats == quickq.QueueStats("cafe", 0, 0, 0, 0), report
    assert running == [], report
    assert duplicates <= KILLS * CONCURRENCY, report
    # Effects written in the completion's transaction happened exactly once.
    assert _completions(path) == dict.fromkeys(ids, 1), report
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- 2. kill -9 a producer in the middle of enqueue_many -----------------------------

BATCH = 500

_PRODUCER = textwrap.dedent(
    """
    import sys
    import anyio
    import quickq
    from quickq.stores.sqlite import SQLiteStore

    async def main(path, size):
        async with await SQLiteStore.open(path) as store:
            queue = quickq.JobQueue(store)
            batch = 0
            while True:
                print(f"start {batch}", flush=True)
                await queue.enqueue_many([
                    quickq.NewJob("bulk", "t", {"batch": batch}, job_id=f"b{batch:05d}-{k:05d}")
                    for k in range(size)
                ])
                print(f"done {batch}", flush=True)
                batch += 1

    anyio.run(main, sys.argv[1], int(sys.argv[2]), backend="trio")
    """
)


@pytest.mark.parametrize("delay", [0.2, 0.9, 1.7])
def test_kill_9_producer_mid_batch_is_all_or_nothing(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "q.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, str(path), str(BATCH)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == b"start 0\n", first + (proc.stderr.read() if proc.stderr else b"")
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
    lines = (first + out).decode().split()
    started = [int(n) for word, n in zip(lines[::2], lines[1::2], strict=True) if word == "start"]
    finished = [int(n) for word, n in zip(lines[::2], lines[1::2], strict=True) if word == "done"]

    async def read() -> tuple[quickq.QueueStats, list[quickq.Job]]:
        async with await SQLiteStore.open(path) as store:
            queue = quickq.JobQueue(store)
            return await queue.stats("bulk"), await queue.list_jobs("bulk", "pending", limit=10**6)

    stats, jobs = anyio.run(read)
    per_batch = Counter(job.payload["batch"] for job in jobs)
    print(f"killed after {delay}s: batches started {started}, done {finished}, in the queue "
          f"{sorted(per_batch)}")  # fmt: skip
    assert set(per_batch.values()) <= {BATCH}, f"a batch is half there: {per_batch}"
    present = sorted(per_batch)
    # Every batch reported done is there; the one being written at the kill is
    # all there (its commit landed just before) or not there at all.
    assert present[: len(finished)] == finished
    assert len(present) - len(finished) in (0, 1)
    assert present == list(range(len(present)))
    assert started[-1] not in finished, "killed between batches: the test proves nothing"
    assert len(jobs) == stats.pending == BATCH * len(present)
    assert (stats.scheduled, stats.running, stats.dead) == (0, 0, 0)
    assert all(j.job_id == f"b{j.payload['batch']:05d}-{j.job_id[-5:]}" for j in jobs)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
