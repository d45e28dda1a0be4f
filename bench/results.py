"""The results document (results.json): machine stamp, systems, scenarios, timing.

The report (bench/report.py) and the charts (bench/charts.py) read it; its
shape is theirs to rely on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from . import timing
from .environments import Environments
from .paths import ROOT
from .scenarios import Profile
from .systems import SYSTEMS

Results = dict[str, Any]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine_stamp() -> dict[str, Any]:
    """The machine, the interpreter and quickq's commit, at the start of a run."""
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
        "date_utc": utc_now(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "quickq_commit": git + (" + uncommitted changes in src/" if dirty else ""),
        "loadavg_at_start": list(os.getloadavg()),
    }


def new_results(
    stamp: dict[str, Any], prof: Profile, names: list[str], env: Environments
) -> Results:
    """The document before any scenario ran: every system, skipped ones with why."""
    return {
        "stamp": stamp,
        "profile": prof,
        "systems": {
            n: {
                "durability": SYSTEMS[n].durability,
                "note": SYSTEMS[n].durability_note,
                "version": env.versions.get(n),
                "skipped": env.skipped.get(n),
            }
            for n in names
        },
        "scenarios": {},
    }


def timing_section(
    prof: Profile,
    elapsed_s: float,
    scns: list[str],
    names: list[str],
    actual: dict[tuple[str, str], float],
) -> dict[str, Any]:
    """The run's time per phase beside the estimate (bench/timing.py)."""
    return {
        "run_budget_min": prof["run_budget_min"],
        "elapsed_min": elapsed_s / 60,
        "phases_s": {f"{scn}/{n}": round(v, 1) for (scn, n), v in actual.items()},
        "estimate_s": {
            f"{scn}/{n}": round(timing.phase_s(scn, n, prof), 1) for scn in scns for n in names
        },
    }


def merge(old: Results, new: Results) -> Results:
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


def read_json(out: Path) -> Results | None:
    """An earlier run's results.json in *out*, if there is one (for ``--merge``)."""
    path = out / "results.json"
    if not path.exists():
        return None
    data: Results = json.loads(path.read_text())
    return data


def write_json(out: Path, results: Results) -> None:
    """Replace results.json atomically (it is rewritten after every phase)."""
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(out / "results.json")
