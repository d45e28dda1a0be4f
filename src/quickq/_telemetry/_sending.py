"""The producer's spans and metrics: one enqueue call's ``send`` span (and
a ``create`` span per job of a batch), the jobs it counts, its duration."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

with contextlib.suppress(ImportError):  # without the quickq[otel] extra, unused
    from opentelemetry import trace as otel_trace

if TYPE_CHECKING:
    from opentelemetry.trace import Span

from ._context import inject
from ._errors import error_type, guarded, record_error
from ._instruments import Instruments
from ._names import (
    BATCH_COUNT,
    DESTINATION,
    ERROR_TYPE,
    MESSAGE_ID,
    OPERATION_NAME,
    OPERATION_TYPE,
    QUEUE_ID,
    SYSTEM,
    SYSTEM_NAME,
)


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
