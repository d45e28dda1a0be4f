"""OpenTelemetry for the ``-otel`` quickq systems: what an application with
an SDK set up runs, with exporters that drop everything, so the measurement is
quickq's instrumentation and the SDK's own work (a BatchSpanProcessor, a
metric reader collecting every second), not a network. ``otel="sdk"``
samples every span (AlwaysOn); ``otel="sampled"`` keeps the metrics and
samples one trace in a hundred (``ParentBased(TraceIdRatioBased(0.01))``),
the set-up docs/observability.md advises for a busy queue.

The SDK comes with quickq's test extra, which the project's environment (the
one quickq's systems run in) installs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _common as c

SCENARIOS = ("drain",)
"""Where the instrumentation's cost is measured (bench/timing.py knows it too):
the full run's time budget has room for one scenario more per system."""
_DONE: list[bool] = []


SAMPLED_RATIO = 0.01
"""The share of traces ``otel="sampled"`` records."""


def set_up(p: dict[str, Any]) -> None:
    """Set the global providers when the system asks for them (``otel``: ``sdk`` or ``sampled``)."""
    setting = p.get("otel")
    if setting not in ("sdk", "sampled"):
        return
    if p["scenario"] not in SCENARIOS:
        raise c.NotApplicable(f"the SDK's cost is measured on {', '.join(SCENARIOS)}")
    if _DONE:
        return  # the global providers can be set once per process
    _DONE.append(True)
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    sampler = ALWAYS_ON if setting == "sdk" else ParentBased(TraceIdRatioBased(SAMPLED_RATIO))
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
