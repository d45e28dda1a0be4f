"""The ``quickq`` command line: run workers, enqueue, and look inside queues.

::

    quickq worker myapp.jobs:registry --store sqlite:///jobs.db
    quickq enqueue shop-1 email:send '{"to": "a@example.com"}' --store sqlite:///jobs.db
    quickq stats --store sqlite:///jobs.db
    quickq jobs shop-1 --state running --store sqlite:///jobs.db
    quickq dead list|replay|purge shop-1 [JOB_ID | --all] --store sqlite:///jobs.db
    quickq demo

``--store`` defaults to the ``QUICKQ_STORE`` environment variable. Bad input
ends with one line on stderr and a non-zero exit status (2 for usage errors,
1 for everything else); ``QUICKQ_DEBUG=1`` shows tracebacks. See docs/cli.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import click

from ._cli_support import (
    Seconds,
    check_store_url,
    error_line,
    load_registry,
    main_guard,
    opened_store,
    parse_payload,
    parse_time,
    run,
    stop_on_sigterm,
)
from ._consumer import Consumer, serve_consumer
from ._events import JobEvent
from ._exceptions import InvalidArgumentError
from ._jobs import JobRegistry
from ._queue import JobQueue, JobState

_STORE_HELP = "Store URL: sqlite:///relative.db, sqlite:////absolute.db or fdb: (env QUICKQ_STORE)."
_OLDEST_SCAN = 100  # ready-index entries read per queue to find the oldest ready job

store_option = click.option(
    "--store", "store_url", envvar="QUICKQ_STORE", required=True, metavar="URL", help=_STORE_HELP
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="quickq", prog_name="quickq")
def cli() -> None:
    """quickq: a durable job queue. Run workers, enqueue jobs, inspect queues."""


# -- worker -------------------------------------------------------------------------


@cli.command()
@click.argument("jobs_spec", metavar="MODULE:ATTR")
@store_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Jobs run at once.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Most jobs leased from one queue per transaction.",
)
@click.option(
    "--lease-duration",
    type=Seconds(positive=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Job lease, renewed every third of it while the job runs.",
)
@click.option(
    "--grace-period",
    type=Seconds(),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGINT/SIGTERM, how long running jobs may finish.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Print every attempt, not only failures and lost leases."
)
def worker(
    jobs_spec: str,
    store_url: str,
    concurrency: int,
    batch_size: int,
    lease_duration: float,
    grace_period: float,
    verbose: bool,
) -> None:
    """Run the handlers of the JobRegistry MODULE:ATTR until SIGINT or SIGTERM.

    The first signal stops taking jobs and lets running ones finish within the
    grace period; a second one cancels them at once. Either way unfinished jobs
    give their leases back, so other workers take them.
    """
    stop_on_sigterm()
    check_store_url(store_url)  # before importing the user's module, which may be slow
    registry = load_registry(jobs_spec)
    if not len(registry):
        raise click.BadParameter(f"{jobs_spec} registers no jobs", param_hint="'MODULE:ATTR'")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.WARNING)
    options = {
        "concurrency": concurrency,
        "batch_size": batch_size,
        "lease_duration": lease_duration,
        "grace_period": grace_period,
        "on_event": _event_printer(verbose),
    }
    run(lambda: _work(store_url, registry, options))


async def _work(store_url: str, registry: JobRegistry, options: dict[str, Any]) -> None:
    say = _worker_say()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with opened_store(store_url) as store, anyio.create_task_group() as tg:

            async def consume(*, task_status: anyio.abc.TaskStatus[Consumer]) -> None:
                await serve_consumer(store, registry, **options, task_status=task_status)
                tg.cancel_scope.cancel()  # drained: stop listening for signals

            consumer: Consumer = await tg.start(consume)
            topics = ", ".join(d.topic for d in registry)
            say(
                f"serving {topics} from {store_url} (concurrency {options['concurrency']}, "
                f"lease {options['lease_duration']:g}s); stop with Ctrl-C or SIGTERM"
            )
            stopping = False
            async for signum in signals:
                name = signal.Signals(signum).name
                if not stopping:
                    stopping = True
                    say(
                        f"{name}: finishing running jobs (up to {options['grace_period']:g}s; "
                        "signal again to cancel them)"
                    )
                    consumer.stop()
                else:
                    say(f"{name}: cancelling running jobs")
                    tg.cancel_scope.cancel()
    s = consumer.statistics()
    say(
        f"stopped: {s.completed} completed, {s.retried} retried, {s.dead_lettered} dead-lettered, "
        f"{s.released} released, {s.lost} lost"
    )


def _event_printer(verbose: bool) -> Callable[[JobEvent], None]:
    """One stderr line per attempt that failed, died or lost its lease (all, if verbose)."""
    say = _worker_say()
    quiet = {"started", "released"} if verbose else {"started", "released", "completed"}

    def show(event: JobEvent) -> None:
        if event.kind in quiet:
            return
        took = f" after {event.duration:.2f}s" if event.duration is not None else ""
        error = error_line(event.error)
        say(
            f"{event.kind} {event.queue_id}/{event.job_id} {event.topic} attempt "
            f"{event.attempt}{took}{': ' + error if error else ''}"
        )

    return show


def _worker_say() -> Any:
    prefix = f"quickq worker {os.getpid()}:"
    return lambda text: click.echo(f"{prefix} {text}", err=True)


# -- enqueue ------------------------------------------------------------------------


@cli.command()
@click.argument("queue")
@click.argument("topic")
@click.argument("payload_json", required=False)
@store_option
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
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "delay": delay,
            "at": at,
            "priority": priority,
            "max_retries": max_retries,
            "timeout": timeout,
            "job_id": job_id,
        }.items()
        if v is not None
    }

    async def body() -> None:
        async with opened_store(store_url) as store:
            job = await JobQueue(store, registry).enqueue(queue, topic, payload, **options)
        if quiet:
            click.echo(job.job_id)
            return
        now = dt.datetime.now(dt.UTC)
        from ._cli_render import when

        click.echo(
            f"enqueued {job.job_id} in queue {job.queue_id}: {job.topic}, priority "
            f"{job.priority}, {job.state} (runs {when(job.run_at, now)})"
        )

    run(body)


# -- inspection ---------------------------------------------------------------------


@cli.command()
@store_option
@json_option
def stats(store_url: str, as_json: bool) -> None:
    """A table of every queue: pending, scheduled, running and dead jobs, and how
    long the oldest ready job has waited."""
    from ._cli_render import QueueRow, console, stats_table

    async def body() -> list[QueueRow]:
        rows = []
        async with opened_store(store_url) as store:
            queue = JobQueue(store)
            for qid in await queue.queues():
                counts = await queue.stats(qid)
                head = await queue.list_jobs(qid, "pending", limit=_OLDEST_SCAN)
                # Due, but not yet moved to pending by a consumer (none may be running).
                due = await queue.list_jobs(qid, "scheduled", limit=1)
                now = dt.datetime.now(dt.UTC)
                times = [j.run_at for j in head] + [j.run_at for j in due if j.run_at <= now]
                oldest = min(times, default=None)
                age = None if oldest is None else (now - oldest).total_seconds()
                rows.append(QueueRow(counts, age, counts.pending <= len(head)))
        return rows

    rows = run(body)
    if as_json:
        from ._cli_support import echo_json

        echo_json([row.as_dict() for row in rows])
    elif not rows:
        click.echo(f"no queues in {store_url}")
    else:
        console().print(stats_table(rows, f"queues in {store_url}"))


@cli.command()
@click.argument("queue")
@store_option
@click.option(
    "--state",
    type=click.Choice(["pending", "scheduled", "running", "dead"]),
    default="pending",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def jobs(queue: str, store_url: str, state: str, limit: int, as_json: bool) -> None:
    """List QUEUE's jobs in one state (pending in the order they will run)."""
    if state == "dead":
        _list_dead(queue, store_url, limit, as_json)
        return
    from ._cli_render import console, job_dict, jobs_table

    async def body() -> list[Any]:
        async with opened_store(store_url) as store:
            st: JobState = state  # type: ignore[assignment]
            return await JobQueue(store).list_jobs(queue, st, limit=limit)

    found = run(body)
    if as_json:
        from ._cli_support import echo_json

        echo_json(job_dict(j) for j in found)
    elif not found:
        click.echo(f"no {state} jobs in queue {queue}")
    else:
        now = dt.datetime.now(dt.UTC)
        console().print(jobs_table(found, f"{state} jobs in queue {queue}", now))


