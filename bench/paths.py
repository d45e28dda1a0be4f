"""Where the benchmark suite's files are, and the harness's log."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ADAPTERS = BENCH / "adapters"
WORK = BENCH / ".work"
"""Virtual environments, servers' data, and (by default) a run's scratch space."""

Log = Callable[[str], None]


class RunLog:
    """A run's log: timestamped lines on stdout and appended to ``bench.log``."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a")

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self._file.write(line + "\n")
        self._file.flush()
