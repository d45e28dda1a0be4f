"""The benchmark harness: ``python -m bench`` as a short sequence of steps.

:func:`main` parses the command line (bench/cli.py), prepares each system's
environment and servers (bench/environments.py), measures every scenario on
every system (:func:`measure`, through bench/runner.py), and writes the
report (:func:`report`). What is run, and at which sizes, is in
bench/scenarios.py; the results document in bench/results.py.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from . import timing
from .cli import Plan, make_plan, parse_args, print_list
from .environments import Environments, ensure_venv, prepare
from .paths import BENCH, WORK, Log, RunLog
from .report import write_markdown
from .results import (
    Results,
    machine_stamp,
    merge,
    new_results,
    read_json,
    timing_section,
    utc_now,
    write_json,
)
from .runner import run_system_scenario
from .scenarios import SCENARIOS
from .systems import DURABLE, IN_MEMORY

Timings = dict[tuple[str, str], float]
"""Wall seconds each (scenario, system) phase took."""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print_list()
        return 0
    # The run budget counts from here: installing venvs and servers on a fresh
    # machine is part of the hour.
    t_run = time.monotonic()
    plan = make_plan(args)
    if args.estimate:
        print(f"profile {plan.profile_name}, estimated time (m:ss), all systems installed:")
        print("\n".join(timing.table(plan.scenarios, plan.systems, plan.prof)))
        return 0
    run_dir: Path = args.work or WORK
    run_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir / "bench.log")
    old_results = read_json(args.out) if args.merge else None
    stamp = machine_stamp()
    stamp["profile"] = plan.profile_name
    n_sys, n_scn = len(plan.systems), len(plan.scenarios)
    log(f"profile {plan.profile_name}: {n_sys} systems x {n_scn} scenarios")
    # Environments first, so a failed install costs no measurement time.
    env = prepare(plan.systems, no_install=args.no_install, log=log)
    stamp["server_versions"] = {k: v.version() for k, v in env.servers.items()}
    results = new_results(stamp, plan.prof, plan.systems, env)
    actual = measure(plan, env, results, t_run=t_run, run_dir=run_dir, out=args.out, log=log)
    finish(plan, env, results, actual, elapsed_s=time.monotonic() - t_run, log=log)
    if old_results is not None:
        results = merge(old_results, results)
    report(args, results, log)
    return 0


def measure(
    plan: Plan,
    env: Environments,
    results: Results,
    *,
    t_run: float,
    run_dir: Path,
    out: Path,
    log: Log,
) -> Timings:
    """Every scenario on every prepared system, servers started around it all.

    results.json is rewritten after each phase, so an interrupted run keeps
    what it measured. Phases that would start after the run budget are skipped
    and reported as such, never silently dropped.
    """
    prof, names = plan.prof, list(env.pythons)
    budget_s = float(prof["run_budget_min"]) * 60
    est = sum(timing.phase_s(scn, n, prof) for scn in plan.scenarios for n in names)
    log(
        f"estimated {est / 60:.1f} min of measurement; run budget {budget_s / 60:.0f} min,"
        f" {(time.monotonic() - t_run) / 60:.1f} min spent on set-up"
    )
    actual: Timings = {}
    try:
        for kind, obj in env.servers.items():
            log(f"starting {kind} on 127.0.0.1")
            obj.start()
        for scn in plan.scenarios:
            results["scenarios"][scn] = {"title": SCENARIOS[scn]["title"], "systems": {}}
            for name in names:
                spent = time.monotonic() - t_run
                if spent > budget_s:
                    why = f"run budget: {budget_s / 60:.0f} min passed ({spent / 60:.1f} min)"
                    log(f"{scn:12} {name:24} skipped: {why}")
                    res = {"status": "skipped", "reason": why, "runs": []}
                else:
                    t_phase = time.monotonic()
                    res = run_system_scenario(
                        name, scn, prof, env.pythons[name], env.servers, log, run_dir
                    )
                    actual[(scn, name)] = time.monotonic() - t_phase
                results["scenarios"][scn]["systems"][name] = res
                write_json(out, results)
    finally:
        for kind, obj in env.servers.items():
            log(f"stopping {kind}")
            obj.stop()
    return actual


def finish(
    plan: Plan, env: Environments, results: Results, actual: Timings, *, elapsed_s: float, log: Log
) -> None:
    """The run's timing, estimated beside actual, in the log and in *results*."""
    names = list(env.pythons)
    results["timing"] = timing_section(plan.prof, elapsed_s, plan.scenarios, names, actual)
    log("time per scenario, estimated and actual (m:ss):")
    for line in timing.table(plan.scenarios, names, plan.prof, actual):
        log("  " + line)
    results["stamp"]["finished_utc"] = utc_now()


def report(args: argparse.Namespace, results: Results, log: Log) -> None:
    """results.json, results.md and (with the harness venv's matplotlib) the charts."""
    write_json(args.out, results)
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


__all__ = ["DURABLE", "IN_MEMORY", "main"]
