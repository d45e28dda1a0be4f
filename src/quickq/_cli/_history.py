"""``quickq history [QUEUE]``: what attempts did, minute by minute, for one
queue or store-wide (``JobQueue.history`` and ``history_totals``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, Final

import attrs
import click

import quickq

from ._errors import run
from ._format import age
from ._listing import Column, echo_json, json_option
from ._store import opened_store, root_of, root_option, store_option

_UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")

Minute = quickq.QueueMinute | quickq.TotalsMinute


def parse_since(text: str, now: dt.datetime, param: str = "--since") -> dt.datetime:
    """``--since`` (or *param*): a duration back from *now* (``90``, ``30m``,
    ``2h``, ``1d``) or an ISO 8601 time with a timezone."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        try:
            return now - dt.timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])
        except (OverflowError, ValueError):  # before the year 1
            raise click.BadParameter(
                f"{text!r} reaches back before the year 1", param_hint=f"'{param}'"
            ) from None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} is neither a duration back from now (like 30m, 2h, 1d) nor an "
            "ISO 8601 time with a timezone (like 2030-01-15T10:00:00Z)",
            param_hint=f"'{param}'",
        )
    return when


def _as_dict(minute: Minute) -> dict[str, Any]:
    row = attrs.asdict(minute)
    row.update(runs=minute.runs, mean_wait=minute.mean_wait, mean_run=minute.mean_run)
    if isinstance(minute, quickq.TotalsMinute):  # the table's columns, as numbers
        row.update(p99_wait=minute.wait_quantile(0.99), p99_run=minute.run_quantile(0.99))
    return row


def _count(header: str, name: str) -> Column[Any]:
    def cell(minute: Minute, now: dt.datetime) -> str:
        return str(getattr(minute, name))

    return Column(header, cell, right=True)


def _columns(store_wide: bool) -> list[Column[Any]]:
    columns: list[Column[Any]] = [Column("minute (UTC)", lambda m, now: f"{m.minute:%m-%d %H:%M}")]
    for header, name in (
        ("done", "completed"),
        ("failed", "failed"),
        ("snoozed", "snoozed"),
        ("dead", "dead_lettered"),
        ("lost", "lost"),
    ):
        columns.append(_count(header, name))
    columns += [
        Column("mean wait", lambda m, now: age(m.mean_wait), right=True),
        Column("mean run", lambda m, now: age(m.mean_run), right=True),
    ]
    if store_wide:
        columns += [
            Column("p99 wait <=", lambda m, now: age(m.wait_quantile(0.99)), right=True),
            Column("p99 run <=", lambda m, now: age(m.run_quantile(0.99)), right=True),
        ]
    return columns


@click.command()
@click.argument("queue", required=False)
@store_option
@root_option
@click.option(
    "--since",
    metavar="DURATION|TIME",
    default="1h",
    show_default=True,
    help="How far back: a duration (90, 30m, 2h, 1d) or an ISO 8601 time.",
)
@click.option(
    "--until",
    metavar="DURATION|TIME",
    help="Up to: a duration back from now or an ISO 8601 time (default: now).",
)
@json_option
def history(
    queue: str | None,
    store_url: str,
    root: tuple[str, ...],
    since: str,
    until: str | None,
    as_json: bool,
) -> None:
    """Per minute, what QUEUE's attempts did (store-wide without QUEUE):
    completed, failed, snoozed, dead-lettered and lost, mean wait and run time."""
    now = dt.datetime.now(dt.UTC)
    start = parse_since(since, now)
    end = None if until is None else parse_since(until, now, "--until")
    if end is not None and start > end:
        raise click.BadParameter(f"{since!r} is after --until {until!r}", param_hint="'--since'")

    async def body() -> Sequence[Minute]:
        async with opened_store(store_url) as store:
            jobs = quickq.JobQueue(store, root=root_of(root))
            if queue is None:
                return await jobs.history_totals(since=start, until=end)
            return await jobs.history(queue, since=start, until=end)

    minutes = run(body)
    what = f"queue {queue}" if queue is not None else "all queues"
    if as_json:
        echo_json([_as_dict(m) for m in minutes])
    elif not minutes:
        to = "" if end is None else f" to {end:%Y-%m-%d %H:%M}"
        click.echo(f"no history for {what} since {start:%Y-%m-%d %H:%M}{to} UTC in {store_url}")
    else:
        from ._render import console, rows_table

        console().print(
            rows_table(f"history of {what} in {store_url}", _columns(queue is None), minutes)
        )
