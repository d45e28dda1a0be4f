"""One path for the listings, ``quickq jobs`` and ``quickq dead list``: the
``--limit`` and ``--json`` options, the read, and the table, JSON or "no ..." line.

A listing says what it reads and which columns it shows; everything else
(options, empty queues, JSON, rendering) is shared, so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Generic, TypeVar, cast, get_args

import attrs
import click

import quickq

from ._errors import error_line, run
from ._format import clip, when
from ._store import opened_store

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

STATES: Final[tuple[str, ...]] = get_args(quickq.JobState)
"""What ``quickq jobs --state`` takes: every state a job can be listed in."""
_DEFAULT_LIMIT: Final = 50


@attrs.frozen
class Column(Generic[R]):
    """One column of a listing: its header, and the text of a row's cell."""

    header: str
    cell: Callable[[R, dt.datetime], str]
    """The cell's text, given the row and the time the listing was read."""
    right: bool = False
    no_wrap: bool = False


@attrs.frozen
class Listing(Generic[R]):
    """What one listing reads from a queue and how each row is shown."""

    noun: str
    """What the rows are, in the title and the empty line ("pending jobs")."""
    fetch: Callable[[quickq.JobQueue, str, int], Awaitable[Sequence[R]]]
    """Read at most *limit* rows of queue *queue_id*."""
    columns: Sequence[Column[R]]
    as_dict: Callable[[R], dict[str, Any]]
    """A row for ``--json``."""


def _payload(job: quickq.Job) -> str:
    return clip(json.dumps(job.payload), 30)


def jobs_in(state: str) -> Listing[quickq.Job]:
    """The listing of a queue's jobs in *state*; dead ones are its dead letters'
    jobs (use :data:`DEAD_LETTERS` to show why they died)."""
    st = cast(quickq.JobState, state)  # click.Choice(STATES) let only these through
    runs = "lease ends" if state == "running" else "runs"

    async def fetch(queue: quickq.JobQueue, queue_id: str, limit: int) -> list[quickq.Job]:
        return await queue.list_jobs(queue_id, st, limit=limit)

    return Listing(
        f"{state} jobs",
        fetch,
        (
            Column("job id", lambda j, now: j.job_id, no_wrap=True),
            Column("topic", lambda j, now: j.topic),
            Column("prio", lambda j, now: str(j.priority), right=True),
            Column(runs, lambda j, now: when(j.run_at, now)),
            Column("attempt", lambda j, now: f"{j.attempt}/{j.max_retries + 1}", right=True),
            Column("payload", lambda j, now: _payload(j)),
            Column("last error", lambda j, now: clip(error_line(j.last_error), 40)),
        ),
        attrs.asdict,
    )


def _dead_dict(dead: quickq.DeadLetter) -> dict[str, Any]:
    return {
        **attrs.asdict(dead.job),
        "reason": dead.reason,
        "error": dead.error,
        "died_at": dead.died_at,
    }


async def _fetch_dead(queue: quickq.JobQueue, queue_id: str, limit: int) -> list[quickq.DeadLetter]:
    return await queue.dead_letters(queue_id, limit=limit)


DEAD_LETTERS: Final = Listing[quickq.DeadLetter](
    "dead letters",
    _fetch_dead,
    (
        Column("job id", lambda d, now: d.job.job_id, no_wrap=True),
        Column("topic", lambda d, now: d.job.topic),
        Column("reason", lambda d, now: d.reason),
        Column("died", lambda d, now: when(d.died_at, now)),
        Column("attempts", lambda d, now: str(d.job.attempt), right=True),
        Column("payload", lambda d, now: _payload(d.job)),
        Column("error", lambda d, now: clip(error_line(d.error), 50)),
    ),
    _dead_dict,
)


def listing_options(command: F) -> F:
    """``--limit`` and ``--json``, as every listing takes them."""
    command = json_option(command)
    return click.option(
        "--limit", type=click.IntRange(min=1), default=_DEFAULT_LIMIT, show_default=True
    )(command)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def echo_json(rows: Sequence[dict[str, Any]]) -> None:
    """*rows* as a JSON list; times in ISO 8601 (``2026-12-02T13:30:33+00:00``)."""
    click.echo(json.dumps(list(rows), indent=2, default=_json_value))


def _json_value(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def show(
    listing: Listing[R],
    queue_id: str,
    store_url: str,
    root: tuple[str, ...],
    *,
    limit: int,
    as_json: bool,
) -> None:
    """Read *listing* from queue *queue_id* (under *root*) and print it."""

    async def body() -> Sequence[R]:
        async with opened_store(store_url) as store:
            return await listing.fetch(quickq.JobQueue(store, root=root), queue_id, limit)

    rows = run(body)
    if as_json:
        echo_json([listing.as_dict(row) for row in rows])
    elif not rows:
        click.echo(f"no {listing.noun} in queue {queue_id}")
    else:
        from ._render import console, rows_table

        console().print(rows_table(f"{listing.noun} in queue {queue_id}", listing.columns, rows))
