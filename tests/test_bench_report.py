"""The benchmark report's table of quickq's own targets (issue 12)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench import report


def _results(medians: dict[tuple[str, str, str], float]) -> dict[str, Any]:
    out: dict[str, Any] = {"systems": {}, "scenarios": {}}
    for (scn, system, key), value in medians.items():
        out["systems"][system] = {"durability": "in-memory"}
        agg = (
            out["scenarios"]
            .setdefault(scn, {"systems": {}})["systems"]
            .setdefault(system, {"status": "ok", "agg": {}})["agg"]
        )
        agg[key] = {"median": value, "min": value, "max": value, "n": 1}
    return out


def _row(lines: list[str], label: str, system: str) -> str:
    rows = [line for line in lines if line.startswith(f"| {label} | {system} |")]
    assert len(rows) == 1, lines
    return rows[0]


def test_a_target_against_a_peer_is_the_ratio_in_this_run() -> None:
    lines = report.target_lines(
        _results(
            {
                ("drain", "quickq-memory-trio", "jobs_per_s"): 15_000.0,
                ("drain", "huey-memory", "jobs_per_s"): 20_000.0,
                ("drain", "quickq-sqlite-trio", "jobs_per_s"): 13_000.0,
                ("drain", "huey-sqlite", "jobs_per_s"): 4_000.0,
            }
        )
    )
    memory = _row(lines, "drain on memory, x huey-memory", "quickq-memory-trio")
    assert "0.75x" in memory and "at least 1x" in memory and "**not met**" in memory
    durable = _row(lines, "durable drain on SQLite, x huey-sqlite", "quickq-sqlite-trio")
    assert "3.25x" in durable and "| met |" in durable


def test_an_absolute_target_and_a_missing_peer() -> None:
    lines = report.target_lines(
        _results(
            {
                ("drain", "quickq-memory-trio", "cpu_us_per_job"): 59.0,
                ("drain", "quickq-memory-asyncio", "cpu_us_per_job"): 70.0,
                ("sqlite_limit", "quickq-sqlite-trio", "enqueue_ratio"): 0.5,
            }
        )
    )
    cpu = _row(lines, "drain CPU per job on memory, us", "quickq-memory-trio")
    assert "| 59 | at most 60 | met |" in cpu
    single = _row(lines, "enqueue one at a time, x raw SQLite commits", "quickq-sqlite-trio")
    assert "at least 0.8" in single and "**not met**" in single
    # No Huey in the run: no ratio row rather than a made-up one.
    assert not any("x huey-memory" in line for line in lines)
