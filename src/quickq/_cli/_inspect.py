"""``quickq stats`` and ``quickq jobs QUEUE``: look inside queues without changing them."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import attrs
import click

import quickq

from ._errors import run
from ._listing import DEAD_LETTERS, STATES, echo_json, jobs_in, json_option, listing_options, show
from ._store import opened_store, root_of, root_option, store_option

_OLDEST_SCAN: Final = 100
"""Ready-index entries read per queue to find the oldest ready job."""


@attrs.frozen
class QueueRow:
    """One line of ``quickq stats``: a queue's counters and its oldest ready job."""

    stats: quickq.QueueStats
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


async def _queue_row(queue: quickq.JobQueue, qid: str) -> QueueRow:
    counts = await queue.stats(qid)
    head = await queue.list_jobs(qid, "pending", limit=_OLDEST_SCAN)
    # Due, but not yet moved to pending by a consumer (none may be running).
    due = await queue.list_jobs(qid, "scheduled", limit=1)
    now = dt.datetime.now(dt.UTC)
    times = [j.run_at for j in head] + [j.run_at for j in due if j.run_at <= now]
    oldest = min(times, default=None)
    age = None if oldest is None else (now - oldest).total_seconds()
    return QueueRow(counts, age, counts.pending <= len(head))


@click.command()
@store_option
@root_option
@json_option
def stats(store_url: str, root: tuple[str, ...], as_json: bool) -> None:
    """A table of every queue: pending, scheduled, running and dead jobs, and how
    long the oldest ready job has waited."""

    async def body() -> list[QueueRow]:
        async with opened_store(store_url) as store:
            queue = quickq.JobQueue(store, root=root_of(root))
            return [await _queue_row(queue, qid) for qid in await queue.queues()]

    rows = run(body)
    if as_json:
        echo_json([row.as_dict() for row in rows])
    elif not rows:
        click.echo(f"no queues in {store_url}")
    else:
        from ._render import console, stats_table

        console().print(stats_table(rows, f"queues in {store_url}"))


@click.command()
@click.argument("queue")
@store_option
@root_option
@click.option("--state", type=click.Choice(STATES), default="pending", show_default=True)
@listing_options
def jobs(
    queue: str, store_url: str, root: tuple[str, ...], state: str, limit: int, as_json: bool
) -> None:
    """List QUEUE's jobs in one state (pending in the order they will run)."""
    if state == "dead":
        show(DEAD_LETTERS, queue, store_url, root_of(root), limit=limit, as_json=as_json)
    else:
        show(jobs_in(state), queue, store_url, root_of(root), limit=limit, as_json=as_json)
