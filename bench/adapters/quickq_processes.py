"""quickq across processes on one SQLite file: ``quickq worker`` processes
draining a backlog (scenario 11), and an open-loop producer whose consumer
is another process (scenario 4c).

Worker processes report completions through a record file, as in the crash
scenario (:mod:`_common.processes`); they are stopped with SIGTERM, the way
an operator stops ``quickq worker``, and killed only if they do not exit.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as c
from _common.processes import read_done

ADAPTERS = Path(__file__).resolve().parent
QUICKQ = Path(sys.executable).with_name("quickq")
QUEUES = 8
RECORD_ENV = "QUICKQ_BENCH_RECORD"  # where quickq_cli_jobs records completions
LATE = (143, -signal.SIGTERM)  # exit codes of a worker stopped before it served
STOP_S = 20.0  # a worker given SIGTERM finishes within its grace period (10 s)


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def spawn_cli_worker(
    db: Path, record: Path, concurrency: int, args: list[str], log: Path
) -> subprocess.Popen[bytes]:
    """``quickq worker quickq_cli_jobs:jobs`` on *db*, at the CLI's defaults but
    ``--concurrency`` and *args*."""
    path = os.pathsep.join(x for x in (str(ADAPTERS), os.environ.get("PYTHONPATH")) if x)
    env = {**os.environ, RECORD_ENV: str(record), "PYTHONPATH": path}
    cmd = [str(QUICKQ), "worker", "quickq_cli_jobs:jobs", "--store", f"sqlite:///{db}"]
    cmd += ["--concurrency", str(concurrency), *args]
    with log.open("ab") as out:
        # In the adapter's process group, so that the harness's kill of a timed-out
        # adapter takes its workers with it.
        return subprocess.Popen(cmd, stdout=out, stderr=out, env=env, cwd=str(ADAPTERS))


def stop(procs: list[subprocess.Popen[bytes]]) -> tuple[list[int | None], float]:
    """SIGTERM every worker, wait for them to drain and exit, kill any left;
    their exit codes and the CPU seconds they used (``wait4``)."""
    for w in procs:
        w.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    codes: dict[int, int | None] = {}
    cpu = 0.0
    while len(codes) < len(procs) and time.monotonic() < deadline:
        for w in procs:
            if w.pid in codes:
                continue
            pid, status, ru = os.wait4(w.pid, os.WNOHANG)
            if pid:
                w.returncode = codes[w.pid] = os.waitstatus_to_exitcode(status)
                cpu += ru.ru_utime + ru.ru_stime
        time.sleep(0.01)
    for w in procs:
        if w.pid not in codes:
            w.kill()
            w.wait()
            codes[w.pid] = None
    return [codes[w.pid] for w in procs], cpu


def drain_with_workers(
    p: c.Params, k: int, fill: Any, db: Path, record: Path, log: Path
) -> dict[str, float]:
    """One round: *fill* queues the jobs on *db*, then *k* CLI workers drain them."""
    n = p["n"]
    fill(db)
    t0 = time.perf_counter()
    procs = [
        spawn_cli_worker(db, record, p["concurrency"], list(p.get("worker_args", [])), log)
        for _ in range(k)
    ]
    first = None
    deadline = t0 + p.get("timeout_s", 300)
    try:
        while (done := count_lines(record)) < n:
            if first is None and done:
                first = time.perf_counter() - t0
            if time.perf_counter() > deadline or any(w.poll() is not None for w in procs):
                raise RuntimeError(f"{k} workers: {done} of {n} done; see {log}")
            time.sleep(0.005)
        wall = time.perf_counter() - t0
    finally:
        codes, cpu = stop(procs)
    ids = read_done(record)
    if len(set(ids)) != n or len(ids) != n:
        raise RuntimeError(f"{k} workers: {len(set(ids))} distinct of {len(ids)} completions")
    # SIGTERM before the worker was serving (all done before it started): 143
    # from quickq's handler, -15 if it came before the interpreter had one.
    if any(code not in (0, *LATE) for code in codes):
        raise RuntimeError(f"{k} workers exited {codes}; see {log}")
    late = sum(code in LATE for code in codes)
    return {"wall": wall, "first": first or wall, "late": late, "cpu_us": cpu / n * 1e6}


def workers_scaling(p: c.Params, fill: Any) -> c.Metrics:
    """Scenario 11: *n* no-op jobs in 8 queues drained by 1, 2 and 4 CLI workers,
    start-up included, in interleaved rounds (medians reported)."""
    work = Path(p["workdir"])
    n, counts = p["n"], list(p.get("processes", (1, 2, 4)))
    walls: dict[int, list[float]] = {k: [] for k in counts}
    firsts: dict[int, list[float]] = {k: [] for k in counts}
    cpus: dict[int, list[float]] = {k: [] for k in counts}
    late = 0
    for r in range(p.get("rounds", 1)):
        for k in counts:
            tag = f"{k}-{r}"
            db, record = work / f"workers-{tag}.db", work / f"workers-{tag}.txt"
            m = drain_with_workers(p, k, fill, db, record, work / f"workers-{tag}.log")
            walls[k].append(m["wall"])
            firsts[k].append(m["first"])
            cpus[k].append(m["cpu_us"])
            late += int(m["late"])
            for f in work.glob(f"workers-{tag}.db*"):
                f.unlink()
    out: c.Metrics = {"jobs": n, "queues": QUEUES, "rounds": p.get("rounds", 1)}
    for k in counts:
        out[f"p{k}_jobs_per_s"] = n / statistics.median(walls[k])
        out[f"p{k}_jobs_per_s_min"] = n / max(walls[k])
        out[f"p{k}_jobs_per_s_max"] = n / min(walls[k])
        out[f"p{k}_first_s"] = statistics.median(firsts[k])
        # the workers' CPU, start-up and the drain after SIGTERM included
        out[f"p{k}_cpu_us_per_job"] = statistics.median(cpus[k])
    lo, hi = counts[0], counts[-1]
    out["scaling"] = out[f"p{hi}_jobs_per_s"] / out[f"p{lo}_jobs_per_s"]
    rising = all(
        out[f"p{b}_jobs_per_s"] > out[f"p{a}_jobs_per_s"] for a, b in itertools.pairwise(counts)
    )
    out["rising"] = 1 if rising else 0
    args = " ".join(p.get("worker_args", [])) or "the CLI's defaults"
    out["note"] = f"quickq worker --concurrency {p['concurrency']}, otherwise {args}"
    if late:
        out["late_workers"] = late
        out["note"] += f"; {late} workers were stopped before they served (all jobs done)"
    return out


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}
