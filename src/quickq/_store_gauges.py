"""The store-wide gauges: how many jobs each queue holds by state, how long
its oldest ready job has waited, and the consumers by the state of their
heartbeat, read from counters and index keys (``JobQueue.overview`` and
``JobQueue.workers``), never from jobs.

One table, :data:`STORE_GAUGES`, says each gauge's name, unit, description
and points; the Prometheus collector (``quickq.prometheus.store_collector``)
and the OpenTelemetry observable gauges (:func:`serve_store_gauges`) both
read it, so the two exports never disagree. Prometheus names and labels are
the OpenTelemetry ones with ``_`` for ``.`` (and ``_seconds`` for unit s),
as the OpenTelemetry-to-Prometheus translation writes them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import attrs

from . import _telemetry
from ._core import WorkerInfo
from ._exceptions import InvalidArgumentError, StoreError
from ._queue import MAX_OVERVIEW_QUEUES, JobQueue, StoreOverview
from ._telemetry import Telemetry, check_telemetry
from ._telemetry._names import QUEUE_ID, SYSTEM, SYSTEM_NAME
from ._validate import check_bool, check_int, check_seconds, shown

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

log = logging.getLogger("quickq")

STATE: Final = "messaging.quickq.job.state"
AGE_EXACT: Final = "messaging.quickq.age.exact"
WORKER_STATE: Final = "messaging.quickq.worker.state"
_STATES: Final = ("pending", "scheduled", "running", "dead")
_WORKER_STATES: Final = ("live", "stopping", "stale")

Point = tuple[dict[str, str], float]
"""A gauge's value under its attributes."""


@attrs.frozen
class StoreReading:
    """What one reading of the store found."""

    overview: StoreOverview
    workers: list[WorkerInfo]


async def read_store(queue: JobQueue, max_queues: int) -> StoreReading:
    """The overview of the first *max_queues* queues, and every heartbeat record."""
    overview = await queue.overview(max_queues=max_queues)
    return StoreReading(overview, await queue.workers(include_stale=True))


@attrs.frozen
class StoreGauge:
    """One store-wide gauge: its OpenTelemetry name, unit and description,
    and its points in a reading."""

    name: str
    unit: str
    description: str
    points: Callable[[StoreReading], list[Point]]
    per_queue: bool = False
    """One series per queue: left out when the caller asks for totals only."""


def _queue_jobs(reading: StoreReading) -> list[Point]:
    return [
        (
            {SYSTEM: SYSTEM_NAME, QUEUE_ID: row.stats.queue_id, STATE: state},
            getattr(row.stats, state),
        )
        for row in reading.overview.queues
        for state in _STATES
    ]


def _queue_age(reading: StoreReading) -> list[Point]:
    return [
        (
            {
                SYSTEM: SYSTEM_NAME,
                QUEUE_ID: row.stats.queue_id,
                AGE_EXACT: "true" if row.oldest_exact else "false",
            },
            row.oldest_ready or 0.0,
        )
        for row in reading.overview.queues
    ]


def _jobs(reading: StoreReading) -> list[Point]:
    totals = reading.overview.totals
    return [({SYSTEM: SYSTEM_NAME, STATE: state}, totals[state]) for state in _STATES]


def _truncated(reading: StoreReading) -> list[Point]:
    return [({SYSTEM: SYSTEM_NAME}, 1 if reading.overview.truncated else 0)]


def _workers(reading: StoreReading) -> list[Point]:
    return [
        (
            {SYSTEM: SYSTEM_NAME, WORKER_STATE: state},
            sum(worker.state == state for worker in reading.workers),
        )
        for state in _WORKER_STATES
    ]


STORE_GAUGES: Final = (
    StoreGauge(
        "quickq.queue.jobs",
        "{job}",
        "Jobs per queue and state, from the queues' counters.",
        _queue_jobs,
        per_queue=True,
    ),
    StoreGauge(
        "quickq.queue.oldest_ready.age",
        "s",
        "Seconds the oldest ready job of the queue has waited since it was due (0: none "
        "is ready); exact=false: a lower bound, from the head of a long ready index.",
        _queue_age,
        per_queue=True,
    ),
    StoreGauge("quickq.jobs", "{job}", "Jobs per state, summed over the queues read.", _jobs),
    StoreGauge(
        "quickq.queues.truncated",
        "1",
        "1 when the store holds more queues than max_queues: the totals cover the first ones.",
        _truncated,
    ),
    StoreGauge(
        "quickq.workers",
        "{consumer}",
        "Consumers by the state of their heartbeat record: live, stopping, or stale "
        "(no beat for three intervals: crashed or cut off).",
        _workers,
    ),
)
"""The store-wide gauges, in the order they are exported."""


