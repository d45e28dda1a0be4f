"""Rich tables for the command line (``quickq stats``, ``jobs``, ``dead list``)."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import attrs
from rich import box
from rich.console import Console
from rich.table import Table

from ._cli_support import error_line
from ._queue import DeadLetter, Job, QueueStats


@attrs.frozen
class QueueRow:
    """One line of ``quickq stats``: a queue's counters and its oldest ready job."""

    stats: QueueStats
    oldest_ready: float | None
    """Seconds the oldest ready job seen has been due; None when none is ready."""
    oldest_exact: bool
    """False when only the head of a long ready index was read (the age is a lower bound)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **attrs.asdict(self.stats),
            "oldest_ready_seconds": self.oldest_ready,
            "oldest_ready_exact": self.oldest_exact,
        }


def console() -> Console:
    """Standard output; wide when it is not a terminal, so piped tables keep whole lines."""
    probe = Console()
    wide = not probe.is_terminal and "COLUMNS" not in os.environ
    return Console(highlight=False, soft_wrap=False, width=200 if wide else None)


def age(seconds: float | None) -> str:
    """A short duration: ``850ms``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def when(moment: dt.datetime, now: dt.datetime) -> str:
    """A time relative to *now*: ``in 4.0s`` or ``12.3s ago``."""
    delta = (moment - now).total_seconds()
    return f"in {age(delta)}" if delta > 0 else f"{age(-delta)} ago"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )


def stats_table(rows: list[QueueRow], title: str) -> Table:
    table = _table(title)
    table.add_column("queue")
    for name in ("pending", "scheduled", "running", "dead"):
        table.add_column(name, justify="right")
    table.add_column("oldest ready", justify="right")
    for row in rows:
        s = row.stats
        oldest = age(row.oldest_ready)
        if row.oldest_ready is not None and not row.oldest_exact:
            oldest = ">=" + oldest
        table.add_row(
            s.queue_id, str(s.pending), str(s.scheduled), str(s.running), str(s.dead), oldest
        )
    if len(rows) > 1:
        table.add_section()
        total = [sum(getattr(r.stats, n) for r in rows) for n in ("pending", "scheduled")]
        total += [sum(getattr(r.stats, n) for r in rows) for n in ("running", "dead")]
        ages = [r.oldest_ready for r in rows if r.oldest_ready is not None]
        table.add_row(f"all {len(rows)} queues", *map(str, total), age(max(ages) if ages else None))
    return table


def jobs_table(jobs: list[Job], title: str, now: dt.datetime) -> Table:
    table = _table(title)
    table.add_column("job id", no_wrap=True)
    table.add_column("topic")
    table.add_column("prio", justify="right")
    table.add_column("lease ends" if jobs and jobs[0].state == "running" else "runs")
    table.add_column("attempt", justify="right")
    table.add_column("payload")
    table.add_column("last error")
    for job in jobs:
        table.add_row(
            job.job_id,
            job.topic,
            str(job.priority),
            when(job.run_at, now),
            f"{job.attempt}/{job.max_retries + 1}",
            _clip(json.dumps(job.payload), 30),
            _clip(error_line(job.last_error), 40),
        )
    return table


def dead_table(dead: list[DeadLetter], title: str, now: dt.datetime) -> Table:
    table = _table(title)
    table.add_column("job id", no_wrap=True)
    table.add_column("topic")
    table.add_column("reason")
    table.add_column("died")
    table.add_column("attempts", justify="right")
    table.add_column("payload")
    table.add_column("error")
    for d in dead:
        table.add_row(
            d.job.job_id,
            d.job.topic,
            d.reason,
            when(d.died_at, now),
            str(d.job.attempt),
            _clip(json.dumps(d.job.payload), 30),
            _clip(error_line(d.error), 50),
        )
    return table


def job_dict(job: Job) -> dict[str, Any]:
    return attrs.asdict(job)


def dead_dict(dead: DeadLetter) -> dict[str, Any]:
    return {
        **attrs.asdict(dead.job),
        "reason": dead.reason,
        "error": dead.error,
        "died_at": dead.died_at,
    }
