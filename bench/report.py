"""The Markdown report: one table per scenario, durability class on every row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Transactions whose body ran more than once (quickq only, counted bench-side).
RETRIES = [
    ("enqueue_retried", "enqueue txns retried", "{:,.0f}"),
    ("consumer_retried", "consumer txns retried", "{:,.0f}"),
]
# Columns per scenario: (metric, header, format).
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "enqueue": [
        ("single_jobs_per_s", "one at a time, jobs/s", "{:,.0f}"),
        ("single_cpu_us_per_job", "CPU us/job", "{:,.0f}"),
        ("batch_jobs_per_s", "batched x100, jobs/s", "{:,.0f}"),
        ("batch_cpu_us_per_job", "batched CPU us/job", "{:,.0f}"),
    ],
    "drain": [("jobs_per_s", "jobs/s", "{:,.0f}"), ("cpu_us_per_job", "CPU us/job", "{:,.0f}")],
    "sleep": [("efficiency", "efficiency", "{:.2f}"), ("wall_s", "wall s", "{:.2f}")],
    "latency50": [
        ("p50_ms", "p50 ms", "{:.1f}"),
        ("p95_ms", "p95 ms", "{:.1f}"),
        ("p99_ms", "p99 ms", "{:.1f}"),
        ("max_ms", "max ms", "{:.1f}"),
    ],
    "latency500x": [
        ("p50_ms", "p50 ms", "{:.1f}"),
        ("p95_ms", "p95 ms", "{:.1f}"),
        ("p99_ms", "p99 ms", "{:.1f}"),
        ("max_ms", "max ms", "{:.1f}"),
        *RETRIES,
    ],
    "crash": [
        ("lost", "lost", "{:.0f}"),
        ("duplicated", "duplicated", "{:.0f}"),
        ("first_completion_after_restart_s", "first job after restart, s", "{:.2f}"),
        ("kill_to_all_done_s", "kill to all done, s", "{:.1f}"),
    ],
    "longjobs": [
        ("duplicated", "duplicate executions", "{:.0f}"),
        ("executions", "executions", "{:.0f}"),
        ("completed", "completed", "{:.0f}"),
    ],
    "fairness": [
        ("b_p50_ms", "B p50 ms", "{:,.0f}"),
        ("b_p99_ms", "B p99 ms", "{:,.0f}"),
        ("a_jobs_per_s", "A jobs/s", "{:,.0f}"),
        ("a_backlog_at_b", "A's backlog when B enqueued", "{:,.0f}"),
    ],
    "priority": [
        ("low_wait_ms", "worst-priority job's wait, ms", "{:,.0f}"),
        ("high_p99_ms", "best-priority p99, ms", "{:,.0f}"),
    ],
    "sqlite_limit": [
        ("raw_commits_per_s", "raw SQLite commits/s", "{:,.0f}"),
        ("quickq_jobs_per_s", "quickq enqueue+drain jobs/s", "{:,.0f}"),
        ("ratio", "ratio", "{:.3f}"),
    ],
    "workers": [
        ("p1_jobs_per_s", "1 process, jobs/s", "{:,.0f}"),
        ("p2_jobs_per_s", "2 processes, jobs/s", "{:,.0f}"),
        ("p4_jobs_per_s", "4 processes, jobs/s", "{:,.0f}"),
        ("scaling", "4 / 1", "{:.2f}"),
        ("p1_cpu_us_per_job", "workers' CPU us/job, 1 process", "{:,.0f}"),
        ("p4_cpu_us_per_job", "4 processes", "{:,.0f}"),
        ("p1_first_s", "first job after start, s", "{:.2f}"),
    ],
}
COLUMNS["latency50"] = [*COLUMNS["latency50"], *RETRIES]
COLUMNS["latency500"] = COLUMNS["latency50"]


# Headline comparisons: (scenario, metric, higher is better, label).
HEADLINES = [
    ("drain", "jobs_per_s", True, "drain throughput, jobs/s"),
    ("drain", "cpu_us_per_job", False, "drain CPU per job, us"),
    ("enqueue", "single_jobs_per_s", True, "enqueue one at a time, jobs/s"),
    ("sleep", "efficiency", True, "50 ms jobs at concurrency 32, efficiency"),
    ("latency50", "p99_ms", False, "p99 enqueue-to-start at 50/s, ms"),
    ("latency500", "p99_ms", False, "p99 enqueue-to-start at 500/s, ms"),
]


# quickq's own targets (issue 12): (scenario, metric, system prefix, label,
# target, whether the value must be at most the target, else at least it,
# and the peer whose value the target is a ratio to, if any).
TARGETS: list[tuple[str, str, str, str, float, bool, str | None]] = [
    (
        "drain",
        "cpu_us_per_job",
        "quickq-memory",
        "drain CPU per job on memory, us",
        60.0,
        True,
        None,
    ),
    (
        "enqueue",
        "batch_cpu_us_per_job",
        "quickq-memory",
        "batched enqueue CPU per job on memory, us",
        40.0,
        True,
        None,
    ),
    (
        "drain",
        "jobs_per_s",
        "quickq-memory",
        "drain on memory, x huey-memory",
        1.0,
        False,
        "huey-memory",
    ),
    (
        "drain",
        "jobs_per_s",
        "quickq-sqlite",
        "durable drain on SQLite, x huey-sqlite",
        3.0,
        False,
        "huey-sqlite",
    ),
    (
        "sqlite_limit",
        "enqueue_ratio",
        "quickq-sqlite",
        "enqueue one at a time, x raw SQLite commits",
        0.8,
        False,
        None,
    ),
    (
        "latency500",
        "p99_ms",
        "quickq-memory",
        "p99 enqueue-to-start at 500/s, ms",
        10.0,
        True,
        None,
    ),
    (
        "latency500",
        "p99_ms",
        "quickq-sqlite",
        "p99 enqueue-to-start at 500/s, ms",
        10.0,
        True,
        None,
    ),
    ("latency500", "retried", "quickq-memory", "transactions retried at 500/s", 0.0, True, None),
    ("latency500", "retried", "quickq-sqlite", "transactions retried at 500/s", 0.0, True, None),
    (
        "latency500x",
        "p99_ms",
        "quickq-sqlite",
        "p99 across processes at 500/s, ms",
        50.0,
        True,
        None,
    ),
    (
        "latency500x",
        "retried",
        "quickq-sqlite",
        "transactions retried across processes",
        0.0,
        True,
        None,
    ),
    (
        "workers",
        "rising",
        "quickq-sqlite",
        "worker processes: jobs/s rise 1 -> 2 -> 4",
        1.0,
        False,
        None,
    ),
]


def derived(agg: dict[str, Any]) -> None:
    """Metrics computed from others' medians (CPU per enqueued job, retried
    transactions on both sides); the worker scaling's spread over its rounds."""
    if "single_cpu_s" in agg and "jobs" in agg and "single_cpu_us_per_job" not in agg:
        v = agg["single_cpu_s"]["median"] / agg["jobs"]["median"] * 1e6
        agg["single_cpu_us_per_job"] = {"median": v, "min": v, "max": v, "n": 1}
    if "batch_cpu_s" in agg and "batch_jobs" in agg and "batch_cpu_us_per_job" not in agg:
        v = agg["batch_cpu_s"]["median"] / agg["batch_jobs"]["median"] * 1e6
        agg["batch_cpu_us_per_job"] = {"median": v, "min": v, "max": v, "n": 1}
    if "enqueue_retried" in agg and "consumer_retried" in agg and "retried" not in agg:
        v = agg["enqueue_retried"]["median"] + agg["consumer_retried"]["median"]
        agg["retried"] = {"median": v, "min": v, "max": v, "n": 1}
    for k in (1, 2, 4):
        key = f"p{k}_jobs_per_s"
        if f"{key}_min" in agg and key in agg and agg[key]["n"] == 1:
            rounds = int(agg.get("rounds", {}).get("median", 1))
            lo, hi = agg[f"{key}_min"]["median"], agg[f"{key}_max"]["median"]
            agg[key] = {"median": agg[key]["median"], "min": lo, "max": hi, "n": rounds}


