"""``quickq metrics``: serve a store's gauges (depth per queue and state, the
age of each queue's oldest ready job) as Prometheus text, until a signal."""

from __future__ import annotations

import signal

import anyio
import click

import quickq

from ._errors import run
from ._params import Seconds
from ._store import check_store_url, opened_store, root_of, root_option, store_option
from ._worker import check_prometheus, say_as, start_metrics


@click.command()
@store_option
@root_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    required=True,
    metavar="PORT",
    help="Serve on http://HOST:PORT/metrics (0: a free port, printed).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="The address to bind (0.0.0.0: every interface).",
)
@click.option(
    "--refresh",
    type=Seconds(),
    default=15.0,
    show_default=True,
    metavar="SECONDS",
    help="Read the store at most this often; scrapes in between get the last reading "
    "(0: every scrape reads it).",
)
@click.option(
    "--max-queues",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    metavar="N",
    help="Read the first N queues (by id); quickq_queues_truncated says when there are more.",
)
@click.option(
    "--per-queue/--no-per-queue",
    default=True,
    show_default=True,
    help="Series per queue, or only the totals (for stores with many queues).",
)
def metrics(
    store_url: str,
    root: tuple[str, ...],
    port: int,
    host: str,
    refresh: float,
    max_queues: int,
    per_queue: bool,
) -> None:
    """Serve the store's gauges as Prometheus text until SIGINT or SIGTERM:
    jobs per queue and state, their totals, and how long each queue's oldest
    ready job has waited, from counters (no scans)."""
    check_store_url(store_url)
    check_prometheus("'--port'")
    import quickq.prometheus as prom

    say = say_as("metrics")

    async def body() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with opened_store(store_url) as store, anyio.create_task_group() as tg:
                queue = quickq.JobQueue(store, root=root_of(root))
                collector = prom.store_collector(
                    queue, refresh=refresh, max_queues=max_queues, per_queue=per_queue
                )
                for url in await start_metrics(tg, prom.asgi_app(collector), host, port):
                    say(f"serving the metrics of {store_url} at {url}/metrics")
                async for signum in signals:
                    say(f"{signal.Signals(signum).name}: stopping")
                    tg.cancel_scope.cancel()
                    break

    run(body)