def check_reading(queue: object, max_queues: object) -> tuple[JobQueue, int]:
    """*queue* and *max_queues*, checked for :func:`read_store`."""
    if not isinstance(queue, JobQueue):
        raise InvalidArgumentError(f"queue must be a quickq.JobQueue (got {shown(queue)})")
    return queue, check_int(max_queues, "max_queues", 1, MAX_OVERVIEW_QUEUES)


# -- OpenTelemetry -------------------------------------------------------------------


class _Latest:
    """The last reading of one :func:`serve_store_gauges`, swapped in whole,
    so the metric reader's thread sees one reading or the next."""

    def __init__(self, per_queue: bool) -> None:
        self.per_queue = per_queue
        self.reading: StoreReading | None = None


class _Observed:
    """The observable gauges of one meter, made once (an SDK keeps only the
    first instrument of a name): each reports the current readings of the
    :func:`serve_store_gauges` calls running on that meter's provider."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._latest: tuple[_Latest, ...] = ()
        for gauge in STORE_GAUGES:
            meter.create_observable_gauge(
                gauge.name,
                callbacks=[self._callback(gauge)],
                unit=gauge.unit,
                description=gauge.description,
            )

    def add(self, latest: _Latest) -> Callable[[], None]:
        with self._lock:
            self._latest = (*self._latest, latest)

        def remove() -> None:
            with self._lock:
                self._latest = tuple(x for x in self._latest if x is not latest)

        return remove

    def _callback(self, gauge: StoreGauge) -> Callable[[Any], Iterable[Any]]:
        from opentelemetry.metrics import Observation

        def observe(options: Any) -> Iterable[Any]:
            observations = []
            for latest in self._latest:
                reading = latest.reading
                if reading is None or (gauge.per_queue and not latest.per_queue):
                    continue
                observations += [
                    Observation(v, attributes) for attributes, v in gauge.points(reading)
                ]
            return observations

        return observe


_observed: dict[_telemetry.Meters, _Observed] = {}
_observed_lock = threading.Lock()


def _observed_for(meters: _telemetry.Meters) -> _Observed:
    with _observed_lock:
        found = _observed.get(meters)
        if found is None:
            found = _observed[meters] = _Observed(meters.meter)
        return found


async def serve_store_gauges(
    queue: JobQueue,
    *,
    interval: float = 15.0,
    max_queues: int = 1000,
    per_queue: bool = True,
    telemetry: Telemetry | None = Telemetry(),
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Report the store-wide gauges as OpenTelemetry observable gauges, until cancelled.

    Reads *queue*'s store every *interval* seconds (``JobQueue.overview`` of
    the first *max_queues* queues and ``JobQueue.workers``: counters and
    index keys, never jobs) and gives the metric reader the last reading:
    ``quickq.queue.jobs``, ``quickq.queue.oldest_ready.age`` (without
    *per_queue*, neither), ``quickq.jobs``, ``quickq.queues.truncated`` and
    ``quickq.workers``. A reading older than three intervals (the store has
    not answered) is not reported. Run it in one process per store, beside
    a consumer (``quickq worker --store-gauges``) or on its own::

        async with anyio.create_task_group() as tg:
            await tg.start(quickq.serve_store_gauges, queue)

    Returns once started (after the first reading, or its failure, which is
    logged and retried). With *telemetry* None, or no OpenTelemetry SDK set
    up, it reads nothing and waits to be cancelled.
    """
    queue, max_queues = check_reading(queue, max_queues)
    interval = check_seconds(interval, "interval", low_open=True)
    per_queue = check_bool(per_queue, "per_queue")
    telemetry = check_telemetry(telemetry)
    instruments = _telemetry.resolve(telemetry)
    if instruments is None or instruments.meters is None:
        task_status.started()
        await anyio.sleep_forever()
        return
    latest = _Latest(per_queue)
    remove = _observed_for(instruments.meters).add(latest)
    try:
        started = False
        taken = -math.inf
        while True:
            try:
                latest.reading = await read_store(queue, max_queues)
                taken = anyio.current_time()
            except StoreError as exc:
                log.warning("quickq: reading the store-wide gauges failed (%s)", exc)
                if anyio.current_time() - taken > 3 * interval:
                    latest.reading = None  # stale: report nothing rather than old numbers
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(interval)
    finally:
        remove()
