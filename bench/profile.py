"""Profile quickq's hot paths with py-spy: ``python -m bench.profile [--out DIR]``.

Runs the quickq adapter's enqueue, drain and 500 jobs/s latency scenarios under ``py-spy record``
(installed in bench/.work/venvs/profile) and writes, per scenario, a summary of
the functions with the most samples, by own time and by inclusive time, to
docs/benchmarks/profiles/ (the raw collapsed stacks stay in bench/.work/profile/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .adapters._common.protocol import RESULT_PREFIX
from .environments import ensure_venv
from .paths import ADAPTERS, ROOT, WORK

CASES = {
    "enqueue-memory-trio": {"scenario": "enqueue", "variant": "memory", "backend": "trio",
                            "n": 5000, "batch": 100, "max_s": 30},
    "drain-memory-trio": {"scenario": "drain", "variant": "memory", "backend": "trio",
                          "n": 5000, "batch": 100, "concurrency": 32, "max_s": 30},
    "drain-sqlite-trio": {"scenario": "drain", "variant": "sqlite", "backend": "trio",
                          "n": 2000, "batch": 100, "concurrency": 32, "max_s": 30},
    # The open loop at 500 jobs/s, one producer and one consumer in one process:
    # where a trickle's CPU goes (every thread; idle waits are not sampled).
    "latency500-sqlite-trio": {"scenario": "latency", "variant": "sqlite", "backend": "trio",
                               "rate": 500, "duration_s": 2.0, "concurrency": 32, "max_s": 5},
}  # fmt: skip


def summarize(raw: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"{total} samples", "", "own time:"]
    out += [f"{100 * n / total:6.1f}%  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive time (quickq and store frames):"]
    mine = [(f, n) for f, n in incl.most_common() if "quickq" in f]
    out += [f"{100 * n / total:6.1f}%  {f}" for f, n in mine[:top]]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "profiles")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    spy = ensure_venv("profile", print).parent / "py-spy"
    for name, params in CASES.items():
        work = WORK / "profile" / name
        work.mkdir(parents=True, exist_ok=True)
        for f in work.glob("quickq.db*"):
            f.unlink()
        raw = work / "collapsed.txt"  # raw stacks stay out of the repository
        cmd = [str(spy), "record", "--format", "raw", "--rate", "200", "-o", str(raw), "--",
               sys.executable, str(ADAPTERS / "quickq_adapter.py"),
               json.dumps({**params, "workdir": str(work)})]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ADAPTERS, capture_output=True, text=True)
        result = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        summary = summarize(raw) if raw.exists() else proc.stderr[-2000:]
        (args.out / f"{name}.txt").write_text(
            f"{name}: {json.dumps(params)}\n{result[-1] if result else 'no result'}\n\n{summary}"
        )
        print(f"{name}: {result[-1][:200] if result else proc.stderr[-500:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
