"""``quickq enqueue QUEUE TOPIC [PAYLOAD_JSON]``: add one job from a shell."""

from __future__ import annotations

import datetime as dt
from typing import cast

import click

import quickq

from ._errors import run
from ._format import when
from ._params import Seconds, parse_payload, parse_time
from ._registry import codec_option, load_codec, load_registry
from ._store import opened_store, root_of, root_option, store_option


@click.command()
@click.argument("queue")
@click.argument("topic")
@click.argument("payload_json", required=False)
@store_option
@root_option
@codec_option
@click.option("--delay", type=Seconds(), metavar="SECONDS", help="Run after this long.")
@click.option(
    "--at", "at_text", metavar="ISO8601", help="Run at this time, e.g. 2030-01-15T10:00:00Z."
)
@click.option("--priority", type=int, help="Lower runs first (default: the topic's, else 100).")
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries before dead-lettering.")
@click.option(
    "--timeout",
    type=Seconds(positive=True),
    metavar="SECONDS",
    help="Cancel and retry an attempt that runs longer.",
)
@click.option("--job-id", help="Your own id: enqueueing an id the queue holds changes nothing.")
@click.option(
    "--jobs",
    "jobs_spec",
    metavar="MODULE:ATTR",
    help="A JobRegistry: check the topic and use its defaults.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the job id.")
def enqueue(
    queue: str,
    topic: str,
    payload_json: str | None,
    store_url: str,
    root: tuple[str, ...],
    codec_spec: str | None,
    delay: float | None,
    at_text: str | None,
    priority: int | None,
    max_retries: int | None,
    timeout: float | None,
    job_id: str | None,
    jobs_spec: str | None,
    quiet: bool,
) -> None:
    """Add a job to QUEUE (a tenant) for TOPIC, with an optional JSON payload (- reads stdin)."""
    payload = parse_payload(payload_json)
    at = parse_time(at_text)
    if at is not None and delay is not None:
        raise click.UsageError("give at most one of --delay and --at")
    registry = load_registry(jobs_spec, param_hint="'--jobs'") if jobs_spec else None
    codec = load_codec(codec_spec)
    options = {
        "delay": delay,
        "at": at,
        "priority": priority,
        "max_retries": max_retries,
        "timeout": timeout,
        "job_id": job_id,
    }
    # Only what was given: an option left out takes the topic's default.
    given = cast(quickq.EnqueueOptions, {k: v for k, v in options.items() if v is not None})

    async def body() -> quickq.Job:
        async with opened_store(store_url) as store:
            q = quickq.JobQueue(store, registry, root=root_of(root), codec=codec)
            return await q.enqueue(queue, topic, payload, **given)

    job = run(body)
    if quiet:
        click.echo(job.job_id)
        return
    now = dt.datetime.now(dt.UTC)
    click.echo(
        f"enqueued {job.job_id} in queue {job.queue_id}: {job.topic}, priority "
        f"{job.priority}, {job.state} (runs {when(job.run_at, now)})"
    )
