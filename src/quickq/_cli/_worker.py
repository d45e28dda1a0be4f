"""``quickq worker MODULE:ATTR``: serve a registry's handlers until a signal
says stop, then drain (first signal) or cancel (second), giving leases back."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import anyio
import anyio.abc
import attrs
import click
from click.core import ParameterSource

import quickq

from ._config_options import config_from, config_options
from ._errors import run, stop_on_sigterm
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
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve this worker's metrics as Prometheus text on http://HOST:PORT/metrics "
    "(0: a free port, printed). Needs quickq[prometheus].",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="The address the metrics endpoint binds (0.0.0.0: every interface).",
)
@click.option(
    "--store-gauges",
    is_flag=True,
    help="Also report the store-wide gauges (jobs per queue and state, oldest ready age, "
    "workers), read every 15 s: through OpenTelemetry, and on --metrics-port. One worker "
    "per store is enough.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Print every attempt, not only failures and lost leases."
)
def worker(
    jobs_spec: str,
    store_url: str,
    root: tuple[str, ...],
    codec_spec: str | None,
    hook_spec: str | None,
    metrics_port: int | None,
    metrics_host: str,
    store_gauges: bool,
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
    if metrics_port is not None:
        check_prometheus("'--metrics-port'")
    elif (
        click.get_current_context().get_parameter_source("metrics_host")
        is not ParameterSource.DEFAULT
    ):
        raise click.UsageError("--metrics-host needs --metrics-port")
    check_store_url(store_url)  # before importing the user's module, which may be slow
    registry = load_registry(jobs_spec)
    if not len(registry):
        raise click.BadParameter(f"{jobs_spec} registers no jobs", param_hint="'MODULE:ATTR'")
    config = attrs.evolve(
        config,
        root=root_of(root),
        codec=load_codec(codec_spec),
        # The consumer ignores what a hook returns.
        on_event=cast(Callable[[quickq.JobEvent], None] | None, load_hook(hook_spec)),
    )
    _log_attempts(verbose)
    metrics = None if metrics_port is None else (metrics_host, metrics_port)
    run(lambda: _work(store_url, registry, config, metrics, store_gauges=store_gauges))


async def _work(
    store_url: str,
    registry: quickq.JobRegistry,
    config: quickq.ConsumerConfig,
    metrics: tuple[str, int] | None,
    *,
    store_gauges: bool,
) -> None:
    say = say_as("worker")
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with opened_store(store_url) as store, anyio.create_task_group() as tg:

            async def consume(*, task_status: anyio.abc.TaskStatus[quickq.Consumer]) -> None:
                await quickq.serve_consumer(store, registry, config=config, task_status=task_status)
                tg.cancel_scope.cancel()  # drained: stop listening for signals

            gauges = None  # the store-wide gauges' queue handle, when asked for
            if store_gauges:
                gauges = quickq.JobQueue(store, root=config.root, clock=config.clock)
                await tg.start(
                    partial(quickq.serve_store_gauges, gauges, telemetry=config.telemetry)
                )
            # The port is bound before the consumer starts, so a port that
            # cannot be bound fails the worker before it leases a job.
            own = _ConsumerCollector()
            urls = [] if metrics is None else await _serve_metrics(tg, own, *metrics, gauges=gauges)
            consumer: quickq.Consumer = await tg.start(consume)
            topics = ", ".join(d.topic for d in registry)
            say(
                f"serving {topics} from {store_url} (concurrency {config.concurrency}, "
                f"lease {config.lease_duration:g}s); stop with Ctrl-C or SIGTERM"
            )
            if urls:
                own.serve(consumer)
                for url in urls:
                    say(f"metrics at {url}/metrics")
                consumer.metrics_address = f"{urls[0]}/metrics"  # for quickq workers
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


def check_prometheus(param_hint: str) -> None:
    """Fail early, as a usage error of *param_hint*, when the prometheus extra is missing."""
    try:
        import quickq.prometheus  # noqa: F401
    except ImportError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None


class _ConsumerCollector:
    """The worker's consumer's numbers for its metrics endpoint, which is
    bound before the consumer exists: nothing until :meth:`serve` is given it."""

    def __init__(self) -> None:
        self._collector: Any = None

    def serve(self, consumer: quickq.Consumer) -> None:
        import quickq.prometheus as prom

        self._collector = prom.consumer_collector(consumer)

    def collect(self) -> Any:
        return iter(()) if self._collector is None else self._collector.collect()


async def _serve_metrics(
    tg: anyio.abc.TaskGroup,
    own: _ConsumerCollector,
    host: str,
    port: int,
    *,
    gauges: quickq.JobQueue | None,
) -> list[str]:
    """Serve the worker's own metrics in *tg* (cancelled with it), and the
    store-wide gauges of *gauges*; the bound URLs."""
    import quickq.prometheus as prom

    collectors: list[Any] = [own]
    if gauges is not None:
        collectors.append(prom.store_collector(gauges))
    return await start_metrics(tg, prom.asgi_app(*collectors), host, port)


async def start_metrics(tg: anyio.abc.TaskGroup, app: Any, host: str, port: int) -> list[str]:
    """Serve metrics *app* on *host*:*port* in *tg*; the bound URLs. A port
    that cannot be bound is one error line (status 1)."""
    import quickq.prometheus as prom

    async def serve(*, task_status: anyio.abc.TaskStatus[list[str]]) -> None:
        await prom.serve(app, port=port, host=host, task_status=task_status)

    try:
        urls: list[str] = await tg.start(serve)
    except* OSError as group:  # from inside hypercorn's own task groups
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {why}") from None
    return urls


class _AttemptFormatter(logging.Formatter):
    """Attempt records (``outcome`` in their extra) as the worker's own lines;
    anything else with its time and level."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self._prefix = f"quickq worker {os.getpid()}:"

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "outcome"):
            return f"{self._prefix} {record.getMessage()}"
        return super().format(record)


def _log_attempts(verbose: bool) -> None:
    """One stderr line per attempt that failed, died or lost its lease (every
    attempt, if verbose): the ``quickq`` logger's records, one per ended attempt."""
    handler = logging.StreamHandler()
    handler.setFormatter(_AttemptFormatter())
    logging.basicConfig(handlers=[handler], level=logging.WARNING)
    logging.getLogger("quickq").setLevel(logging.DEBUG if verbose else logging.INFO)


def say_as(command: str) -> Callable[[str], None]:
    """Print lines to stderr as ``quickq COMMAND PID: text``."""
    prefix = f"quickq {command} {os.getpid()}:"
    return lambda text: click.echo(f"{prefix} {text}", err=True)
