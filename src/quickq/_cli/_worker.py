"""``quickq worker MODULE:ATTR``: serve a registry's handlers until a signal
says stop, then drain (first signal) or cancel (second), giving leases back."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import attrs
import click

import quickq

from ._config_options import config_from, config_options
from ._errors import error_line, run, stop_on_sigterm
from ._registry import codec_option, load_codec, load_hook, load_registry
from ._store import check_store_url, opened_store, root_of, root_option, store_option


@click.command()
@click.argument("jobs_spec", metavar="MODULE:ATTR")
@store_option
@root_option
@codec_option
@click.option(
    "--on-event",
    "hook_spec",
    metavar="MODULE:ATTR",
    help="A function called with each quickq.JobEvent, as on_event= (besides the printing).",
)
@config_options
@click.option(
    "-v", "--verbose", is_flag=True, help="Print every attempt, not only failures and lost leases."
)
def worker(
    jobs_spec: str,
    store_url: str,
    root: tuple[str, ...],
    codec_spec: str | None,
    hook_spec: str | None,
    verbose: bool,
    **settings: Any,
) -> None:
    """Run the handlers of the JobRegistry MODULE:ATTR until SIGINT or SIGTERM.

    The first signal stops taking jobs and lets running ones finish within the
    grace period; a second one cancels them at once. Either way unfinished jobs
    give their leases back, so other workers take them.
    """
    stop_on_sigterm()
    config = config_from(settings)
    check_store_url(store_url)  # before importing the user's module, which may be slow
    registry = load_registry(jobs_spec)
    if not len(registry):
        raise click.BadParameter(f"{jobs_spec} registers no jobs", param_hint="'MODULE:ATTR'")
    config = attrs.evolve(
        config,
        root=root_of(root),
        codec=load_codec(codec_spec),
        on_event=_event_printer(verbose, load_hook(hook_spec)),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.WARNING)
    run(lambda: _work(store_url, registry, config))


async def _work(
    store_url: str,
    registry: quickq.JobRegistry,
    config: quickq.ConsumerConfig,
) -> None:
    say = _worker_say()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with opened_store(store_url) as store, anyio.create_task_group() as tg:

            async def consume(*, task_status: anyio.abc.TaskStatus[quickq.Consumer]) -> None:
                await quickq.serve_consumer(store, registry, config=config, task_status=task_status)
                tg.cancel_scope.cancel()  # drained: stop listening for signals

            consumer: quickq.Consumer = await tg.start(consume)
            topics = ", ".join(d.topic for d in registry)
            say(
                f"serving {topics} from {store_url} (concurrency {config.concurrency}, "
                f"lease {config.lease_duration:g}s); stop with Ctrl-C or SIGTERM"
            )
            stopping = False
            async for signum in signals:
                name = signal.Signals(signum).name
                if not stopping:
                    stopping = True
                    say(
                        f"{name}: finishing running jobs (up to {config.grace_period:g}s; "
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


def _event_printer(
    verbose: bool, hook: Callable[[quickq.JobEvent], object] | None
) -> Callable[[quickq.JobEvent], None]:
    """One stderr line per attempt that failed, died or lost its lease (all, if
    verbose); then the application's own *hook*, if any."""
    say = _worker_say()
    quiet = {"started", "released"} if verbose else {"started", "released", "completed"}

    def show(event: quickq.JobEvent) -> None:
        if event.kind not in quiet:
            took = f" after {event.duration:.2f}s" if event.duration is not None else ""
            error = error_line(event.error)
            say(
                f"{event.kind} {event.queue_id}/{event.job_id} {event.topic} attempt "
                f"{event.attempt}{took}{': ' + error if error else ''}"
            )
        if hook is not None:
            hook(event)  # the consumer logs what a hook raises; it never stops a job

    return show


def _worker_say() -> Callable[[str], None]:
    prefix = f"quickq worker {os.getpid()}:"
    return lambda text: click.echo(f"{prefix} {text}", err=True)
