"""Finding what records: the tracer and the instruments of a
:class:`Telemetry` setting, or None when nothing would (telemetry off, the
``opentelemetry`` API not importable, or its proxies and no-ops: no SDK
configured). Made once per provider; callers test ``is not None`` and do
nothing else per job."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace

    AVAILABLE = True
except ImportError:  # the quickq[otel] extra is not installed
    AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider

from ._names import (
    DESTINATION,
    DURATION_BUCKETS,
    OPERATION_NAME,
    SCHEMA_URL,
    SCOPE,
    SYSTEM,
    SYSTEM_NAME,
    WAIT_BUCKETS,
)
from ._setting import Telemetry


class Meters:
    """The instruments of one meter provider, made once (an SDK warns when an
    instrument is made twice, and keeps only the first one's callbacks)."""

    def __init__(self, provider: MeterProvider, version: str) -> None:
        self.meter = meter = provider.get_meter(SCOPE, version, schema_url=SCHEMA_URL)
        self.sent = meter.create_counter(
            "messaging.client.sent.messages", unit="{message}", description="Jobs enqueued."
        )
        self._sources: tuple[GaugeSource, ...] = ()
        self._lock = threading.Lock()  # the reader's thread against a consumer's stop
        self._retired: dict[str, int] = {}
        """Attempts started per topic by the consumers that stopped."""
        self._consumed_attrs: dict[str, dict[str, Any]] = {}
        meter.create_observable_counter(
            "messaging.client.consumed.messages",
            callbacks=[self._observe_consumed],
            unit="{message}",
            description="Attempts started by consumers.",
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="An attempt from its start to its recorded outcome.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.operation_duration = meter.create_histogram(
            "messaging.client.operation.duration",
            unit="s",
            description="An enqueue call, or a consumer's commit of a batch of outcomes.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.wait_duration = meter.create_histogram(
            "quickq.job.wait.duration",
            unit="s",
            description="From when a job became due to when its attempt started.",
            explicit_bucket_boundaries_advisory=list(WAIT_BUCKETS),
        )
        self.retries = meter.create_counter(
            "quickq.job.retries", unit="{job}", description="Attempts recorded as retried."
        )
        self.dead_letters = meter.create_counter(
            "quickq.job.dead_letters", unit="{job}", description="Jobs dead-lettered."
        )
        self.lost = meter.create_counter(
            "quickq.lease.lost",
            unit="{job}",
            description="Attempts whose outcome was not recorded.",
        )
        self.released = meter.create_counter(
            "quickq.job.released", unit="{job}", description="Attempts given back unrun."
        )
        meter.create_observable_gauge(
            "quickq.consumer.jobs.running",
            callbacks=[self._observe_running],
            unit="{job}",
            description="Jobs running in this process's consumers.",
        )
        meter.create_observable_gauge(
            "quickq.consumer.jobs.capacity",
            callbacks=[self._observe_capacity],
            unit="{job}",
            description="Handler slots of this process's consumers.",
        )

    def add_source(self, source: GaugeSource) -> Callable[[], None]:
        """Count *source* in the gauges until the returned function is called.

        The gauges are read in the metric reader's thread: they only read
        ints, from a tuple swapped in whole."""
        self._sources = (*self._sources, source)

        def remove() -> None:
            with self._lock:  # its count moves to the retired ones in one step
                for topic, n in source.started().items():
                    self._retired[topic] = self._retired.get(topic, 0) + n
                self._sources = tuple(s for s in self._sources if s is not source)

        return remove

    def _observe_consumed(self, options: Any) -> Iterable[Any]:
        """Attempts started per topic: the consumers' own counts (no per-job
        call), those of the stopped ones kept, so the counter never goes back."""
        with self._lock:
            totals = dict(self._retired)
            for source in self._sources:
                for topic, n in source.started().items():
                    totals[topic] = totals.get(topic, 0) + n
        return [
            otel_metrics.Observation(n, self._consumed_attributes(topic))
            for topic, n in totals.items()
        ]

    def _consumed_attributes(self, topic: str) -> dict[str, Any]:
        found = self._consumed_attrs.get(topic)
        if found is None:
            found = {SYSTEM: SYSTEM_NAME, OPERATION_NAME: "process", DESTINATION: topic}
            self._consumed_attrs[topic] = found
        return found

    def _observe_running(self, options: Any) -> Iterable[Any]:
        return [otel_metrics.Observation(sum(s.running() for s in self._sources), _GAUGE_ATTRS)]

    def _observe_capacity(self, options: Any) -> Iterable[Any]:
        return [otel_metrics.Observation(sum(s.capacity() for s in self._sources), _GAUGE_ATTRS)]


_GAUGE_ATTRS: Final = {SYSTEM: SYSTEM_NAME}


class GaugeSource:
    """What a consumer shows in the observable instruments: its running jobs,
    its capacity and its attempts started per topic, read from the consumer's
    own numbers in the metric reader's thread (reads of ints, and of a dict
    copied whole)."""

    def __init__(
        self,
        running: Callable[[], int],
        capacity: Callable[[], int],
        started: Callable[[], Mapping[str, int]],
    ) -> None:
        self.running = running
        self.capacity = capacity
        self.started = started


@attrs.frozen
class Instruments:
    """What :func:`resolve` found: a tracer and meters, either of them None
    when its provider is a no-op (at least one is not)."""

    tracer: Tracer | None
    meters: Meters | None
    create_spans: bool


_tracers: dict[object, Tracer | None] = {}
_meters: dict[object, Meters | None] = {}


def resolve(telemetry: Telemetry | None) -> Instruments | None:
    """The instruments for *telemetry* now, or None when nothing would record.

    Made once per provider; the global providers are looked up on each call,
    so one set after a JobQueue was made is used from then on."""
    if telemetry is None or not AVAILABLE:
        return None
    tracer_provider = telemetry.tracer_provider
    if tracer_provider is None:
        tracer_provider = otel_trace.get_tracer_provider()
    tracer = _tracers.get(tracer_provider, _MISSING)
    if tracer is _MISSING:
        tracer = _tracers[tracer_provider] = _make_tracer(tracer_provider)
    meter_provider = telemetry.meter_provider
    if meter_provider is None:
        meter_provider = otel_metrics.get_meter_provider()
    meters = _meters.get(meter_provider, _MISSING)
    if meters is _MISSING:
        meters = _meters[meter_provider] = _make_meters(meter_provider)
    if tracer is None and meters is None:
        return None
    assert not isinstance(tracer, _Missing) and not isinstance(meters, _Missing)
    return Instruments(tracer, meters, telemetry.create_spans)


class _Missing:
    pass


_MISSING: Any = _Missing()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quickq")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


def _make_tracer(provider: TracerProvider) -> Tracer | None:
    if isinstance(provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        return None  # no SDK: spans would be non-recording
    return provider.get_tracer(SCOPE, _version(), schema_url=SCHEMA_URL)


def _make_meters(provider: MeterProvider) -> Meters | None:
    if isinstance(provider, otel_metrics.NoOpMeterProvider) or _is_proxy_meter_provider(provider):
        return None
    return Meters(provider, _version())


def _is_proxy_meter_provider(provider: object) -> bool:
    """The API's stand-in before a meter provider is set (not public API)."""
    return type(provider).__name__ == "_ProxyMeterProvider"
