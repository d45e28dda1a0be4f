"""``quickq workers`` against real ``quickq worker`` processes on SQLite: a live
one is listed, a stopped one is gone, and one killed with SIGKILL turns stale
after three of its intervals."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path

import anyio
import attrs

import quickq
from quickq._cli._workers import _up
from quickq.stores.sqlite import SQLiteStore

from .test_cli import ok_run, stop, url, wait_for, worker

INTERVAL = 0.5


def workers_in(path: Path, *, include_stale: bool = False) -> list[quickq.WorkerInfo]:
    async def read() -> list[quickq.WorkerInfo]:
        async with await SQLiteStore.open(path) as store:
            return await quickq.JobQueue(store).workers(include_stale=include_stale)

    return anyio.run(read)


def test_quickq_workers_lists_a_live_worker_and_forgets_a_stopped_one(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    ok_run("enqueue", "shop-1", "ok", "--store", url(db))
    with worker(url(db), "--heartbeat-interval", str(INTERVAL), "--concurrency", "3") as proc:
        wait_for(lambda: any(w.completed == 1 for w in workers_in(db)))
        (row,) = json.loads(ok_run("workers", "--store", url(db), "--json"))
        assert row["pid"] == proc.pid and row["state"] == "live"
        assert (row["concurrency"], row["completed"], row["interval"]) == (3, 1, INTERVAL)
        assert row["topics"] == ["ok", "fail", "slow"] and row["version"] == quickq.__version__
        assert len(row["consumer_id"]) == 16
        started = dt.datetime.fromisoformat(row["started"])  # ISO 8601, with its zone
        assert "T" in row["started"] and started.tzinfo is not None
        table = ok_run("workers", "--store", url(db))
        assert f" {proc.pid} " in table and " live " in table and row["consumer_id"] in table
        stop(proc, signal.SIGTERM)
    assert workers_in(db, include_stale=True) == []
    assert ok_run("workers", "--store", url(db)).strip() == f"no live workers in {url(db)}"
    assert json.loads(ok_run("workers", "--store", url(db), "--all", "--json")) == []


def test_a_killed_workers_record_turns_stale(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    with worker(url(db), "--heartbeat-interval", str(INTERVAL)) as proc:
        (live,) = workers_in(db)
        assert live.pid == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.time()
    (last,) = workers_in(db, include_stale=True)  # nobody cleared it
    assert last.consumer_id == live.consumer_id
    wait_for(lambda: workers_in(db) == [], timeout=30)
    assert time.time() - last.seen.timestamp() > 3 * INTERVAL
    assert time.time() - killed < 3 * INTERVAL + 10  # stale soon after three intervals
    (stale,) = workers_in(db, include_stale=True)
    assert (stale.consumer_id, stale.state) == (live.consumer_id, "stale")
    (row,) = json.loads(ok_run("workers", "--store", url(db), "--all", "--json"))
    assert (row["consumer_id"], row["state"]) == (live.consumer_id, "stale")
    assert " stale " in ok_run("workers", "--store", url(db), "--all")
    # A stale worker was up from its start to its last beat, not until now.
    later = stale.seen + dt.timedelta(hours=1)
    assert _up(stale, later) == (stale.seen - stale.started).total_seconds()
    assert _up(attrs.evolve(stale, state="live"), later) == (later - stale.started).total_seconds()
