"""Running the adapters: one process per repetition, measured from outside.

The runner measures each adapter process's CPU time and peak RSS with
``wait4``, and the CPU used meanwhile by the servers it started (Redis,
PostgreSQL), and aggregates one warm-up plus N repetitions into medians with
min..max spread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from . import servers, timing
from .adapters._common.protocol import read_result
from .paths import ADAPTERS, Log
from .scenarios import SCENARIOS, Profile, reps, scenario_params
from .systems import SYSTEMS, System

Result = dict[str, Any]
"""One adapter process's result line, with the harness's ``process`` measurements."""


def run_adapter(
    py: Path,
    system: System,
    params: dict[str, Any],
    timeout: float,
    srv_pids: list[int],
    run_dir: Path,
) -> Result:
    """One adapter process: its result line, CPU time and peak RSS (wait4)."""
    out_path = run_dir / "last-stdout.txt"
    err_path = run_dir / "last-stderr.txt"
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


def aggregate(runs: list[Result]) -> dict[str, Any]:
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


def adapter_timeout(scn: str) -> float:
    """Seconds before an adapter process is killed (and its result is an error).

    A time-boxed run takes seconds; crash recovery and scale seeding minutes.
    A peer that hangs (one did, in its shutdown) costs this much, not the hour.
    """
    return 600.0 if scn in timing.SINGLE_RUN else 180.0


def warmup_params(params: dict[str, Any]) -> dict[str, Any]:
    """The warm-up warms caches and imports: a tenth of the work."""
    out = dict(params)
    for key in ("n", "a"):
        if key in out:
            out[key] = max(10, out[key] // 10)
    for key in ("duration_s", "max_s"):
        if key in out:
            out[key] = out[key] / 5
    return out


def run_system_scenario(
    name: str,
    scn: str,
    prof: Profile,
    py: Path,
    srv: dict[str, servers.Server],
    log: Log,
    run_dir: Path,
) -> dict[str, Any]:
    """One (scenario, system) phase: warm-up and repetitions, aggregated.

    The first run that does not answer ``ok`` ends the phase with its status.
    """
    s = SYSTEMS[name]
    params = scenario_params(scn, prof)
    params.update(variant=s.variant, max_s=prof["budget_s"], **s.extra)
    for kind in s.servers:
        params[f"{kind}_url"] = srv[kind].url
    srv_pids = [pid for kind in s.servers for pid in srv[kind].pids()]
    warmup, n_reps = prof["warmup"], reps(scn, prof)
    if scn in timing.SINGLE_RUN:
        warmup, n_reps = 0, prof["crash_reps"]
    runs: list[Result] = []
    note = ""  # reserved for harness-side remarks
    for i in range(warmup + n_reps):
        workdir = run_dir / "run" / name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        for kind in s.servers:
            srv[kind].reset()
        run_params = {**params, "workdir": str(workdir)}
        if i < warmup:
            run_params = warmup_params(run_params)
        r = run_adapter(py, s, run_params, adapter_timeout(scn), srv_pids, run_dir)
        tag = "warm-up" if i < warmup else f"rep {i - warmup + 1}/{n_reps}"
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
