"""PNG charts from docs/benchmarks/results.json (run with the harness venv's matplotlib)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PROCESS_POOLS = ("rq", "celery-redis")
COLORS = {"in-memory": "#8fb3d9", "durable": "#d98f8f"}
CHARTS = [
    ("drain", "jobs_per_s", "Drain throughput, no-op jobs (jobs/s, higher is better)"),
    ("drain", "cpu_us_per_job", "Drain: CPU per job (us, lower is better; robust to load)"),
    ("enqueue", "single_jobs_per_s", "Enqueue one at a time (jobs/s, higher is better)"),
    ("sleep", "efficiency", "50 ms jobs at concurrency 32: efficiency (higher is better)"),
    ("latency50", "p99_ms", "Enqueue-to-start p99 at 50 jobs/s (ms, lower is better)"),
    ("latency500", "p99_ms", "Enqueue-to-start p99 at 500 jobs/s (ms, lower is better)"),
]


def bar_chart(results: dict[str, Any], scn: str, key: str, title: str, out: Path) -> bool:
    data = results["scenarios"].get(scn)
    if not data:
        return False
    rows = []
    for name, r in data["systems"].items():
        if name in PROCESS_POOLS and key.startswith("cpu"):
            continue  # their worker pools' CPU is not measured
        if r["status"] == "ok" and key in r["agg"]:
            cls = results["systems"][name]["durability"]
            rows.append((cls, name, r["agg"][key]))
    if not rows:
        return False
    rows.sort(key=lambda x: (x[0] != "in-memory", x[1]))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ys = range(len(rows))
    med = [m["median"] for _, _, m in rows]
    lo = [m["median"] - m["min"] for _, _, m in rows]
    hi = [m["max"] - m["median"] for _, _, m in rows]
    ax.barh(list(ys), med, xerr=[lo, hi], color=[COLORS[c] for c, _, _ in rows], capsize=3)
    ax.set_yticks(list(ys), [f"{n} [{c}]" for c, n, _ in rows])
    ax.invert_yaxis()
    ax.set_title(f"{title}\nblue: in-memory, red: durable; compare within a colour", fontsize=10)
    st = results["stamp"]
    ax.set_xlabel(
        f"{st['date_utc']}, {st['cores']} cores, {st['memory_gib']} GiB, "
        f"profile {st['profile']}; bars: median, whiskers: min..max",
        fontsize=8,
    )
    if scn.startswith("latency"):
        ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def scale_chart(results: dict[str, Any], out: Path) -> bool:
    data = results["scenarios"].get("scale")
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for name, r in data["systems"].items():
        if r["status"] != "ok":
            continue
        for series in ("future", "idle"):
            pts = sorted(
                (int(k.split("_")[1]), v["median"])
                for k, v in r["agg"].items()
                if k.startswith(series + "_") and k.endswith("_us")
            )
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker="o",
                    label=f"{name}: {series} jobs/queues",
                )
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_xlabel("future jobs (or idle queues) already in the store")
    ax.set_ylabel("us per job drained (lease + run + ack)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("9. quickq: cost per job as the store grows (flat is the target)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def main() -> None:
    out = Path(sys.argv[1])
    results = json.loads((out / "results.json").read_text())
    for scn, key, title in CHARTS:
        suffix = "-cpu" if key.startswith("cpu") else ""
        bar_chart(results, scn, key, title, out / f"{scn}{suffix}.png")
    scale_chart(results, out / "scale.png")


if __name__ == "__main__":
    main()
