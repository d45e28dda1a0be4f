"""The collectors: a consumer's in-process numbers, and the store-wide gauges.

Both are prometheus_client custom collectors (``collect()`` yields metric
families), so the text is prometheus_client's own exposition. ``collect()``
runs in the serving event loop's thread and only reads: the consumer's
reporter (owned by that loop) or the store collector's cached snapshot,
which :meth:`StoreCollector.refresh_if_stale` replaces before a scrape.

Label names are the OpenTelemetry attribute names with ``_`` for ``.``, as
the OpenTelemetry-to-Prometheus translation writes them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Final

import anyio
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

import quickq

from .._consumer._report import Histogram, Reporter
from .._core import Outcome
from .._store_gauges import STORE_GAUGES, StoreReading, check_reading, read_store
from .._validate import check_bool, check_seconds

SYSTEM: Final = "quickq"
"""``messaging.system``."""
_BASE: Final = ["messaging_system", "messaging_operation_name", "messaging_destination_name"]
_OUTCOME_NAMES: Final = {
    Outcome.COMPLETED: "completed",
    Outcome.RETRIED: "retried",
    Outcome.DEAD_LETTERED: "dead_lettered",
    Outcome.RELEASED: "released",
    Outcome.LOST: "lost",
}
"""``messaging.quickq.job.outcome``: the ``Outcome`` values."""


class ConsumerCollector:
    """The numbers of one consumer (see :func:`consumer_collector`)."""

    def __init__(self, consumer: quickq.Consumer) -> None:
        self._consumer = consumer
        self._reporter: Reporter = consumer._reporter

    def collect(self) -> Iterator[Metric]:
        """The consumer's metric families, as they stand now."""
        consumed = CounterMetricFamily(
            "messaging_client_consumed_messages",
            "Attempts started (messages delivered to a handler).",
            labels=_BASE,
        )
        duration = HistogramMetricFamily(
            "messaging_process_duration_seconds",
            "Attempts' duration, from start to recorded outcome.",
            labels=[*_BASE, "messaging_quickq_job_outcome"],
            unit="seconds",
        )
        wait = HistogramMetricFamily(
            "quickq_job_wait_duration_seconds",
            "Seconds from when a job became due to its attempt's start.",
            labels=_BASE,
            unit="seconds",
        )
        retries = CounterMetricFamily(
            "quickq_job_retries", "Attempts that ended retried (failed or snoozed).", labels=_BASE
        )
        dead = CounterMetricFamily(
            "quickq_job_dead_letters",
            "Attempts that ended in a dead letter, by reason.",
            labels=[*_BASE, "messaging_quickq_dead_reason"],
        )
        lost = CounterMetricFamily(
            "quickq_lease_lost",
            "Attempts whose outcome was not recorded (the lease was lost, or the store "
            "could not be reached); the lease's expiry brings the job back.",
            labels=_BASE,
        )
        released = CounterMetricFamily(
            "quickq_job_released", "Attempts given back unrun at shutdown.", labels=_BASE
        )
        for topic, numbers in sorted(self._reporter.topics.items()):
            base = [SYSTEM, "process", topic]
            consumed.add_metric(base, numbers.started)
            wait.add_metric(base, *_buckets(numbers.wait))
            for outcome, histogram in numbers.durations.items():
                duration.add_metric([*base, _OUTCOME_NAMES[outcome]], *_buckets(histogram))
            retries.add_metric(base, numbers.ended(Outcome.RETRIED))
            lost.add_metric(base, numbers.ended(Outcome.LOST))
            released.add_metric(base, numbers.ended(Outcome.RELEASED))
            for reason, count in numbers.dead.items():
                dead.add_metric([*base, reason or ""], count)
        yield from (consumed, duration, wait, retries, dead, lost, released)
        running = GaugeMetricFamily(
            "quickq_consumer_jobs_running",
            "Jobs this consumer runs now.",
            labels=["messaging_system"],
        )
        running.add_metric([SYSTEM], self._consumer.statistics().running)
        yield running
        capacity = GaugeMetricFamily(
            "quickq_consumer_jobs_capacity",
            "Jobs this consumer runs at most at once (its concurrency).",
            labels=["messaging_system"],
        )
        capacity.add_metric([SYSTEM], self._consumer.config.concurrency)
        yield capacity


