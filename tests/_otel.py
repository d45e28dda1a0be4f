"""OpenTelemetry SDK set-ups for the telemetry tests: providers passed to
quickq explicitly (the global ones can be set once per process), read back
through the SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import quickq


@attrs.define
class Sdk:
    """A tracer and a meter provider with in-memory readers, and the Telemetry using them."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    telemetry: quickq.Telemetry

    def finished(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(name_prefix)]

    def points(self, name: str) -> list[Any]:
        """Every data point of metric *name* (one per attribute set)."""
        return list(_points(self.reader, name))

    def total(self, name: str, **attributes: Any) -> float:
        """The sum of metric *name*'s points whose attributes include *attributes*."""
        return float(
            sum(
                p.value if hasattr(p, "value") else p.count
                for p in self.points(name)
                if all(p.attributes.get(k) == v for k, v in attributes.items())
            )
        )


def _points(reader: InMemoryMetricReader, name: str) -> Iterator[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    yield from metric.data.data_points


def make_sdk(**options: Any) -> Sdk:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = quickq.Telemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider, **options
    )
    return Sdk(spans, reader, telemetry)


def context_of(span: ReadableSpan) -> tuple[int, int]:
    ctx = span.get_span_context()
    assert ctx is not None
    return ctx.trace_id, ctx.span_id


def links_of(span: ReadableSpan) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]
