"""Rich tables for the command line's output (``quickq stats``, ``jobs``, ``dead list``).

Imported only by commands that print a table, so a worker never loads rich.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from rich import box
from rich.console import Console
from rich.table import Table

from ._format import age

if TYPE_CHECKING:
    from ._inspect import QueueRow
    from ._listing import Column

R = TypeVar("R")


def console() -> Console:
    """Standard output; wide when it is not a terminal, so piped tables keep whole lines."""
    probe = Console()
    wide = not probe.is_terminal and "COLUMNS" not in os.environ
    return Console(highlight=False, soft_wrap=False, width=200 if wide else None)


def _table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )


def rows_table(title: str, columns: Sequence[Column[R]], rows: Sequence[R]) -> Table:
    """A table of *rows*, one line each, in *columns*; relative times from now."""
    now = dt.datetime.now(dt.UTC)
    table = _table(title)
    for column in columns:
        table.add_column(
            column.header, justify="right" if column.right else "left", no_wrap=column.no_wrap
        )
    for row in rows:
        table.add_row(*(column.cell(row, now) for column in columns))
    return table


_COUNTS = ("pending", "scheduled", "running", "dead")


def stats_table(rows: Sequence[QueueRow], title: str) -> Table:
    """Every queue's counters and oldest ready job, with a total line for several."""
    table = _table(title)
    table.add_column("queue")
    for name in _COUNTS:
        table.add_column(name, justify="right")
    table.add_column("oldest ready", justify="right")
    for row in rows:
        oldest = age(row.oldest_ready)
        if row.oldest_ready is not None and not row.oldest_exact:
            oldest = ">=" + oldest
        counts = (str(getattr(row.stats, name)) for name in _COUNTS)
        table.add_row(row.stats.queue_id, *counts, oldest)
    if len(rows) > 1:
        table.add_section()
        total = [sum(getattr(r.stats, name) for r in rows) for name in _COUNTS]
        ages = [r.oldest_ready for r in rows if r.oldest_ready is not None]
        table.add_row(f"all {len(rows)} queues", *map(str, total), age(max(ages) if ages else None))
    return table
