"""A consumer's OpenTelemetry spans and metrics (made only when ``_telemetry``
finds something recording; the runner and the acker test ``is not None``).

Per attempt: a ``process {topic}`` CONSUMER span, from its start to its
recorded outcome, linked to the job's creation context and with no parent
(the conventions link producer and consumer; the runner task carries no
ambient span), and two histogram values (wait, duration), those the
consumer's reporter measured. Per settlement batch (:meth:`ConsumerTelemetry.flush`):
a ``settle`` CLIENT span, its duration, the batch's histogram values recorded
back to back, and the counters of retries, dead letters, lost and released
attempts, added once per topic, outcome and error type (the reporter does
not keep error types). Attempts started are the reporter's count, read by an
observable counter.

The SDK's own work is most of the cost (docs/observability.md, "What it
costs"), so quickq's is kept to what the conventions and the documented
attributes need: attribute dicts made once per topic, a span's own
attributes given in one call at its start and one at its end, nothing at its
end for a span the sampler dropped, and no wrapper call on the way.

Telemetry never fails a job: an error inside it (an SDK's, or a bad
attribute) is logged once and the attempt goes on without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from .. import _telemetry as t
from .._core import Action, Item, Outcome, Settlement
from .._time import Clock
from ._report import LOST_WHY

if TYPE_CHECKING:
    from opentelemetry.trace import Span


_LOST: Final = Outcome.LOST.value
_MetricKey: TypeAlias = tuple[str, str | None, str | None, str | None]
"""A topic, and an outcome, an error type and a dead reason, each optional."""
_COMPLETED: Final = Outcome.COMPLETED.value


class ConsumerTelemetry:
    """What one consumer records (see the module docstring)."""

    def __init__(
        self,
        instruments: t.Instruments,
        *,
        consumer_id: str,
        clock: Clock,
        running: Callable[[], int],
        capacity: Callable[[], int],
        started: Callable[[], Mapping[str, int]],
    ) -> None:
        self._tracer = instruments.tracer
        self._meters = instruments.meters
        self._clock = clock
        self._consumer_id = consumer_id
        self._span_bases: dict[str, tuple[str, dict[str, Any]]] = {}
        """Per topic: the ``process`` span's name and its attributes common to every attempt."""
        self._topic_attrs: dict[str, dict[str, Any]] = {}
        """Per topic: the wait's metric attributes."""
        self._metric_attrs: dict[_MetricKey, dict[str, Any]] = {}
        """Per topic, outcome, error type and dead reason: the other metrics' attributes."""
        self._ended: dict[_MetricKey, int] = {}
        self._waits: list[tuple[float, dict[str, Any]]] = []
        self._durations: list[tuple[float, dict[str, Any]]] = []
        """The histograms' values since the last flush, recorded there in one
        loop: the SDK's record costs a third less run back to back than
        spread among the consumer's own work."""
        self._remove_source: Callable[[], None] | None = None
        if self._meters is not None:
            source = t.GaugeSource(running, capacity, started)
            self._remove_source = self._meters.add_source(source)
        if self._tracer is not None:
            from opentelemetry import context, trace

            self._root = context.Context()  # no parent, whatever the runner task inherited
            self._consumer_kind = trace.SpanKind.CONSUMER
            self._client_kind = trace.SpanKind.CLIENT
            self._link = trace.Link

    def close(self) -> None:
        """The consumer stopped: add what is counted, leave the gauges."""
        self.flush()
        if self._remove_source is not None:
            self._remove_source()
            self._remove_source = None

    # -- attempts ---------------------------------------------------------------------

    def start(self, qid: str, item: Item, wait: float) -> Span | None:
        """An attempt started, *wait* seconds after its job was due: its span
        (None: not tracing)."""
        try:
            topic = item.topic
            meters = self._meters
            if meters is not None:
                attributes = self._topic_attrs.get(topic) or self._topic_attributes(topic)
                self._waits.append((wait, attributes))
            tracer = self._tracer
            if tracer is None:
                return None
            name, base = self._span_bases.get(topic) or self._span_base(topic)
            context = t.decode_context(item.trace) if item.trace else None
            attributes = {**base, t.MESSAGE_ID: item.item_id, t.QUEUE_ID: qid}
            attributes[t.ATTEMPT] = item.attempt
            return tracer.start_span(
                name,
                context=self._root,
                kind=self._consumer_kind,
                attributes=attributes,
                links=None if context is None else (self._link(context),),
            )
        except Exception:
            t.recording_failed()
            return None

    def _span_base(self, topic: str) -> tuple[str, dict[str, Any]]:
        base = self._span_bases[topic] = (
            f"process {topic}",
            {
                t.SYSTEM: t.SYSTEM_NAME, t.OPERATION_TYPE: "process", t.OPERATION_NAME: "process",
                t.DESTINATION: topic, t.CLIENT_ID: self._consumer_id,
            },
        )  # fmt: skip
        return base

    def _topic_attributes(self, topic: str) -> dict[str, Any]:
        found = self._topic_attrs[topic] = self._attrs(topic, None, None, None)
        return found

    def end(
        self,
        item: Item,
        span: Span | None,
        duration: float,
        outcome: Outcome | None,
        settlement: Settlement | None,
        *,
        error_type: str | None,
        exc: BaseException | None,
        batched: bool,
    ) -> None:
        """The attempt of *item* ended as *outcome* (None: nothing recorded),
        *duration* seconds after it started. *error_type*: why it failed, when
        it did; *batched*: its end is one of a settlement batch, after which
        :meth:`flush` runs."""
        try:
            lost = outcome is None or outcome is Outcome.LOST
            name = _LOST if outcome is None else outcome.value
            reason = None
            if outcome is Outcome.DEAD_LETTERED and settlement is not None:
                reason = settlement.dead_reason
                if reason == "unrecordable":
                    error_type = reason
            if span is not None:
                if span.is_recording():  # else the sampler dropped it: nothing to add
                    self._end_attributes(span, name, lost, settlement, reason, error_type, exc)
                span.end()
            meters = self._meters
            if meters is None:
                return
            topic = item.topic
            if name != _COMPLETED:  # no counter counts completions
                key = (topic, name, error_type, reason)
                self._ended[key] = self._ended.get(key, 0) + 1
            attributes = self._metric_attrs.get((topic, name, error_type, None))
            if attributes is None:
                attributes = self._attrs(topic, name, error_type, None)
            self._durations.append((duration, attributes))
            if not batched:
                self.flush()
        except Exception:
            t.recording_failed()

    @staticmethod
    def _end_attributes(
        span: Span,
        name: str,
        lost: bool,
        settlement: Settlement | None,
        reason: str | None,
        error_type: str | None,
        exc: BaseException | None,
    ) -> None:
        """A recording span's end attributes, in one call, and its error."""
        attributes: dict[str, Any] = {t.OUTCOME: name}
        if lost:  # set when true only: one attribute less on every other span
            attributes[t.LEASE_LOST] = True
        if settlement is not None:
            attributes[t.ACTION] = settlement.action.value
            if settlement.action is Action.SNOOZE:
                attributes[t.SNOOZE_DELAY] = settlement.delay_ms / 1000
        if reason is not None:
            attributes[t.DEAD_REASON] = reason
        span.set_attributes(attributes)
        if error_type is not None:
            # A lost attempt's error is its loss, whatever the handler did.
            if lost:
                message = LOST_WHY.get(error_type)
            else:
                message = settlement.error if settlement is not None else None
            t.record_error(span, exc, error_type, _first_line(message) or error_type)

    def flush(self) -> None:
        """Add the ends counted since the last flush, once per topic and
        outcome (the attempts started are the reporter's, observed)."""
        meters = self._meters
        if meters is None:
            return
        try:
            if self._waits:
                waits, self._waits = self._waits, []
                record = meters.wait_duration.record
                for value, attributes in waits:
                    record(value, attributes)
            if self._durations:
                durations, self._durations = self._durations, []
                record = meters.process_duration.record
                for value, attributes in durations:
                    record(value, attributes)
            if not self._ended:
                return
            ended, self._ended = self._ended, {}
            for (topic, name, error, reason), n in ended.items():
                if name == "retried":
                    meters.retries.add(n, self._attrs(topic, None, error, None))
                elif name == "dead_lettered":
                    meters.dead_letters.add(n, self._attrs(topic, None, error, reason))
                elif name == "released":
                    meters.released.add(n, self._attrs(topic, None, error, None))
                elif name == _LOST:
                    meters.lost.add(n, self._attrs(topic, None, error, None))
        except Exception:
            t.recording_failed()

    def _attrs(
        self, topic: str, outcome: str | None, error: str | None, reason: str | None
    ) -> dict[str, Any]:
        """The metric attributes of one topic (and outcome, error type, dead
        reason), made once: the same dict object for the same values."""
        key = (topic, outcome, error, reason)
        found = self._metric_attrs.get(key)
        if found is None:
            found = {t.SYSTEM: t.SYSTEM_NAME, t.OPERATION_NAME: "process", t.DESTINATION: topic}
            if outcome is not None:
                found[t.OUTCOME] = outcome
            if error is not None:
                found[t.ERROR_TYPE] = error
            if reason is not None:
                found[t.DEAD_REASON] = reason
            self._metric_attrs[key] = found
        return found

    # -- settlement batches -------------------------------------------------------------

    def start_settle(self, count: int) -> tuple[Span | None, float]:
        """A commit of *count* settlements starts: its span and start time."""
        span = None
        if self._tracer is not None:
            try:
                span = self._tracer.start_span(
                    "settle",
                    context=self._root,
                    kind=self._client_kind,
                    attributes={
                        t.SYSTEM: t.SYSTEM_NAME, t.OPERATION_TYPE: "settle",
                        t.OPERATION_NAME: "settle", t.BATCH_COUNT: count,
                        t.CLIENT_ID: self._consumer_id,
                    },
                )  # fmt: skip
            except Exception:
                t.recording_failed()
        return span, self._clock()

    def end_settle(self, span: Span | None, started: float, exc: BaseException | None) -> None:
        """The commit ended (raising *exc*, or not)."""
        try:
            kind = None if exc is None else t.error_type(exc)
            if span is not None:
                if exc is not None:
                    t.record_error(span, exc, kind or "", str(exc))
                span.end()
            if self._meters is not None:
                attributes = _SETTLE if kind is None else {**_SETTLE, t.ERROR_TYPE: kind}
                self._meters.operation_duration.record(
                    max(0.0, self._clock() - started), attributes
                )
        except Exception:
            t.recording_failed()


_SETTLE: Final = {t.SYSTEM: t.SYSTEM_NAME, t.OPERATION_NAME: "settle"}


def _first_line(text: str | None) -> str | None:
    """A failure's status message: the last line of its traceback (the error itself)."""
    if not text:
        return None
    lines = text.strip().splitlines()
    return lines[-1] if lines else None
