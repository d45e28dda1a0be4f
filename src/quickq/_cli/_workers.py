"""``quickq workers``: the consumers running against a store, from their
heartbeat records (``JobQueue.workers``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import attrs
import click

import quickq

from ._errors import run
from ._format import age, clip
from ._listing import Column, echo_json, json_option
from ._store import opened_store, root_of, root_option, store_option

COLUMNS: Final = (
    Column[quickq.WorkerInfo]("consumer", lambda w, now: w.consumer_id, no_wrap=True),
    Column[quickq.WorkerInfo]("host", lambda w, now: w.host),
    Column[quickq.WorkerInfo]("pid", lambda w, now: str(w.pid), right=True),
    Column[quickq.WorkerInfo]("state", lambda w, now: w.state),
    Column[quickq.WorkerInfo]("up", lambda w, now: age(_up(w, now)), right=True),
    Column[quickq.WorkerInfo](
        "seen", lambda w, now: age((now - w.seen).total_seconds()) + " ago", right=True
    ),
    Column[quickq.WorkerInfo]("running", lambda w, now: f"{w.running}/{w.concurrency}", right=True),
    Column[quickq.WorkerInfo]("completed", lambda w, now: str(w.completed), right=True),
    Column[quickq.WorkerInfo]("version", lambda w, now: w.version),
    Column[quickq.WorkerInfo]("topics", lambda w, now: clip(", ".join(w.topics), 30)),
    Column[quickq.WorkerInfo]("metrics", lambda w, now: w.metrics or "-"),
)


def _up(worker: quickq.WorkerInfo, now: dt.datetime) -> float:
    """How long *worker* has run: until its last beat, once it is stale."""
    until = worker.seen if worker.state == "stale" else now
    return (until - worker.started).total_seconds()


def as_dict(worker: quickq.WorkerInfo) -> dict[str, Any]:
    return attrs.asdict(worker)


@click.command()
@store_option
@root_option
@click.option(
    "--all", "include_stale", is_flag=True, help="Show stale records too (crashed workers)."
)
@json_option
def workers(store_url: str, root: tuple[str, ...], include_stale: bool, as_json: bool) -> None:
    """A table of the workers (consumers) running against the store, from the
    records they refresh every few seconds: host, pid, state, running jobs and
    what each has done since it started."""

    async def body() -> list[quickq.WorkerInfo]:
        async with opened_store(store_url) as store:
            queue = quickq.JobQueue(store, root=root_of(root))
            return await queue.workers(include_stale=include_stale)

    rows = run(body)
    if as_json:
        echo_json([as_dict(row) for row in rows])
    elif not rows:
        click.echo(f"no {'' if include_stale else 'live '}workers in {store_url}")
    else:
        from ._render import console, rows_table

        console().print(rows_table(f"workers in {store_url}", COLUMNS, rows))
