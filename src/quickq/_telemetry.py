"""OpenTelemetry traces and metrics, when the API is installed (``quickq[otel]``).

A library emits through the providers the application set up, and costs
nothing when it set none: :func:`resolve` gives the :class:`Instruments` of a
:class:`Telemetry` setting, or None when telemetry is off, when
``opentelemetry`` is not importable, or when the providers are the API's
proxies and no-ops (no SDK configured). Callers test ``is not None`` and do
nothing else per job.

The job's creation context travels in its record (``Item.trace``), encoded
here: the W3C ``traceparent`` alone in 26 bytes, anything else (``tracestate``,
baggage, other propagators) as the carrier's compact JSON, at most
TRACE_BYTES. ``_core`` stores the bytes and never imports OpenTelemetry.

Telemetry never fails a job or an enqueue: an error inside it (an SDK's, a
bad attribute) is logged once, and the work goes on without it (:func:`guarded`).

Names follow the messaging semantic conventions (v1.44.0, whose messaging
part is still "development"); quickq keeps its own constants rather than
depend on the conventions' incubating package. docs/observability.md lists
every span, attribute and metric.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import attrs

from ._limits import TRACE_BYTES
from ._validate import shown

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import propagate
    from opentelemetry import trace as otel_trace

    AVAILABLE = True
except ImportError:  # the quickq[otel] extra is not installed
    AVAILABLE = False

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, SpanContext, Tracer, TracerProvider

log = logging.getLogger("quickq")
P = ParamSpec("P")
R = TypeVar("R")


def guarded(default: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the method; on an error, log it (once) and return *default*. For
    calls made once per enqueue or per batch: the per-attempt ones catch
    inline (:func:`recording_failed`), without a wrapper call."""

    def wrap(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except Exception:
                recording_failed()
                return default  # type: ignore[no-any-return]

        return call

    return wrap


def recording_failed() -> None:
    """Log the error being handled, the first time in this process."""
    if not _failed:
        _failed.append(True)
        log.exception("quickq: OpenTelemetry recording failed (logged once)")


_failed: list[bool] = []


SCOPE: Final = "quickq"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"

# -- attribute names ----------------------------------------------------------------

SYSTEM: Final = "messaging.system"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
DESTINATION: Final = "messaging.destination.name"
MESSAGE_ID: Final = "messaging.message.id"
CLIENT_ID: Final = "messaging.client.id"
BATCH_COUNT: Final = "messaging.batch.message_count"
ERROR_TYPE: Final = "error.type"
QUEUE_ID: Final = "messaging.quickq.queue.id"
ATTEMPT: Final = "messaging.quickq.job.attempt"
PRIORITY: Final = "messaging.quickq.job.priority"
WAIT: Final = "messaging.quickq.job.wait"
ACTION: Final = "messaging.quickq.job.action"
OUTCOME: Final = "messaging.quickq.job.outcome"
DEAD_REASON: Final = "messaging.quickq.dead.reason"
SNOOZE_DELAY: Final = "messaging.quickq.snooze.delay"
LEASE_LOST: Final = "messaging.quickq.lease.lost"
SYSTEM_NAME: Final = "quickq"

DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""The conventions' advice for ``messaging.*.duration`` (seconds)."""
WAIT_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
)  # fmt: skip
"""Enqueue-to-start waits (seconds): from a busy queue's milliseconds to an hour's backlog."""


