"""OpenTelemetry for the ``-otel`` quickq systems: what an application with
an SDK set up runs, with exporters that drop everything, so the measurement is
quickq's instrumentation and the SDK's own work (a BatchSpanProcessor, a
metric reader collecting every second), not a network. ``otel="sdk"``
samples every span (AlwaysOn); ``otel="sampled"`` keeps the metrics and
samples one trace in a hundred (``ParentBased(TraceIdRatioBased(0.01))``),
the set-up docs/observability.md advises for a busy queue.

The environment variable ``QUICKQ_BENCH_OTEL`` sets another configuration
for the ``-otel`` systems of one run (the full run's time budget has no room
for a system per configuration): ``metrics`` (metrics only), ``traces``
(every span, no metrics), ``traces-sampled`` (one trace in a hundred, no
metrics), or ``sdk`` and ``sampled`` as above. The systems without ``-otel``
are the API without an SDK (the API's proxies: nothing recorded).

The SDK comes with quickq's test extra, which the project's environment (the
one quickq's systems run in) installs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import _common as c

SCENARIOS = ("drain",)
"""Where the instrumentation's cost is measured (bench/timing.py knows it too):
the full run's time budget has room for one scenario more per system."""
_DONE: list[bool] = []


SAMPLED_RATIO = 0.01
"""The share of traces the sampled configurations record."""
SETTINGS: dict[str, tuple[str | None, bool]] = {
    "sdk": ("all", True),
    "sampled": ("ratio", True),
    "metrics": (None, True),
    "traces": ("all", False),
    "traces-sampled": ("ratio", False),
}
"""Per configuration: which spans are sampled (None: no tracer provider), and
whether a meter provider is set."""


def set_up(p: dict[str, Any]) -> None:
    """Set the global providers when the system asks for them (``otel``), as
    ``QUICKQ_BENCH_OTEL`` says if set (see the module docstring)."""
    if not p.get("otel"):
        return
    setting = os.environ.get("QUICKQ_BENCH_OTEL") or str(p["otel"])
    if setting not in SETTINGS:
        raise ValueError(f"QUICKQ_BENCH_OTEL: one of {', '.join(SETTINGS)} (got {setting!r})")
    spans, with_metrics = SETTINGS[setting]
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

    if spans is not None:
        sampler = ALWAYS_ON if spans == "all" else ParentBased(TraceIdRatioBased(SAMPLED_RATIO))
        tracer_provider = TracerProvider(sampler=sampler)
        tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
        trace.set_tracer_provider(tracer_provider)
    if with_metrics:
        reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1_000)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
