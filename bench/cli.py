"""``python -m bench``'s command line, and the plan it makes: profile, systems, scenarios."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT
from .scenarios import PROFILES, SCENARIOS, Profile
from .systems import SYSTEMS

DESCRIPTION = """The benchmark harness: sets up each system, runs every scenario, writes the report.

Each system's adapter runs in its own process, with its own virtual
environment's Python (bench/.work/venvs/NAME), and prints one JSON result
line. The harness measures each adapter process's CPU time and peak RSS, and
the CPU used meanwhile by the servers it started (Redis, PostgreSQL), and
aggregates one warm-up plus N repetitions into medians with min..max spread.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
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
    return ap.parse_args(argv)


@dataclass(frozen=True)
class Plan:
    """What a run measures, and at which sizes."""

    profile_name: str
    prof: Profile
    systems: list[str]
    scenarios: list[str]


def make_plan(args: argparse.Namespace) -> Plan:
    """The profile with the command line's overrides, and the chosen systems and scenarios."""
    profile_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    prof = dict(PROFILES[profile_name])
    if args.reps is not None:
        prof["reps"] = args.reps
        prof["reps_of"] = {}  # the override is for every scenario
    if args.budget is not None:
        prof["budget_s"] = args.budget
    if args.run_budget is not None:
        prof["run_budget_min"] = args.run_budget
    names = select_systems(args.systems)
    scns = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    for scn in scns:
        if scn not in SCENARIOS:
            raise SystemExit(f"unknown scenario {scn!r}")
    return Plan(profile_name, prof, names, scns)


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


def print_list() -> None:
    """``--list``: every system with its durability, every scenario with its title."""
    for s in SYSTEMS.values():
        print(f"{s.name:24} {s.durability:9} {s.durability_note}")
    for k, v in SCENARIOS.items():
        print(f"{k:14} {v['title']}")
