"""Metrics over HTTP from real processes: ``quickq worker --metrics-port 0``
and ``quickq metrics --port 0``, scraped and parsed with prometheus_client's
own parser; and one line per lost lease in a worker's output."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import anyio
from prometheus_client.parser import text_string_to_metric_families

import quickq
from quickq.stores.sqlite import SQLiteStore

from .test_cli import REPO, _env, jobs, stats_of, stop, url, wait_for, worker
from .test_consumer import steal_lease

_ADDRESS = re.compile(r" at (http://[^ ]+/metrics)$")


def scrape(address: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at *address*, by (name, labels)."""
    with urllib.request.urlopen(address, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def address_of(line: str) -> str:
    match = _ADDRESS.search(line.strip())
    assert match is not None, line
    assert match.group(1).startswith("http://127.0.0.1:")  # loopback unless told otherwise
    return match.group(1)


def enqueue(path: Path, *new: quickq.NewJob) -> list[str]:
    """Enqueue *new* with the worker's topic defaults (fail: no retries)."""

    async def seed() -> list[str]:
        async with await SQLiteStore.open(path) as store:
            done = await quickq.JobQueue(store, jobs).enqueue_many(list(new))
            return [job.job_id for job in done]

    return anyio.run(seed)


def workers_of(path: Path) -> list[quickq.WorkerInfo]:
    async def read() -> list[quickq.WorkerInfo]:
        async with await SQLiteStore.open(path) as store:
            return await quickq.JobQueue(store).workers()

    return anyio.run(read)


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset({"messaging_system": "quickq", **values}.items())


def test_a_worker_serves_its_metrics_on_the_port_it_prints(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    enqueue(path, *[quickq.NewJob("shop", "ok") for _ in range(5)], quickq.NewJob("shop", "fail"))
    with worker(url(path), "--metrics-port", "0", "--concurrency", "3") as proc:
        assert proc.stderr is not None
        address = address_of(proc.stderr.readline())
        wait_for(lambda: stats_of(path, "shop") == quickq.QueueStats("shop", 0, 0, 0, 1))
        wait_for(lambda: scrape(address)[_ok_count()] == 5)
        found = scrape(address)
        (live,) = workers_of(path)
        err = stop(proc, signal.SIGTERM)
    assert live.metrics == address  # quickq workers tells where to scrape
    process = {"messaging_operation_name": "process"}
    consumed = "messaging_client_consumed_messages_total"
    assert found[consumed, labels(**process, messaging_destination_name="ok")] == 5
    assert found[consumed, labels(**process, messaging_destination_name="fail")] == 1
    dead = labels(
        **process, messaging_destination_name="fail", messaging_quickq_dead_reason="failed"
    )
    assert found["quickq_job_dead_letters_total", dead] == 1
    assert (
        found["quickq_job_retries_total", labels(**process, messaging_destination_name="ok")] == 0
    )
    assert found["quickq_consumer_jobs_capacity", labels()] == 3
    assert found["quickq_consumer_jobs_running", labels()] == 0
    # Each ok job sleeps 20 ms: none is at most 5 ms, all within 250 ms.
    ok = {
        **process,
        "messaging_destination_name": "ok",
        "messaging_quickq_job_outcome": "completed",
    }
    bucket = "messaging_process_duration_seconds_bucket"
    assert found[bucket, labels(**ok, le="0.005")] == 0
    assert found[bucket, labels(**ok, le="+Inf")] == 5
    assert found["messaging_process_duration_seconds_sum", labels(**ok)] >= 5 * 0.02
    assert "stopped: 5 completed" in err


def _ok_count() -> tuple[str, frozenset[tuple[str, str]]]:
    ok = {
        "messaging_operation_name": "process",
        "messaging_destination_name": "ok",
        "messaging_quickq_job_outcome": "completed",
    }
    return "messaging_process_duration_seconds_count", labels(**ok)


def test_quickq_metrics_serves_the_stores_gauges(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    enqueue(
        path,
        *[quickq.NewJob("shop-1", "ok") for _ in range(3)],
        quickq.NewJob("shop-1", "ok", delay=3600),
        quickq.NewJob("shop-2", "ok", delay=3600),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "quickq", "metrics", "--store", url(path), "--port", "0",
         "--refresh", "0.1"],
        cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        address = address_of(proc.stderr.readline())
        found = scrape(address)
        for qid in ("shop-1", "shop-2"):
            stats = stats_of(path, qid)
            for state in ("pending", "scheduled", "running", "dead"):
                key = labels(messaging_quickq_queue_id=qid, messaging_quickq_job_state=state)
                assert found["quickq_queue_jobs", key] == getattr(stats, state), (qid, state)
        assert found["quickq_jobs", labels(messaging_quickq_job_state="scheduled")] == 2
        assert found["quickq_queues_truncated", labels()] == 0
        age = found[
            "quickq_queue_oldest_ready_age_seconds",
            labels(messaging_quickq_queue_id="shop-1", messaging_quickq_age_exact="true"),
        ]
        assert age >= 0
        enqueue(path, quickq.NewJob("shop-3", "ok"))  # seen after the refresh interval
        wait_for(lambda: ("quickq_queue_jobs", _pending("shop-3")) in scrape(address))
        err = stop(proc, signal.SIGTERM)
        assert "SIGTERM: stopping" in err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _pending(qid: str) -> frozenset[tuple[str, str]]:
    return labels(messaging_quickq_queue_id=qid, messaging_quickq_job_state="pending")


def test_a_lost_lease_is_one_line_of_a_workers_output(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    (job_id,) = enqueue(path, quickq.NewJob("t", "slow", 3.0))
    with worker(url(path), "--lease-duration", "1") as proc:
        wait_for(lambda: stats_of(path, "t").running == 1)

        async def steal() -> None:
            async with await SQLiteStore.open(path) as store:
                await steal_lease(store, quickq.JobQueue(store), "t", job_id)  # type: ignore[arg-type]

        anyio.run(steal)
        err = stop(proc, signal.SIGTERM)
    lines = [line for line in err.splitlines() if job_id in line]
    assert len(lines) == 1, err
    assert re.search(rf"quickq worker \d+: lost t/{job_id} slow attempt 1 after ", lines[0])
    assert "1 lost" in err


def test_a_metrics_port_in_use_is_one_error_line_before_a_job_is_leased(tmp_path: Path) -> None:
    import socket

    from .test_cli import quickq_cli

    path = tmp_path / "q.db"
    enqueue(path, quickq.NewJob("shop", "ok"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        db = url(path)
        for args in (
            ["worker", "tests.test_cli:jobs", "--store", db, "--metrics-port", port, "-v"],
            ["metrics", "--store", db, "--port", port],
        ):
            result = quickq_cli(*args)
            assert result.returncode == 1, result.stderr
            assert f"quickq: error: cannot serve metrics on 127.0.0.1:{port}: " in result.stderr
            assert "Traceback" not in result.stderr
            # The port is bound first: the worker never started consuming.
            assert "serving" not in result.stderr and "released" not in result.stderr
    stats = stats_of(path, "shop")
    assert (stats.pending, stats.running) == (1, 0)
    assert workers_of(path) == []


def test_a_metrics_host_without_a_port_is_a_usage_error(tmp_path: Path) -> None:
    from .test_cli import quickq_cli

    db = url(tmp_path / "q.db")
    result = quickq_cli("worker", "tests.test_cli:jobs", "--store", db, "--metrics-host", "0.0.0.0")
    assert result.returncode == 2, result.stderr
    assert "--metrics-host needs --metrics-port" in result.stderr


def test_a_worker_with_store_gauges_serves_them_beside_its_own(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    enqueue(path, quickq.NewJob("later", "ok", delay=3600), quickq.NewJob("shop", "ok"))
    with worker(url(path), "--metrics-port", "0", "--store-gauges") as proc:
        assert proc.stderr is not None
        address = address_of(proc.stderr.readline())
        wait_for(lambda: stats_of(path, "shop").pending == 0)
        found = scrape(address)
        stop(proc, signal.SIGTERM)
    scheduled = labels(messaging_quickq_queue_id="later", messaging_quickq_job_state="scheduled")
    assert found["quickq_queue_jobs", scheduled] == 1
    assert found["quickq_workers", labels(messaging_quickq_worker_state="live")] == 1
    assert ("messaging_client_consumed_messages_total", labels(
        messaging_operation_name="process", messaging_destination_name="ok")) in found  # fmt: skip
