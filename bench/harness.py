"""The benchmark harness: sets up each system, runs every scenario, writes the report.

Run ``python -m bench --help``. Each system's adapter runs in its own process,
with its own virtual environment's Python (bench/.work/venvs/NAME), and prints one
JSON result line (bench/adapters/_common/protocol.py). The harness measures each adapter
process's CPU time and peak RSS with ``wait4``, and the CPU used meanwhile by
the servers it started (Redis, PostgreSQL), and aggregates one warm-up plus N
repetitions into medians with min..max spread.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import servers, timing
from .adapters._common.protocol import read_result
from .systems import DURABLE, IN_MEMORY, SYSTEMS, System

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ADAPTERS = BENCH / "adapters"
WORK = BENCH / ".work"
# Scratch space of one harness run (adapter output, per-run work directories);
# --work moves it so that two runs (a test beside a full run) cannot collide.
RUN_DIR = WORK

# Scenario sizes per profile. "full" is the issue's; "quick" is for a look in a
# few minutes; "smoke" is for the test suite (seconds).
#
# The full run must end within the hour on 2 cores (issue 6). The run of
# 2026-11-29 took 86 minutes with 8 s time boxes, 4 s latency runs and 5 s
# priority streams on a machine loaded 4-6x over; `python -m bench --estimate`
# prints what these settings should take per scenario (bench/timing.py), and
# every run logs that estimate beside the actual time at its end.
# ``run_budget_min`` is the hard stop: phases that would start after it are
# skipped and reported as "skipped: run budget".
PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "warmup": 1,
        "reps": 5,
        "enqueue_n": 20_000,
        "drain_n": 20_000,
        "sleep_n": 2_000,
        # open-loop seconds per latency run: 100 jobs at 50/s, 1,000 at 500/s
        "latency_s": 2.0,
        "crash_n": 2_000,
        "crash_reps": 1,
        # seconds per time-boxed phase: an enqueue run's two halves, a drain's
        # fill and its drain (from the first completion), the fairness window
        # (A's flood may take 2.5 boxes to queue), a latency run's grace (2x,
        # at least 5 s). 8 s in the 2026-11-29 run, 2 s to end within the hour.
        "budget_s": 2.0,
        "fair_a": 10_000,
        "fair_b": 100,
        "prio_s": 2.0,
        # scenario 9: future jobs up to 1,000,000 on the trio variants, one per
        # store (seeding them takes 75 s each), up to 100,000 on the asyncio
        # ones (a million there would add 2.5 minutes and tell nothing the trio
        # points do not); idle queues up to 100,000 (the range)
        "scale_max": 1_000_000,
        "scale_max_rest": 100_000,
        "scale_max_idle": 100_000,
        "sqlite_n": 5_000,
        "run_budget_min": 55.0,
    },
    "quick": {
        "warmup": 1,
        "reps": 2,
        "enqueue_n": 2_000,
        "drain_n": 2_000,
        "sleep_n": 320,
        "latency_s": 2.0,
        "crash_n": 300,
        "crash_reps": 1,
        "budget_s": 10.0,
        "fair_a": 2_000,
        "fair_b": 100,
        "prio_s": 2.0,
        "scale_max": 10_000,
        "scale_max_rest": 10_000,
        "scale_max_idle": 10_000,
        "sqlite_n": 1_000,
        "run_budget_min": 30.0,
    },
    "smoke": {
        "warmup": 0,
        "reps": 1,
        "enqueue_n": 100,
        "drain_n": 100,
        "sleep_n": 32,
        "latency_s": 0.3,
        "crash_n": 40,
        "crash_reps": 1,
        "budget_s": 5.0,
        "fair_a": 100,
        "fair_b": 10,
        "prio_s": 0.5,
        "scale_max": 1_000,
        "scale_max_rest": 1_000,
        "scale_max_idle": 1_000,
        "sqlite_n": 100,
        "run_budget_min": 10.0,
    },
}

SCENARIOS: dict[str, dict[str, Any]] = {
    "enqueue": {
        "title": "1. Enqueue throughput (jobs/s, one at a time / batched x100)",
        "headline": "single_jobs_per_s",
        "higher": True,
    },
    "drain": {
        "title": "2. Drain throughput: queued no-op jobs (jobs/s), concurrency 32",
        "headline": "jobs_per_s",
        "higher": True,
    },
    "sleep": {
        "title": "3. 50 ms sleep jobs at concurrency 32: efficiency (ideal/actual)",
        "headline": "efficiency",
        "higher": True,
    },
    "latency50": {
        "title": "4a. Enqueue-to-start latency, open loop 50 jobs/s (ms)",
        "headline": "p99_ms",
        "higher": False,
    },
    "latency500": {
        "title": "4b. Enqueue-to-start latency, open loop 500 jobs/s (ms)",
        "headline": "p99_ms",
        "higher": False,
    },
    "crash": {
        "title": "5. Crash: kill -9 the worker at 40 %, start a new one",
        "headline": "lost",
        "higher": False,
    },
    "longjobs": {
        "title": "6. Long jobs: 3x the lease / visibility timeout",
        "headline": "duplicated",
        "higher": False,
    },
    "fairness": {
        "title": "7. Fairness: A floods, then B enqueues (B's wait, ms)",
        "headline": "b_p99_ms",
        "higher": False,
    },
    "priority": {
        "title": "8. Priority: one worst-priority job in a stream at capacity",
        "headline": "low_wait_ms",
        "higher": False,
    },
    "scale": {
        "title": "9. quickq's own costs as future jobs and idle queues grow",
        "headline": "",
        "higher": False,
    },
    "sqlite_limit": {
        "title": "10. SQLite's physical limit vs quickq on SQLite",
        "headline": "ratio",
        "higher": True,
    },
}


def scenario_params(scn: str, prof: dict[str, Any]) -> dict[str, Any]:
    conc = 32
    match scn:
        case "enqueue":
            return {"scenario": "enqueue", "n": prof["enqueue_n"], "batch": 100}
        case "drain":
            return {"scenario": "drain", "n": prof["drain_n"], "batch": 100, "concurrency": conc}
        case "sleep":
            return {
                "scenario": "sleep",
                "n": prof["sleep_n"],
                "sleep_s": 0.05,
                "batch": 100,
                "concurrency": conc,
            }
        case "latency50" | "latency500":
            return {
                "scenario": "latency",
                "rate": 50 if scn == "latency50" else 500,
                "duration_s": prof["latency_s"],
                "concurrency": conc,
            }
        case "crash":
            return {
                "scenario": "crash",
                "n": prof["crash_n"],
                "job_s": 0.2,
                "concurrency": conc,
                "recover_timeout_s": 90,
                "lease_s": 5.0,
            }
        case "longjobs":
            return {"scenario": "longjobs", "n": 8, "lease_s": 1.0, "job_s": 3.0, "concurrency": 8}
        case "fairness":
            return {
                "scenario": "fairness",
                "a": prof["fair_a"],
                "b": prof["fair_b"],
                "batch": 100,
                "concurrency": conc,
            }
        case "priority":
            return {
                "scenario": "priority",
                "duration_s": prof["prio_s"],
                "concurrency": 4,
                "job_s": 0.02,
            }
        case "scale":
            return {
                "scenario": "scale",
                "max_future": prof["scale_max"],
                "max_future_rest": prof["scale_max_rest"],
                "max_idle": prof["scale_max_idle"],
                "seed_batch": 5_000,
                "probe": 500,
                "batch": 100,
                "concurrency": conc,
            }
        case "sqlite_limit":
            return {
                "scenario": "sqlite_limit",
                "n": prof["sqlite_n"],
                "batch": 100,
                "concurrency": conc,
            }
    raise KeyError(scn)


# ------------------------------------------------------------------ environments


def venv_python(system: System) -> Path:
    if system.venv is None:
        return Path(sys.executable)
    return WORK / "venvs" / system.venv / "bin" / "python"


def ensure_venv(name: str, log: Any) -> Path:
    """Create bench/.work/venvs/NAME and install bench/requirements/NAME.txt (pinned)."""
    req = BENCH / "requirements" / f"{name}.txt"
    venv = WORK / "venvs" / name
    stamp = venv / ".bench-stamp"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv / "bin" / "python"
    log(f"installing {name} venv from {req.relative_to(ROOT)}")
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(req)],
        check=True,
    )
    stamp.write_text(digest)
    return py


def package_version(py: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def machine_stamp() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "quickq_commit": git + (" + uncommitted changes in src/" if dirty else ""),
        "loadavg_at_start": list(os.getloadavg()),
    }


# ------------------------------------------------------------------------ running


def run_adapter(
    py: Path, system: System, params: dict[str, Any], timeout: float, srv_pids: list[int]
) -> dict[str, Any]:
    """One adapter process: its result line, CPU time and peak RSS (wait4)."""
    out_path = RUN_DIR / "last-stdout.txt"
    err_path = RUN_DIR / "last-stderr.txt"
    cpu_srv0 = servers.proc_cpu_seconds(srv_pids)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(py), str(ADAPTERS / system.adapter), json.dumps(params)],
            stdout=out,
            stderr=err,
            cwd=str(ADAPTERS),
            env=env,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, 9))
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(ProcessLookupError):  # whatever the adapter left behind
        os.killpg(proc.pid, 9)
    wall = time.perf_counter() - t0
    cpu_srv = servers.proc_cpu_seconds(srv_pids) - cpu_srv0
    result = read_result(out_path.read_text(errors="replace"))
    if result is None:
        tail = err_path.read_text(errors="replace")[-2000:]
        why = f"exit {proc.returncode} after {wall:.1f}s; stderr: {tail}"
        result = {"status": "error", "reason": why}
    result["process"] = {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "maxrss_mb": ru.ru_maxrss / 1024,
        "server_cpu_s": cpu_srv if srv_pids else None,
    }
    return result


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min..max of every numeric metric over the measured runs."""
    keys: dict[str, list[float]] = {}
    for r in runs:
        flat = {**r.get("metrics", {}), **{f"proc_{k}": v for k, v in r["process"].items()}}
        for k, v in flat.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                keys.setdefault(k, []).append(float(v))
    out: dict[str, Any] = {}
    for k, vs in keys.items():
        out[k] = {"median": statistics.median(vs), "min": min(vs), "max": max(vs), "n": len(vs)}
    notes = {k: v for r in runs for k, v in r.get("metrics", {}).items() if isinstance(v, str)}
    if notes:
        out["notes"] = notes
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument(
        "--systems",
        default="all",
        help="comma-separated names or 'all', 'offline' (no servers), 'quickq' (see --list)",
    )
    ap.add_argument("--scenarios", default="all", help="comma-separated ids or 'all'")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, 2 repetitions")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 run: for tests")
    ap.add_argument("--reps", type=int, help="override the number of measured repetitions")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="never install anything: skip systems whose venv or server is missing",
    )
    ap.add_argument("--no-charts", action="store_true")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="update the systems and scenarios of this run in an existing results.json",
    )
    ap.add_argument("--work", type=Path, help="scratch directory (default bench/.work)")
    ap.add_argument(
        "--budget",
        type=float,
        help="seconds per timed phase (full profile: 2; the 2026-11-29 run: 8)",
    )
    ap.add_argument(
        "--run-budget",
        type=float,
        help="minutes the whole run may take: once passed, the remaining phases are"
        " skipped and reported as 'skipped: run budget' (full profile: 55)",
    )
    ap.add_argument(
        "--estimate",
        action="store_true",
        help="print the estimated time per scenario for the chosen profile and exit",
    )
    ap.add_argument("--list", action="store_true", help="list systems and scenarios")
    args = ap.parse_args(argv)

    if args.list:
        for s in SYSTEMS.values():
            print(f"{s.name:24} {s.durability:9} {s.durability_note}")
        for k, v in SCENARIOS.items():
            print(f"{k:14} {v['title']}")
        return 0

    # The run budget counts from here: installing venvs and servers on a fresh
    # machine is part of the hour.
    t_run = time.monotonic()
    profile_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    prof = dict(PROFILES[profile_name])
    if args.reps is not None:
        prof["reps"] = args.reps
    if args.budget is not None:
        prof["budget_s"] = args.budget
    if args.run_budget is not None:
        prof["run_budget_min"] = args.run_budget
    names = select_systems(args.systems)
    scns = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    for scn in scns:
        if scn not in SCENARIOS:
            raise SystemExit(f"unknown scenario {scn!r}")
    if args.estimate:
        print(f"profile {profile_name}, estimated time (m:ss), all systems installed:")
        print("\n".join(timing.table(scns, names, prof)))
        return 0
    global RUN_DIR
    RUN_DIR = args.work or WORK
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = RUN_DIR / "bench.log"
    logf = log_path.open("a")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    old_results = None
    if args.merge and (args.out / "results.json").exists():
        old_results = json.loads((args.out / "results.json").read_text())
    stamp = machine_stamp()
    stamp["profile"] = profile_name
    log(f"profile {profile_name}: {len(names)} systems x {len(scns)} scenarios")

    # Environments first, so a failed install costs no measurement time.
    pythons: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    needed_servers: set[str] = set()
    for name in names:
        s = SYSTEMS[name]
        if not (ADAPTERS / s.adapter).exists():
            skipped[name] = "adapter not written yet"
            continue
        try:
            if s.venv is None:
                pythons[name] = Path(sys.executable)
            elif args.no_install:
                py = WORK / "venvs" / s.venv / "bin" / "python"
                if not py.exists():
                    skipped[name] = "venv not installed (--no-install)"
                    continue
                pythons[name] = py
            else:
                pythons[name] = ensure_venv(s.venv, log)
        except subprocess.CalledProcessError as exc:
            skipped[name] = f"install failed: {exc}"
            continue
        needed_servers.update(s.servers)
    srv: dict[str, Any] = {}
    for kind in sorted(needed_servers):
        obj = servers.Redis(WORK) if kind == "redis" else servers.Postgres(WORK)
        if args.no_install:
            skipped.update(
                {
                    n: f"{kind} server needs installing"
                    for n in pythons
                    if kind in SYSTEMS[n].servers
                }
            )
            continue
        obj.install()
        srv[kind] = obj
    for n in list(pythons):
        if n in skipped:
            del pythons[n]
    versions = {n: package_version(py, SYSTEMS[n].package) for n, py in pythons.items()}
    stamp["server_versions"] = {k: v.version() for k, v in srv.items()}
    for n, why in skipped.items():
        log(f"skip {n}: {why}")

    results: dict[str, Any] = {
        "stamp": stamp,
        "profile": prof,
        "systems": {
            n: {
                "durability": SYSTEMS[n].durability,
                "note": SYSTEMS[n].durability_note,
                "version": versions.get(n),
                "skipped": skipped.get(n),
            }
            for n in names
        },
        "scenarios": {},
    }
    budget_s = float(prof["run_budget_min"]) * 60
    est = sum(timing.phase_s(scn, n, prof) for scn in scns for n in pythons)
    log(
        f"estimated {est / 60:.1f} min of measurement; run budget {budget_s / 60:.0f} min,"
        f" {(time.monotonic() - t_run) / 60:.1f} min spent on set-up"
    )
    actual: dict[tuple[str, str], float] = {}
    try:
        for kind, obj in srv.items():
            log(f"starting {kind} on 127.0.0.1")
            obj.start()
        for scn in scns:
            results["scenarios"][scn] = {"title": SCENARIOS[scn]["title"], "systems": {}}
            for name in pythons:
                spent = time.monotonic() - t_run
                if spent > budget_s:
                    # Not silently dropped: the report shows every skipped phase.
                    why = f"run budget: {budget_s / 60:.0f} min passed ({spent / 60:.1f} min)"
                    log(f"{scn:12} {name:24} skipped: {why}")
                    res = {"status": "skipped", "reason": why, "runs": []}
                else:
                    t_phase = time.monotonic()
                    res = run_system_scenario(name, scn, prof, pythons[name], srv, log)
                    actual[(scn, name)] = time.monotonic() - t_phase
                results["scenarios"][scn]["systems"][name] = res
                write_json(args.out, results)
    finally:
        for kind, obj in srv.items():
            log(f"stopping {kind}")
            obj.stop()
    results["timing"] = {
        "run_budget_min": prof["run_budget_min"],
        "elapsed_min": (time.monotonic() - t_run) / 60,
        "phases_s": {f"{scn}/{n}": round(v, 1) for (scn, n), v in actual.items()},
        "estimate_s": {
            f"{scn}/{n}": round(timing.phase_s(scn, n, prof), 1) for scn in scns for n in pythons
        },
    }
    log("time per scenario, estimated and actual (m:ss):")
    for line in timing.table(scns, list(pythons), prof, actual):
        log("  " + line)
    results["stamp"]["finished_utc"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.merge and old_results is not None:
        results = merge(old_results, results)
    write_json(args.out, results)
    from .report import write_markdown

    write_markdown(args.out, results)
    if not args.no_charts:
        try:
            if not args.no_install:
                charts_py = ensure_venv("harness", log)
                cmd = [str(charts_py), str(BENCH / "charts.py"), str(args.out)]
                subprocess.run(cmd, check=True)
        except subprocess.CalledProcessError as exc:
            log(f"charts failed: {exc}")
    log(f"wrote {args.out}")
    return 0


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Results of a partial re-run laid over an earlier run's; both stamps kept."""
    out = dict(old)
    out["reruns"] = [*old.get("reruns", []), new["stamp"]]
    out["systems"] = {**old["systems"], **new["systems"]}
    scns = dict(old["scenarios"])
    for scn, data in new["scenarios"].items():
        if scn in scns:
            scns[scn] = {**data, "systems": {**scns[scn]["systems"], **data["systems"]}}
        else:
            scns[scn] = data
    out["scenarios"] = scns
    return out


def select_systems(spec: str) -> list[str]:
    if spec == "all":
        return list(SYSTEMS)
    if spec == "offline":
        return [n for n, s in SYSTEMS.items() if not s.servers]
    if spec == "quickq":
        return [n for n in SYSTEMS if n.startswith("quickq")]
    names = spec.split(",")
    for n in names:
        if n not in SYSTEMS:
            raise SystemExit(f"unknown system {n!r}; see --list")
    return names


def run_system_scenario(
    name: str, scn: str, prof: dict[str, Any], py: Path, srv: dict[str, Any], log: Any
) -> dict[str, Any]:
    s = SYSTEMS[name]
    params = scenario_params(scn, prof)
    params.update(variant=s.variant, max_s=prof["budget_s"], **s.extra)
    for kind in s.servers:
        params[f"{kind}_url"] = srv[kind].url
    srv_pids = [pid for kind in s.servers for pid in srv[kind].pids()]
    warmup, reps = prof["warmup"], prof["reps"]
    if scn in timing.SINGLE_RUN:
        warmup, reps = 0, prof["crash_reps"]
    runs: list[dict[str, Any]] = []
    note = ""  # reserved for harness-side remarks
    for i in range(warmup + reps):
        workdir = RUN_DIR / "run" / name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        for kind in s.servers:
            srv[kind].reset()
        run_params = {**params, "workdir": str(workdir)}
        if i < warmup:  # the warm-up warms caches and imports: a tenth of the work
            for key in ("n", "a"):
                if key in run_params:
                    run_params[key] = max(10, run_params[key] // 10)
            for key in ("duration_s", "max_s"):
                if key in run_params:
                    run_params[key] = run_params[key] / 5
        r = run_adapter(py, s, run_params, adapter_timeout(scn), srv_pids)
        tag = "warm-up" if i < warmup else f"rep {i - warmup + 1}/{reps}"
        if r["status"] != "ok":
            log(f"{scn:12} {name:24} {tag}: {r['status']}: {r.get('reason', '')[:300]}")
            return {"status": r["status"], "reason": r.get("reason", ""), "runs": [r]}
        head = SCENARIOS[scn]["headline"]
        val = r["metrics"].get(head)
        shown = f"{head}={val:.4g}" if isinstance(val, int | float) else ""
        log(f"{scn:12} {name:24} {tag}: {shown} ({r['process']['wall_s']:.1f}s)")
        r["warmup"] = i < warmup
        runs.append(r)
    measured = [r for r in runs if not r["warmup"]]
    return {
        "status": "ok",
        "params": params,
        "note": note,
        "agg": aggregate(measured),
        "runs": runs,
    }


def adapter_timeout(scn: str) -> float:
    """Seconds before an adapter process is killed (and its result is an error).

    A time-boxed run takes seconds; crash recovery and scale seeding minutes.
    A peer that hangs (one did, in its shutdown) costs this much, not the hour.
    """
    return 600.0 if scn in timing.SINGLE_RUN else 180.0


def write_json(out: Path, results: dict[str, Any]) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(out / "results.json")


__all__ = ["DURABLE", "IN_MEMORY", "main"]