# -- dead letters -------------------------------------------------------------------


@cli.group()
def dead() -> None:
    """List, replay or purge dead letters."""


@dead.command("list")
@click.argument("queue")
@store_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def dead_list(queue: str, store_url: str, limit: int, as_json: bool) -> None:
    """List QUEUE's dead letters, with why each died."""
    _list_dead(queue, store_url, limit, as_json)


def _list_dead(queue: str, store_url: str, limit: int, as_json: bool) -> None:
    from ._cli_render import console, dead_dict, dead_table

    async def body() -> list[Any]:
        async with opened_store(store_url) as store:
            return await JobQueue(store).dead_letters(queue, limit=limit)

    found = run(body)
    if as_json:
        from ._cli_support import echo_json

        echo_json(dead_dict(d) for d in found)
    elif not found:
        click.echo(f"no dead letters in queue {queue}")
    else:
        now = dt.datetime.now(dt.UTC)
        console().print(dead_table(found, f"dead letters in queue {queue}", now))


def _dead_action(verb: str) -> Any:
    @click.argument("queue")
    @click.argument("job_id", required=False)
    @click.option("--all", "every", is_flag=True, help=f"{verb.capitalize()} every dead letter.")
    @store_option
    def command(queue: str, job_id: str | None, every: bool, store_url: str) -> None:
        if (job_id is None) == (not every):
            raise click.UsageError("give either a JOB_ID or --all")

        async def body() -> int:
            async with opened_store(store_url) as store:
                q = JobQueue(store)
                if every:
                    return await (q.replay_all if verb == "replay" else q.purge_all)(queue)
                assert job_id is not None
                await (q.replay if verb == "replay" else q.purge)(queue, job_id)
                return 1

        n = run(body)
        past = "replayed" if verb == "replay" else "purged"
        click.echo(f"{past} {n} dead letter{'s' if n != 1 else ''} of queue {queue}")

    return command


dead.command(
    "replay", help="Put a dead letter (or --all) back in QUEUE, ready now, with fresh attempts."
)(_dead_action("replay"))
dead.command("purge", help="Delete a dead letter (or --all) of QUEUE for good.")(
    _dead_action("purge")
)


# -- demo ---------------------------------------------------------------------------


@cli.command()
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Store for the demo (default: a temporary SQLite file, removed afterwards).",
)
def demo(store_url: str | None) -> None:
    """The coffee shop: tenants, priorities, schedules, retries, a long job and a
    poison one, run by two worker processes sharing one SQLite file."""
    from ._demo import run_demo

    if store_url is not None:
        from .stores._url import parse_store_url

        try:
            parse_store_url(store_url)
        except InvalidArgumentError as exc:
            raise click.BadParameter(str(exc), param_hint="'--store'") from None
    click.get_current_context().exit(run_demo(store_url))


def main() -> None:
    """The ``quickq`` entry point."""
    main_guard(lambda: cli.main(prog_name="quickq", standalone_mode=False))
