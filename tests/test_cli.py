"""The ``quickq`` command line, run for real: every command as a subprocess
(``python -m quickq ...``), bad input included (a non-zero exit status, one line
on stderr, no traceback)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest

import quickq
from quickq.stores.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# -- the jobs the worker subprocesses run (imported as tests.test_cli:jobs) ----------

jobs = quickq.JobRegistry()


@jobs.job("ok", priority=7)
async def ok(payload: Any, meta: quickq.JobMeta) -> None:
    await anyio.sleep(0.02)


@jobs.job("fail", max_retries=0)
async def fail(payload: Any, meta: quickq.JobMeta) -> None:
    raise RuntimeError("the espresso machine is on fire")


@jobs.job("slow")
async def slow(payload: Any, meta: quickq.JobMeta) -> None:
    await anyio.sleep(float(payload or 3.0))


empty_registry = quickq.JobRegistry()

# -- helpers -------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(SRC), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", **extra}
    env.pop("QUICKQ_STORE", None)
    env.pop("QUICKQ_DEBUG", None)
    return env


def quickq_cli(
    *args: str, cwd: Path = REPO, stdin: str | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quickq", *args],
        cwd=cwd,
        env=_env(**env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok_run(*args: str, **kw: Any) -> str:
    result = quickq_cli(*args, **kw)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def url(path: Path, query: str = "") -> str:
    return "sqlite:///" + quote(os.fspath(path)) + (f"?{query}" if query else "")


def stats_of(path: Path, qid: str) -> quickq.QueueStats:
    async def read() -> quickq.QueueStats:
        async with await SQLiteStore.open(path) as store:
            return await quickq.JobQueue(store).stats(qid)

    return anyio.run(read)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@contextmanager
def worker(store: str, *options: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quickq", "worker", "tests.test_cli:jobs", "--store", store,
         *options],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line, line + proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def stop(proc: subprocess.Popen[str], *signals: signal.Signals, timeout: float = 15) -> str:
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return err


# -- commands ------------------------------------------------------------------------


def test_help_and_version() -> None:
    out = ok_run("--help")
    for command in ("worker", "enqueue", "stats", "jobs", "dead", "demo"):
        assert command in out
    for sub in ("list", "replay", "purge"):
        assert sub in ok_run("dead", "--help")
    assert quickq.__version__ in ok_run("--version")


def test_every_command_is_documented() -> None:
    import click

    from quickq._cli import cli

    text = (REPO / "docs" / "cli.md").read_text()
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        assert f"## `quickq {name}" in text, f"docs/cli.md has no section on quickq {name}"
        commands = [command]
        if isinstance(command, click.Group):
            commands = [command.get_command(ctx, sub) for sub in command.list_commands(ctx)]  # type: ignore[misc]
        for each in commands:
            for param in each.params if each else []:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("--") and opt not in ("--store", "--json", "--help"):
                        assert f"`{opt}" in text, f"docs/cli.md does not explain {name} {opt}"


def test_enqueue_then_inspect(tmp_path: Path) -> None:
    db = url(tmp_path / "q.db")
    out = ok_run("enqueue", "shop-1", "ok", '{"n": 1}', "--store", db)
    assert out.startswith("enqueued ") and "pending" in out and "priority 100" in out
    job_id = ok_run("enqueue", "shop-1", "ok", "-", "-q", "--store", db, stdin='{"n": 2}').strip()
    later = ok_run("enqueue", "shop-1", "ok", "--delay", "60", "-q", "--store", db).strip()
    at = ok_run(
        "enqueue", "shop-1", "ok", "--at", "2099-01-01T00:00:00+02:00", "--priority", "3",
        "--max-retries", "1", "--timeout", "5", "-q", "--store", db,
    ).strip()  # fmt: skip
    # With --jobs, the topic's own defaults apply (ok: priority 7).
    out = ok_run("enqueue", "shop-2", "ok", "--jobs", "tests.test_cli:jobs", "--store", db)
    assert "priority 7" in out
    # A repeated custom id changes nothing: the first enqueue wins.
    for _ in range(2):
        assert (
            ok_run("enqueue", "shop-2", "ok", "--job-id", "mine", "-q", "--store", db) == "mine\n"
        )

    # Due, though no consumer has moved it from scheduled to pending yet: it counts.
    ok_run("enqueue", "shop-3", "ok", "--delay", "0.2", "--store", db)
    time.sleep(0.3)
    stats = {row["queue_id"]: row for row in json.loads(ok_run("stats", "--json", "--store", db))}
    assert (stats["shop-3"]["pending"], stats["shop-3"]["scheduled"]) == (0, 1)
    assert stats["shop-3"]["oldest_ready_seconds"] >= 0.1
    assert (stats["shop-1"]["pending"], stats["shop-1"]["scheduled"]) == (2, 2)
    assert stats["shop-2"]["pending"] == 2
    assert stats["shop-1"]["oldest_ready_seconds"] >= 0 and stats["shop-1"]["oldest_ready_exact"]
    table = ok_run("stats", "--store", db)
    assert "shop-1" in table and "oldest ready" in table and "all 3 queues" in table

    pending = json.loads(ok_run("jobs", "shop-1", "--json", "--store", db))
    assert [j["payload"] for j in pending] == [{"n": 1}, {"n": 2}]
    assert pending[1]["job_id"] == job_id
    scheduled = ok_run("jobs", "shop-1", "--state", "scheduled", "--store", db)
    assert later in scheduled and at in scheduled
    at_job = [
        j for j in json.loads(ok_run("jobs", "shop-1", "--state", "scheduled", "--json",
                                     "--store", db))
        if j["job_id"] == at
    ]  # fmt: skip
    assert at_job[0]["priority"] == 3 and at_job[0]["max_retries"] == 1
    assert at_job[0]["run_at"].startswith("2098-12-31T22:00:00")  # ISO 8601
    assert "no running jobs in queue shop-1" in ok_run(
        "jobs", "shop-1", "--state", "running", "--store", db
    )
    assert "no queues" in ok_run("stats", "--store", url(tmp_path / "empty.db"))


def test_worker_runs_jobs_and_dead_letters_are_listed_replayed_and_purged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    db = url(path)

    async def seed() -> list[str]:
        async with await SQLiteStore.open(path) as store:
            queue = quickq.JobQueue(store, jobs)  # with the topics' defaults: fail dies at once
            await queue.enqueue_many([quickq.NewJob("shop", "ok") for _ in range(5)])
            dead = await queue.enqueue_many([quickq.NewJob("shop", "fail") for _ in range(3)])
            return [job.job_id for job in dead]

    doomed = anyio.run(seed)
    with worker(db, "--concurrency", "4", "--lease-duration", "2") as proc:
        wait_for(lambda: stats_of(path, "shop") == quickq.QueueStats("shop", 0, 0, 0, 3))
        err = stop(proc, signal.SIGTERM)
    assert "SIGTERM: finishing running jobs" in err
    assert "stopped: 5 completed" in err and "3 dead-lettered" in err
    for job_id in doomed:  # failures are reported as they happen; successes are not
        assert f"dead shop/{job_id} fail attempt 1 after " in err
    assert ": RuntimeError: the espresso machine is on fire" in err
    assert "completed shop/" not in err and "retried" not in err.replace("0 retried", "")

    listing = ok_run("dead", "list", "shop", "--store", db)
    assert all(job_id in listing for job_id in doomed)
    assert "RuntimeError: the espresso machine is on fire" in listing
    assert "failed" in listing
    as_json = json.loads(ok_run("jobs", "shop", "--state", "dead", "--json", "--store", db))
    assert {d["job_id"] for d in as_json} == set(doomed)
    assert {d["reason"] for d in as_json} == {"failed"}

    out = ok_run("dead", "replay", "shop", doomed[0], "--store", db)
    assert "replayed 1 dead letter of queue shop" in out
    assert stats_of(path, "shop") == quickq.QueueStats("shop", 1, 0, 0, 2)
    out = ok_run("dead", "purge", "shop", doomed[1], "--store", db)
    assert "purged 1 dead letter of queue shop" in out
    assert stats_of(path, "shop") == quickq.QueueStats("shop", 1, 0, 0, 1)
    assert "purged 1 dead letter of" in ok_run("dead", "purge", "shop", "--all", "--store", db)
    assert "replayed 0 dead letters" in ok_run("dead", "replay", "shop", "--all", "--store", db)
    assert "no dead letters in queue shop" in ok_run("dead", "list", "shop", "--store", db)
    assert stats_of(path, "shop") == quickq.QueueStats("shop", 1, 0, 0, 0)


def test_worker_finishes_running_jobs_on_the_first_signal(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = url(path)
    ok_run("enqueue", "t", "slow", "1.5", "--store", db)
    with worker(db, "--lease-duration", "1", "--verbose") as proc:
        wait_for(lambda: stats_of(path, "t").running == 1)
        started = time.monotonic()
        err = stop(proc, signal.SIGINT)
    assert time.monotonic() - started < 10
    assert "stopped: 1 completed" in err
    assert "completed t/" in err  # --verbose: every attempt
    assert stats_of(path, "t") == quickq.QueueStats("t", 0, 0, 0, 0)


def test_worker_cancels_on_the_second_signal_and_gives_the_lease_back(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = url(path)
    ok_run("enqueue", "t", "slow", "60", "--store", db)
    with worker(db, "--lease-duration", "30", "--grace-period", "30") as proc:
        wait_for(lambda: stats_of(path, "t").running == 1)
        started = time.monotonic()
        err = stop(proc, signal.SIGTERM, signal.SIGINT)
    assert time.monotonic() - started < 10  # neither the grace period nor the lease
    assert "SIGINT: cancelling running jobs" in err
    assert "1 released" in err
    # Released, not left leased for 30 s: another worker can take it at once.
    assert stats_of(path, "t") == quickq.QueueStats("t", 1, 0, 0, 0)


def test_demo(tmp_path: Path) -> None:
    """The demo runs (two worker processes on SQLite, and in-process on memory:),
    tells its story, and leaves no temporary files behind."""
    scratches = {mode: tmp_path / mode for mode in ("sqlite", "memory")}
    procs = {}
    started = time.monotonic()
    for mode, scratch in scratches.items():
        scratch.mkdir()
        args = ["demo"] if mode == "sqlite" else ["demo", "--store", "memory:"]
        procs[mode] = subprocess.Popen(
            [sys.executable, "-m", "quickq", *args],
            cwd=REPO,
            env=_env(TMPDIR=str(scratch)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{mode}: {out}{err}"
        assert "Traceback" not in err
        assert "orders by shop" in out
        for shop in ("north-beach", "mission", "soma"):
            assert shop in out
        assert "flaky latte" in out and "#3 ok" in out
        assert "bean roast: ran once" in out
        assert "dead letter (failed): ValueError: no such drink" in out
        assert ("2 worker processes" if mode == "sqlite" else "2 in-process consumers") in out
        assert "none lost" in out
        assert list(scratches[mode].iterdir()) == []
    assert time.monotonic() - started < 60


# -- bad input -----------------------------------------------------------------------


def _assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("quickq: error: "), lines[0]
    assert expected in lines[0], lines[0]


def _db(tmp_path: Path) -> str:
    return url(tmp_path / "q.db")


BAD_INPUT: list[tuple[list[str], str]] = [
    (["stats", "--store", "redis://localhost"], "unknown scheme 'redis'"),
    (["stats", "--store", "jobs.db"], "no scheme"),
    (["stats", "--store", "sqlite:jobs.db"], "sqlite:////absolute"),
    (["stats", "--store", "sqlite:///q.db?durability=fast"], "must be full or normal"),
    (["stats", "--store", "memory:"], "memory: lives inside one process"),
    (["stats"], "Missing option '--store'"),
    (["worker", "no_such_module_xyz:jobs", "--store", "DB"], "cannot import module"),
    (["worker", "tests.test_cli:nothing", "--store", "DB"], "has no attribute 'nothing'"),
    (["worker", "tests.test_cli:REPO", "--store", "DB"], "not a quickq.JobRegistry"),
    (["worker", "tests.test_cli:empty_registry", "--store", "DB"], "registers no jobs"),
    (["worker", "tests.test_cli", "--store", "DB"], "is not MODULE:ATTR"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--concurrency", "0"], "--concurrency"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--lease-duration", "0"], "--lease-dura"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--batch-size", "x"], "not a valid int"),
    (["enqueue", "q", "t", "{bad", "--store", "DB"], "not valid JSON"),
    (["enqueue", "q", "t", "NaN", "--store", "DB"], "not JSON-encodable"),
    (["enqueue", "q", "t", "--at", "2030-01-01T10:00", "--store", "DB"], "no timezone"),
    (["enqueue", "q", "t", "--at", "tomorrow", "--store", "DB"], "not an ISO 8601 time"),
    (["enqueue", "q", "t", "--at", "2030-01-01T10:00Z", "--delay", "1", "--store", "DB"], "one of"),
    (["enqueue", "q", "t", "--delay", "-1", "--store", "DB"], "--delay"),
    (["enqueue", "q", "t", "--priority", "99999999999", "--store", "DB"], "priority must be"),
    (["enqueue", "q", "bad topic", "--store", "DB"], "topic must be"),
    (["enqueue", "", "t", "--store", "DB"], "queue_id must be"),
    (["enqueue", "q", "nope", "--jobs", "tests.test_cli:jobs", "--store", "DB"], "no job is"),
    (["jobs", "q", "--state", "lost", "--store", "DB"], "--state"),
    (["dead", "replay", "q", "--store", "DB"], "give either a JOB_ID or --all"),
    (["dead", "purge", "q", "j1", "--all", "--store", "DB"], "give either a JOB_ID or --all"),
    (["dead", "purge", "q", "j1", "--store", "DB"], "no dead letter 'j1'"),
    (["dead", "replay", "q", "j1", "--store", "DB"], "no dead letter 'j1'"),
    (["demo", "--store", "nope:"], "unknown scheme 'nope'"),
    (["brew"], "No such command 'brew'"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--lease-duration", "nan"], "--lease-dura"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--lease-duration", "inf"], "--lease-dura"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--grace-period", "nan"], "--grace-period"),
    (["worker", "tests.test_cli:jobs", "--store", "DB", "--concurrency", "1.5"], "--concurrency"),
    (["worker", "./app.py:jobs", "--store", "DB"], "write app:jobs"),
    (["worker", "tests.test_cli:jobs", "--store", "jobs.db"], "write sqlite:///jobs.db"),
    (["enqueue", "q", "t", "--delay", "1e300", "--store", "DB"], "at most ten years"),
    (["enqueue", "q", "t", "--delay", "nan", "--store", "DB"], "--delay"),
    (["enqueue", "q", "t", "--timeout", "0", "--store", "DB"], "--timeout"),
    (["jobs", "q", "--limit", "0", "--store", "DB"], "--limit"),
]

_NOT_USAGE = ("no dead letter", "cannot import module", "has no attribute", "not a quickq.Job")
USAGE_ERRORS = [
    i for i, (_, expected) in enumerate(BAD_INPUT) if not expected.startswith(_NOT_USAGE)
]
"""Bad usage exits with status 2; a missing dead letter or a registry that cannot
be loaded is a failure (status 1)."""


@pytest.fixture(scope="module")
def bad_input_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[int, subprocess.CompletedProcess[str]]:
    """Every BAD_INPUT case, run concurrently once (each is a process start)."""
    tmp = tmp_path_factory.mktemp("bad-input")

    def one(args: list[str]) -> subprocess.CompletedProcess[str]:
        return quickq_cli(*[_db(tmp) if a == "DB" else a for a in args], cwd=tmp)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, [args for args, _ in BAD_INPUT]))
    return dict(enumerate(results))


@pytest.mark.parametrize("case", range(len(BAD_INPUT)), ids=lambda i: " ".join(BAD_INPUT[i][0]))
def test_bad_input_is_one_line_and_a_failure_status(
    bad_input_results: dict[int, subprocess.CompletedProcess[str]], case: int
) -> None:
    _assert_one_line_error(bad_input_results[case], BAD_INPUT[case][1])


@pytest.mark.parametrize("case", USAGE_ERRORS, ids=lambda i: " ".join(BAD_INPUT[i][0]))
def test_bad_usage_exits_with_status_2(
    bad_input_results: dict[int, subprocess.CompletedProcess[str]], case: int
) -> None:
    assert bad_input_results[case].returncode == 2, bad_input_results[case].stderr


def test_sigterm_before_the_worker_serves_is_a_clean_exit(tmp_path: Path) -> None:
    (tmp_path / "slow_jobs.py").write_text(
        "import time\nimport quickq\ntime.sleep(30)\njobs = quickq.JobRegistry()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "quickq", "worker", "slow_jobs:jobs", "--store", _db(tmp_path)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # inside the import of slow_jobs
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert err.strip() == "quickq: error: terminated before serving", err


def test_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken_jobs.py").write_text("import quickq\nraise RuntimeError('half done')\n")
    (tmp_path / "typo_jobs.py").write_text("def oops(:\n")
    db = _db(tmp_path)
    result = quickq_cli("worker", "broken_jobs:jobs", "--store", db, cwd=tmp_path)
    _assert_one_line_error(result, "RuntimeError: half done (at ")
    result = quickq_cli("worker", "typo_jobs:jobs", "--store", db, cwd=tmp_path)
    _assert_one_line_error(result, "SyntaxError")


def test_corrupt_and_foreign_database_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"coffee grounds " * 300)
    _assert_one_line_error(quickq_cli("stats", "--store", url(junk)), "not a SQLite database")
    foreign = tmp_path / "app.db"
    with closing(sqlite3.connect(foreign)) as db, db:
        db.execute("CREATE TABLE customers (name TEXT)")
    result = quickq_cli("jobs", "q", "--store", url(foreign))
    _assert_one_line_error(result, "not a quickq store")
    result = quickq_cli("enqueue", "q", "t", "--store", url(foreign))
    _assert_one_line_error(result, "not a quickq store")
    assert junk.read_bytes().startswith(b"coffee grounds")  # untouched


def test_read_only_and_missing_directories(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        directory = Path("/proc")  # root writes through mode bits; /proc refuses everyone
    else:
        directory = tmp_path / "ro"
        directory.mkdir()
        directory.chmod(0o555)
    try:
        result = quickq_cli("enqueue", "q", "t", "--store", url(directory / "q.db"))
        _assert_one_line_error(result, "quickq SQLite store")
    finally:
        if directory != Path("/proc"):
            directory.chmod(0o755)
    result = quickq_cli("stats", "--store", url(tmp_path / "missing" / "q.db"))
    _assert_one_line_error(result, "does not exist")


def test_locked_database_file(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    ok_run("enqueue", "q", "t", "--store", url(path))
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("PRAGMA locking_mode = EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        result = quickq_cli("stats", "--store", url(path, "busy_timeout=0.2"))
        _assert_one_line_error(result, "locked")
        result = quickq_cli(
            "worker", "tests.test_cli:jobs", "--store", url(path, "busy_timeout=0.2")
        )
        _assert_one_line_error(result, "locked")
    finally:
        locker.close()


def test_no_fdb_client_or_cluster_is_one_line(tmp_path: Path) -> None:
    result = quickq_cli("stats", "--store", f"fdb://{tmp_path}/none.cluster?probe_timeout=0.5")
    _assert_one_line_error(result, "")
