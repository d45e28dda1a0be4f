"""``quickq stats`` and ``quickq jobs QUEUE``: look inside queues without changing them."""

from __future__ import annotations

from typing import Any, TypeAlias

import attrs
import click

import quickq

from ._errors import run
from ._listing import DEAD_LETTERS, STATES, echo_json, jobs_in, json_option, listing_options, show
from ._store import opened_store, root_of, root_option, store_option

QueueRow: TypeAlias = quickq.QueueOverview
"""One line of ``quickq stats``: a queue's counters and its oldest ready job."""


def _as_dict(row: QueueRow) -> dict[str, Any]:
    return {
        **attrs.asdict(row.stats),
        "oldest_ready_seconds": row.oldest_ready,
        "oldest_ready_exact": row.oldest_exact,
    }


@click.command()
@store_option
@root_option
@json_option
def stats(store_url: str, root: tuple[str, ...], as_json: bool) -> None:
    """A table of every queue: pending, scheduled, running and dead jobs, and how
    long the oldest ready job has waited."""

    async def body() -> quickq.StoreOverview:
        async with opened_store(store_url) as store:
            return await quickq.JobQueue(store, root=root_of(root)).overview(max_queues=None)

    rows = run(body).queues
    if as_json:
        echo_json([_as_dict(row) for row in rows])
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
