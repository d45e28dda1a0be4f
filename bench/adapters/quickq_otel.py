"""OpenTelemetry for the ``-otel`` quickq systems: what an application with
an SDK set up runs, with exporters that drop everything, so the measurement is
quickq's instrumentation and the SDK's own work (spans sampled AlwaysOn, a
BatchSpanProcessor, a metric reader collecting every second), not a network.

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


def set_up(p: dict[str, Any]) -> None:
    """Set the global providers when the system asks for them (``otel="sdk"``)."""
    if p.get("otel") != "sdk":
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
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

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

    tracer_provider = TracerProvider(sampler=ALWAYS_ON)
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
