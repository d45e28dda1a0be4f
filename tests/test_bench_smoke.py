"""A scaled-down run of the benchmark harness (bench/), so that it cannot rot.

It runs quickq on the memory store only: nothing to install, no servers. It
checks that every scenario produces a result or a stated reason, never an
error, and that the report is written. It asserts no speed: benchmarks are
never timed unit tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = "enqueue,drain,sleep,latency50,crash,fairness,priority,scale"


def run_bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--no-install",
            "--no-charts",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "work"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_bench_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_bench(
        tmp_path,
        "--systems",
        "quickq-memory-trio,quickq-memory-asyncio",
        "--scenarios",
        SCENARIOS,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["stamp"]["cores"] >= 1
    assert set(results["scenarios"]) == set(SCENARIOS.split(","))
    for scenario, data in results["scenarios"].items():
        for system, res in data["systems"].items():
            assert res["status"] in ("ok", "n/a"), (scenario, system, res.get("reason"))
            if res["status"] == "ok":
                assert res["agg"], (scenario, system)
    drain = results["scenarios"]["drain"]["systems"]["quickq-memory-trio"]
    assert drain["agg"]["jobs_per_s"]["median"] > 0
    latency = results["scenarios"]["latency50"]["systems"]["quickq-memory-trio"]["agg"]
    assert latency["enqueue_txns"]["median"] >= latency["n"]["median"]  # one or more per job
    assert latency["consumer_txns"]["median"] > 0 and "consumer_retried" in latency
    crash = results["scenarios"]["crash"]["systems"]["quickq-memory-trio"]
    assert crash["status"] == "n/a"  # memory store: nothing survives a kill
    fair = results["scenarios"]["fairness"]["systems"]["quickq-memory-trio"]["agg"]
    assert fair["a_queued"]["median"] > 0 and "a_backlog_at_b" in fair  # A prefilled
    scale = results["scenarios"]["scale"]["systems"]["quickq-memory-trio"]["agg"]
    assert scale["bytes_per_job_memory"]["median"] > 0
    report = (out / "results.md").read_text()
    assert "quickq-memory-trio" in report
    assert "in-memory" in report
    assert "memory per queued job" in report
    # the estimated and actual time per scenario end the log
    assert "time per scenario, estimated and actual" in proc.stdout
    assert set(results["timing"]["phases_s"]) == {
        f"{scn}/{n}"
        for scn in SCENARIOS.split(",")
        for n in ("quickq-memory-trio", "quickq-memory-asyncio")
    }


def test_bench_run_budget_skips_and_reports(tmp_path: Path) -> None:
    """Past the run budget, phases are skipped and say so; none is dropped."""
    proc = run_bench(
        tmp_path,
        "--systems",
        "quickq-memory-trio",
        "--scenarios",
        "enqueue,drain",
        "--run-budget",
        "0",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for scn in ("enqueue", "drain"):
        res = results["scenarios"][scn]["systems"]["quickq-memory-trio"]
        assert res["status"] == "skipped"
        assert res["reason"].startswith("run budget")
    assert "**skipped**: run budget" in (tmp_path / "out" / "results.md").read_text()


def test_full_profile_estimate_leaves_margin() -> None:
    """The full run's estimated time (a model, bench/timing.py) stays well inside
    its run budget, so that a change of sizes cannot quietly push `make bench`
    past the hour; and the model reads every adapter's scenario table."""
    sys.path.insert(0, str(ROOT))
    from bench import scenarios, timing
    from bench.systems import SYSTEMS

    for system in SYSTEMS.values():
        assert timing.implemented(system.adapter), system.adapter
    prof = scenarios.PROFILES["full"]
    total = sum(timing.phase_s(s, n, prof) for s in scenarios.SCENARIOS for n in SYSTEMS)
    assert total < 0.9 * prof["run_budget_min"] * 60


def test_thread_based_path_runs_every_shared_scenario(tmp_path: Path) -> None:
    """The shared adapter code's thread-based path (SyncSystem through Blocking,
    as Huey and Dramatiq use it) on a stand-in system: the peers themselves
    are not installed in the test environment."""
    sys.path.insert(0, str(ROOT))
    from bench import runner, scenarios
    from bench.systems import IN_MEMORY, System

    stub = System("stub", "stub_adapter.py", None, IN_MEMORY, "process memory")
    prof = scenarios.PROFILES["smoke"]
    metrics: dict[str, dict[str, Any]] = {}
    for scn in ("enqueue", "drain", "sleep", "latency50", "fairness", "priority", "crash"):
        params = {**scenarios.scenario_params(scn, prof), "max_s": prof["budget_s"]}
        workdir = tmp_path / scn
        workdir.mkdir()
        params["workdir"] = str(workdir)
        res = runner.run_adapter(Path(sys.executable), stub, params, 60.0, [], tmp_path)
        if scn == "crash":  # not in the stub's table
            assert res["status"] == "n/a", res
            continue
        assert res["status"] == "ok", (scn, res.get("reason"))
        metrics[scn] = res["metrics"]
    assert metrics["drain"]["jobs"] == prof["drain_n"]
    assert metrics["sleep"]["efficiency"] > 0
    assert metrics["latency50"]["n"] > 0
    assert metrics["fairness"]["b_started"] == prof["fair_b"]
    assert metrics["priority"]["low_wait_ms"] is not None


def test_bench_smoke_durable_scenarios(tmp_path: Path) -> None:
    """The scenarios that need a durable store run on quickq's SQLite store:
    the crash scenario kills a worker process with SIGKILL and starts another,
    so the worker-process code the durable peers share runs too; 4c puts the
    consumer in another process, and 11 drains with ``quickq worker`` processes."""
    out = tmp_path / "out"
    durable = ("crash", "sqlite_limit", "latency500x", "workers")
    proc = run_bench(tmp_path, "--systems", "quickq-sqlite-trio", "--scenarios", ",".join(durable))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    for scenario in durable:
        res = results["scenarios"][scenario]["systems"]["quickq-sqlite-trio"]
        assert res["status"] == "ok", (scenario, res.get("reason"))
    crash = results["scenarios"]["crash"]["systems"]["quickq-sqlite-trio"]["agg"]
    assert "lost" in crash and "completed_at_kill" in crash
    cross = results["scenarios"]["latency500x"]["systems"]["quickq-sqlite-trio"]["agg"]
    assert cross["n"]["median"] > 0 and "not_started" not in cross
    assert cross["consumer_txns"]["median"] > 0  # counted in the consumer's process
    workers = results["scenarios"]["workers"]["systems"]["quickq-sqlite-trio"]["agg"]
    assert all(workers[f"p{k}_jobs_per_s"]["median"] > 0 for k in (1, 2, 4))
    report = (out / "results.md").read_text()
    assert "## 11. quickq worker processes" in report
    assert "quickq's own targets" in report