@attrs.frozen
class Telemetry:
    """Where quickq sends its OpenTelemetry traces and metrics.

    The default, ``Telemetry()``, uses the global providers that the
    application set up (``opentelemetry.trace.set_tracer_provider``,
    ``opentelemetry.metrics.set_meter_provider``), as OpenTelemetry asks of
    libraries: with the ``quickq[otel]`` extra installed and an SDK
    configured, spans and metrics appear with nothing else to call. Set the
    providers before opening the consumer, which looks them up as it starts
    (a ``JobQueue`` looks them up at each enqueue); without them (or without
    the extra) quickq emits nothing and costs nothing.

    Pass *tracer_provider* or *meter_provider* to use those instead of the
    global ones. *create_spans* (default True) gives each job of an
    ``enqueue_many`` batch a ``create`` span of its own, linked from the
    batch's ``send`` span; False makes one ``send`` span whose context every
    job of the batch carries. ``telemetry=None`` (to ``JobQueue`` or the
    consumer) turns it off.
    """

    tracer_provider: TracerProvider | None = attrs.field(default=None, kw_only=True)
    """The tracer provider to use (None: the global one)."""
    meter_provider: MeterProvider | None = attrs.field(default=None, kw_only=True)
    """The meter provider to use (None: the global one)."""
    create_spans: bool = attrs.field(default=True, kw_only=True)
    """A ``create`` span per job of an ``enqueue_many`` batch."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.create_spans, bool):
            raise _invalid(f"create_spans must be a bool (got {shown(self.create_spans)})")


def _invalid(message: str) -> Exception:
    from ._exceptions import InvalidArgumentError

    return InvalidArgumentError(message)


def check_telemetry(value: object) -> Telemetry | None:
    """*value* when it is a Telemetry or None, else InvalidArgumentError."""
    if value is not None and not isinstance(value, Telemetry):
        raise _invalid(f"telemetry must be a quickq.Telemetry or None (got {shown(value)})")
    return value


# -- instruments ----------------------------------------------------------------------


class Meters:
    """The instruments of one meter provider, made once (an SDK warns when an
    instrument is made twice, and keeps only the first one's callbacks)."""

    def __init__(self, provider: MeterProvider, version: str) -> None:
        meter = provider.get_meter(SCOPE, version, schema_url=SCHEMA_URL)
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


# -- recording errors -----------------------------------------------------------------


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its fully qualified class name (the bare
    name for builtins)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def record_error(span: Span, exc: BaseException | None, kind: str, message: str = "") -> None:
    """Mark *span* failed: the exception recorded (when there is one), status
    ERROR, ``error.type`` *kind*."""
    if exc is not None:
        span.record_exception(exc)
    span.set_status(otel_trace.StatusCode.ERROR, message or None)
    span.set_attribute(ERROR_TYPE, kind)


# -- the trace context in the job record ----------------------------------------------

_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_BINARY: Final = 0
_CARRIER: Final = 1
_FLAGS: Final = {0: otel_trace.TraceFlags(0), 1: otel_trace.TraceFlags(1)} if AVAILABLE else {}
"""The usual trace flags, made once (unsampled, sampled)."""


def inject(span: Span) -> bytes | None:
    """The creation context of *span* (with the current baggage), as the
    application's propagators write it, encoded for the job record."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=otel_trace.set_span_in_context(span))
    return encode_carrier(carrier)


def encode_carrier(carrier: Mapping[str, str]) -> bytes | None:
    """*carrier* as stored: 26 bytes for a lone version-00 ``traceparent``,
    else its compact JSON; one over TRACE_BYTES keeps only its ``traceparent``."""
    parent = carrier.get("traceparent")
    if len(carrier) == 1 and parent is not None:
        match = _TRACEPARENT.fullmatch(parent)
        if match is not None:
            trace_id, span_id, flags = match.groups()
            return bytes((_BINARY, int(flags, 16))) + bytes.fromhex(trace_id + span_id)
    if not carrier:
        return None
    encoded = bytes((_CARRIER,)) + json.dumps(dict(carrier), separators=(",", ":")).encode()
    if len(encoded) <= TRACE_BYTES:
        return encoded
    return encode_carrier({"traceparent": parent}) if parent is not None else None


def decode_context(data: bytes | None) -> SpanContext | None:
    """The creation context stored as *data*, or None (none, or unreadable:
    a job is never refused for its trace context)."""
    if not data:
        return None
    try:
        if data[0] == _BINARY and len(data) == 26:
            flags = _FLAGS.get(data[1])
            context = otel_trace.SpanContext(
                int.from_bytes(data[2:18]),
                int.from_bytes(data[18:26]),
                True,  # is_remote
                otel_trace.TraceFlags(data[1]) if flags is None else flags,
            )
        elif data[0] == _CARRIER:
            carrier = json.loads(data[1:])
            extracted = propagate.extract(carrier)
            context = otel_trace.get_current_span(extracted).get_span_context()
        else:
            return None
    except (ValueError, TypeError, AttributeError):
        return None
    return context if context.is_valid else None


def carrier_of(data: bytes | None) -> dict[str, str]:
    """The stored context as a propagators' carrier (for tests and tools)."""
    if not data:
        return {}
    if data[0] == _BINARY and len(data) == 26:
        return {"traceparent": f"00-{data[2:18].hex()}-{data[18:26].hex()}-{data[1]:02x}"}
    if data[0] == _CARRIER:
        loaded = json.loads(data[1:])
        return {str(k): str(v) for k, v in loaded.items()}
    return {}


# -- the producer's spans ---------------------------------------------------------------


class Sending:
    """The spans and metrics of one enqueue call (see :func:`start_sending`)."""

    __slots__ = ("_instruments", "_span", "_start", "_topics", "contexts")

    def __init__(
        self,
        instruments: Instruments,
        span: Span | None,
        contexts: list[bytes | None] | None,
        topics: dict[str, int],
        start: float,
    ) -> None:
        self._instruments = instruments
        self._span = span
        self.contexts = contexts
        """Each job's creation context for its record (None: no tracing)."""
        self._topics = topics
        self._start = start

    @guarded(None)
    def end(self, exc: BaseException | None, now: float) -> None:
        """The call ended at *now* (raising *exc*, or not): end its span,
        count its jobs, record its duration."""
        kind = error_type(exc) if exc is not None else None
        span = self._span
        if span is not None:
            if exc is not None:
                record_error(span, exc, kind or "", str(exc))
            span.end()
        meters = self._instruments.meters
        if meters is None:
            return
        attributes: dict[str, Any] = {SYSTEM: SYSTEM_NAME, OPERATION_NAME: "send"}
        if kind is not None:
            attributes[ERROR_TYPE] = kind
        for topic, count in self._topics.items():
            meters.sent.add(count, {**attributes, DESTINATION: topic})
        if len(self._topics) == 1:
            (attributes[DESTINATION],) = self._topics
        meters.operation_duration.record(max(0.0, now - self._start), attributes)


@guarded(None)
def start_sending(
    instruments: Instruments, jobs: Sequence[tuple[str, str, str]], *, single: bool, now: float
) -> Sending | None:
    """Start the spans of an enqueue of *jobs* (queue id, job id, topic each).

    A single job (``enqueue``) gets a ``send {topic}`` PRODUCER span, whose
    context is the job's creation context. A batch (``enqueue_many``) gets a
    ``create {topic}`` PRODUCER span per job, ended at once, each its job's
    creation context, and a ``send`` CLIENT span linking them; without create
    spans, ``send`` is PRODUCER and every job carries its context. ``send``
    is named by the topic when the batch has one topic.
    """
    topics: dict[str, int] = {}
    for _, _, topic in jobs:
        topics[topic] = topics.get(topic, 0) + 1
    tracer = instruments.tracer
    if tracer is None:
        return Sending(instruments, None, None, topics, now)
    name = f"send {next(iter(topics))}" if len(topics) == 1 else "send"
    base: dict[str, Any] = {SYSTEM: SYSTEM_NAME}
    if len(topics) == 1:
        base[DESTINATION] = next(iter(topics))
    producer = otel_trace.SpanKind.PRODUCER
    if single:
        ((qid, job_id, _),) = jobs
        attributes = {
            **base, OPERATION_TYPE: "send", OPERATION_NAME: "send", MESSAGE_ID: job_id,
            QUEUE_ID: qid,
        }  # fmt: skip
        span = tracer.start_span(name, kind=producer, attributes=attributes)
        return Sending(instruments, span, [inject(span)], topics, now)
    batch = {**base, OPERATION_TYPE: "send", OPERATION_NAME: "send", BATCH_COUNT: len(jobs)}
    if not instruments.create_spans:
        span = tracer.start_span(name, kind=producer, attributes=batch)
        return Sending(instruments, span, [inject(span)] * len(jobs), topics, now)
    contexts: list[bytes | None] = []
    links = []
    for qid, job_id, topic in jobs:
        create = tracer.start_span(
            f"create {topic}",
            kind=producer,
            attributes={
                SYSTEM: SYSTEM_NAME, OPERATION_TYPE: "create", OPERATION_NAME: "create",
                DESTINATION: topic, MESSAGE_ID: job_id, QUEUE_ID: qid,
            },
        )  # fmt: skip
        contexts.append(inject(create))
        links.append(otel_trace.Link(create.get_span_context()))
        create.end()
    span = tracer.start_span(name, kind=otel_trace.SpanKind.CLIENT, attributes=batch, links=links)
    return Sending(instruments, span, contexts, topics, now)


def attach(span: Span) -> Token[Context]:
    """Make *span* the current span of this task (the handler's spans are its
    children) until :func:`detach` with the returned token."""
    return otel_context.attach(otel_trace.set_span_in_context(span))


def detach(token: Token[Context]) -> None:
    otel_context.detach(token)