# Their workers run in pools of other processes that the adapter does not
# reap, so the adapter's CPU time leaves the workers' out.
PROCESS_POOLS = ("rq", "celery-redis")
CPU_KEYS = ("cpu_us_per_job", "cpu_s")


def median_of(results: dict[str, Any], scn: str, system: str, key: str) -> float | None:
    if system in PROCESS_POOLS and key in CPU_KEYS:
        return None
    r = results["scenarios"].get(scn, {}).get("systems", {}).get(system)
    if not r or r["status"] != "ok":
        return None
    derived(r["agg"])
    if key not in r["agg"]:
        return None
    return float(r["agg"][key]["median"])


def headline_lines(results: dict[str, Any]) -> list[str]:
    """quickq's best variant against the best peer of the same durability class."""
    lines = [
        "## Headline: quickq against the best peer of the same durability class",
        "",
        "Ratio > 1 means quickq is better (faster, or lower latency), < 1 worse;"
        " medians of this run only.",
        "",
        "| class | measure | best quickq | value | best peer | value | quickq / peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for cls in ("in-memory", "durable"):
        names = [n for n, s in results["systems"].items() if s["durability"] == cls]
        for scn, key, higher, label in HEADLINES:
            vals = {n: median_of(results, scn, n, key) for n in names}
            ok = {n: v for n, v in vals.items() if v is not None}
            q = {n: v for n, v in ok.items() if n.startswith("quickq")}
            peers = {n: v for n, v in ok.items() if not n.startswith("quickq")}
            if not q or not peers:
                continue
            pick = max if higher else min
            qn = pick(q, key=lambda n: q[n])
            pn = pick(peers, key=lambda n: peers[n])
            ratio = q[qn] / peers[pn] if higher else peers[pn] / q[qn]
            lines.append(
                f"| {cls} | {label} | {qn} | {q[qn]:,.3g} | {pn} | {peers[pn]:,.3g} |"
                f" **{ratio:.2f}x** |"
            )
    return [*lines, "", *target_lines(results)]


def target_lines(results: dict[str, Any]) -> list[str]:
    """quickq's own targets of issue 12: the best quickq variant of each row's
    kind against the target (a ratio to a named peer in this run, where the
    target is one)."""
    rows = []
    for scn, key, prefix, label, target, at_most, peer in TARGETS:
        vals = {
            n: v
            for n in results["systems"]
            if n.startswith(prefix) and (v := median_of(results, scn, n, key)) is not None
        }
        if peer is not None:  # the target is a ratio to the peer in this run
            base = median_of(results, scn, peer, key) if peer in results["systems"] else None
            vals = {n: v / base for n, v in vals.items()} if base else {}
        if not vals:
            continue
        name = (min if at_most else max)(vals, key=lambda n: vals[n])
        v = vals[name]
        met = v <= target if at_most else v >= target
        want = f"at most {target:,.3g}" if at_most else f"at least {target:,.3g}"
        if key == "rising":
            want = "yes"
        shown = ("yes" if v else "no") if key == "rising" else f"{v:,.3g}"
        if peer is not None:
            shown, want = f"{v:.2f}x", f"at least {target:g}x"
        rows.append(f"| {label} | {name} | {shown} | {want} | {'met' if met else '**not met**'} |")
    if not rows:
        return []
    return [
        "## Headline: quickq's own targets",
        "",
        "| measure | best quickq | value | target | |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def fmt_cell(agg: dict[str, Any], key: str, f: str) -> str:
    m = agg.get(key)
    if m is None:
        return "n/a"
    med = f.format(m["median"])
    if m["n"] > 1 and m["min"] != m["max"]:
        return f"{med} ({f.format(m['min'])}..{f.format(m['max'])})"
    return med


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    st = results["stamp"]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m bench` (bench/harness.py); do not edit by hand.",
        "",
        f"- Run: {st['date_utc']} to {st.get('finished_utc', '?')}, profile `{st['profile']}`,"
        f" {results['profile']['reps']} measured repetitions after"
        f" {results['profile']['warmup']} warm-up (crash, long-job, scale and SQLite-limit"
        " scenarios: fewer, no warm-up).",
        f"- Machine: {st['cores']} cores ({st['cpu']}), {st['memory_gib']} GiB, Linux"
        f" {st['kernel']}, Python {st['python']}; load average at start"
        f" {', '.join(f'{x:.2f}' for x in st['loadavg_at_start'])} (a shared machine: other"
        " work ran beside this; compare within a table, as ratios).",
        f"- quickq commit {st['quickq_commit']}; servers:"
        f" {', '.join(f'{k} {v}' for k, v in st.get('server_versions', {}).items()) or 'none'}.",
        "- Cells: median (min..max) over the repetitions. CPU = the adapter process (producer"
        " and worker) in the timed phase; servers' CPU is in results.json.",
        "",
        "## Systems",
        "",
        "| system | version | durability | what that means here |",
        "|---|---|---|---|",
    ]
    for name, s in results["systems"].items():
        ver = s["version"] or f"skipped: {s['skipped']}"
        lines.append(f"| {name} | {ver} | **{s['durability']}** | {s['note']} |")
    for rerun in results.get("reruns", []):
        lines.insert(
            5, f"- Partial re-run merged in: {rerun['date_utc']} to {rerun.get('finished_utc')}."
        )
    lines += ["", *headline_lines(results)]
    for scn, data in results["scenarios"].items():
        lines += ["", f"## {data['title']}", ""]
        cols = COLUMNS.get(scn)
        if scn == "scale":
            lines += scale_table(data)
            continue
        if cols is None:
            continue
        lines.append(
            "| system | class | " + " | ".join(h for _, h, _ in cols) + " | peak RSS MB | notes |"
        )
        lines.append("|---|---|" + "---|" * (len(cols) + 2))
        for cls in ("in-memory", "durable"):
            for name, r in data["systems"].items():
                if results["systems"][name]["durability"] != cls:
                    continue
                if r["status"] != "ok":
                    reason = r["reason"].strip().splitlines()[-1][:160] if r["reason"] else ""
                    lines.append(
                        f"| {name} | {cls} | "
                        + " | ".join("-" for _ in cols)
                        + f" | - | **{r['status']}**: {reason} |"
                    )
                    continue
                agg = r["agg"]
                derived(agg)
                extra = ["CPU and RSS: the adapter only, not its worker pool's processes"]
                parts = [
                    *agg.get("notes", {}).values(),
                    r.get("note", ""),
                    *(extra if name in PROCESS_POOLS else []),
                ]
                notes = "; ".join(x for x in parts if x)
                rss = fmt_cell(agg, "proc_maxrss_mb", "{:.0f}")
                lines.append(
                    f"| {name} | {cls} | "
                    + " | ".join(
                        "see note"
                        if name in PROCESS_POOLS and k in CPU_KEYS
                        else fmt_cell(agg, k, f)
                        for k, _, f in cols
                    )
                    + f" | {rss} | {notes} |"
                )
    (out / "results.md").write_text("\n".join(lines) + "\n")


def scale_table(data: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in data["systems"].items():
        if r["status"] != "ok":
            lines.append(f"- {name}: {r['status']}: {r['reason'][:200]}")
            continue
        agg = r["agg"]
        lines += [
            f"### {name}",
            "",
            "| series | size | us per job (lease+run+ack) | seeding this step, s |",
            "|---|---|---|---|",
        ]
        keys = [k for k in agg if k.startswith(("future_", "idle_")) and k.endswith("_us")]
        for key in sorted(keys, key=lambda k: (k.split("_")[0], int(k.split("_")[1]))):
            series, size = key.split("_")[0], key.split("_")[1]
            seed = fmt_cell(agg, f"{series}_{size}_seed_s", "{:,.1f}")
            lines.append(f"| {series} | {int(size):,} | {fmt_cell(agg, key, '{:,.1f}')} | {seed} |")
        for key, label, f in (
            ("bytes_per_job_memory", "memory per queued job (RSS growth), bytes", "{:,.0f}"),
            ("bytes_per_job_sqlite_file", "SQLite file per queued job, bytes", "{:,.0f}"),
            ("future_seed_jobs_per_s", "seeding rate (enqueue_many x5,000), jobs/s", "{:,.0f}"),
        ):
            if key in agg:
                lines.append(f"\n{label}: {fmt_cell(agg, key, f)}")
        if "notes" in agg:
            lines += ["", *[f"- {v}" for v in agg["notes"].values()]]
        lines.append("")
    return lines


if __name__ == "__main__":  # python -m bench.report [DIR]: rewrite results.md
    import json
    import sys

    d = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks")
    write_markdown(d, json.loads((d / "results.json").read_text()))
