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

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = "enqueue,drain,sleep,latency50,crash,fairness,priority,scale"


def test_bench_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--no-install",
            "--no-charts",
            "--systems",
            "quickq-memory-trio,quickq-memory-asyncio",
            "--scenarios",
            SCENARIOS,
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
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
    crash = results["scenarios"]["crash"]["systems"]["quickq-memory-trio"]
    assert crash["status"] == "n/a"  # memory store: nothing survives a kill
    report = (out / "results.md").read_text()
    assert "quickq-memory-trio" in report
    assert "in-memory" in report