def _buckets(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    """A histogram's cumulative buckets (``le`` strings, +Inf last) and sum."""
    buckets: list[tuple[str, float]] = []
    total = 0
    for le, count in zip(_le_labels(histogram.bounds), histogram.counts, strict=True):
        total += count
        buckets.append((le, total))
    return buckets, histogram.sum


@functools.cache
def _le_labels(bounds: tuple[float, ...]) -> list[str]:
    """The ``le`` label values of *bounds* and +Inf, as prometheus_client writes them."""
    return [floatToGoString(bound) for bound in (*bounds, math.inf)]  # type: ignore[no-untyped-call]


def consumer_collector(consumer: quickq.Consumer) -> ConsumerCollector:
    """A collector of *consumer*'s numbers since it started, for :func:`asgi_app`.

    Per topic (``messaging_destination_name``): attempts started, the
    process-duration histogram by outcome, the wait histogram, retries, dead
    letters by reason, lost leases and released jobs; and the jobs running
    against the consumer's capacity. It reads what the consumer holds in
    memory, never the store. Serve it from the consumer's own event loop.
    """
    if not isinstance(consumer, quickq.Consumer):
        raise quickq.InvalidArgumentError(f"consumer must be a quickq.Consumer (got {consumer!r})")
    return ConsumerCollector(consumer)


class StoreCollector:
    """The store-wide gauges of one queue handle (see :func:`store_collector`)."""

    def __init__(
        self, queue: quickq.JobQueue, *, refresh: float, max_queues: int, per_queue: bool
    ) -> None:
        self._queue = queue
        self._refresh = refresh
        self._max_queues = max_queues
        self._per_queue = per_queue
        self._lock = anyio.Lock()
        self._reading: StoreReading | None = None
        self._taken = -float("inf")

    def _fresh(self) -> bool:
        return self._reading is not None and anyio.current_time() - self._taken < self._refresh

    async def refresh_if_stale(self) -> None:
        """Read the store again if the snapshot is older than *refresh* seconds.

        Single-flight: scrapes that arrive while a read is under way wait for
        it and use its result, so a burst of scrapes costs one read.
        """
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():
                return  # refreshed while this scrape waited for the lock
            self._reading = await read_store(self._queue, self._max_queues)
            self._taken = anyio.current_time()

    def collect(self) -> Iterator[Metric]:
        """The gauges of the last snapshot (none before the first refresh)."""
        reading = self._reading
        if reading is None:
            return
        for gauge in STORE_GAUGES:
            if gauge.per_queue and not self._per_queue:
                continue
            points = gauge.points(reading)
            labels = [_label(name) for name in points[0][0]] if points else []
            family = GaugeMetricFamily(
                gauge.name.replace(".", "_"),
                gauge.description,
                labels=labels,
                unit="seconds" if gauge.unit == "s" else "",
            )
            for attributes, value in points:
                family.add_metric(list(attributes.values()), value)
            yield family


def _label(attribute: str) -> str:
    return attribute.replace(".", "_")


def store_collector(
    queue: quickq.JobQueue,
    *,
    refresh: float = 15.0,
    max_queues: int = 1000,
    per_queue: bool = True,
) -> StoreCollector:
    """A collector of the store-wide gauges of :meth:`quickq.JobQueue.overview`.

    Jobs per queue and state (``quickq_queue_jobs``; without *per_queue*,
    only the totals), their totals (``quickq_jobs``), the age of each queue's
    oldest ready job, whether more than *max_queues* queues exist, and the
    consumers by the state of their heartbeat (``quickq_workers``). The
    store is read at most once per *refresh* seconds: :func:`asgi_app` calls
    :meth:`StoreCollector.refresh_if_stale` before each scrape.
    """
    queue, max_queues = check_reading(queue, max_queues)
    refresh = check_seconds(refresh, "refresh")
    per_queue = check_bool(per_queue, "per_queue")
    return StoreCollector(queue, refresh=refresh, max_queues=max_queues, per_queue=per_queue)
