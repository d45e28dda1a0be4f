"""``quickq dead list|replay|purge QUEUE``: the dead letters of a queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import click

import quickq

from ._errors import run
from ._listing import DEAD_LETTERS, listing_options, show
from ._store import opened_store, root_of, root_option, store_option


@click.group()
def dead() -> None:
    """List, replay or purge dead letters."""


@dead.command("list")
@click.argument("queue")
@store_option
@root_option
@listing_options
def dead_list(queue: str, store_url: str, root: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List QUEUE's dead letters, with why each died."""
    show(DEAD_LETTERS, queue, store_url, root_of(root), limit=limit, as_json=as_json)


_One = Callable[[quickq.JobQueue, str, str], Awaitable[object]]
_Every = Callable[[quickq.JobQueue, str], Awaitable[int]]


def _action(verb: str, past: str, one: _One, every: _Every, help: str) -> click.Command:
    """``dead VERB QUEUE (JOB_ID | --all)``: *one* for a job id, *every* for --all."""

    @click.argument("queue")
    @click.argument("job_id", required=False)
    @click.option("--all", "all_", is_flag=True, help=f"{verb.capitalize()} every dead letter.")
    @store_option
    @root_option
    def command(
        queue: str, job_id: str | None, all_: bool, store_url: str, root: tuple[str, ...]
    ) -> None:
        if (job_id is None) == (not all_):
            raise click.UsageError("give either a JOB_ID or --all")

        async def body() -> int:
            async with opened_store(store_url) as store:
                q = quickq.JobQueue(store, root=root_of(root))
                if job_id is None:
                    return await every(q, queue)
                await one(q, queue, job_id)
                return 1

        n = run(body)
        click.echo(f"{past} {n} dead letter{'s' if n != 1 else ''} of queue {queue}")

    return dead.command(verb, help=help)(command)


_action(
    "replay",
    "replayed",
    quickq.JobQueue.replay,
    quickq.JobQueue.replay_all,
    "Put a dead letter (or --all) back in QUEUE, ready now, with fresh attempts.",
)
_action(
    "purge",
    "purged",
    quickq.JobQueue.purge,
    quickq.JobQueue.purge_all,
    "Delete a dead letter (or --all) of QUEUE for good.",
)
