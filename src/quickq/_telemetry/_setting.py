"""``quickq.Telemetry``: where quickq sends its traces and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .._validate import check_bool, shown

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider


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
        check_bool(self.create_spans, "create_spans")
        # Checked by their one method quickq calls: the API's classes are
        # interfaces that SDKs need not subclass.
        for name, method in (("tracer_provider", "get_tracer"), ("meter_provider", "get_meter")):
            provider = getattr(self, name)
            if provider is not None and not callable(getattr(provider, method, None)):
                raise _invalid(
                    f"{name} must be an OpenTelemetry {name.title().replace('_', '')} "
                    f"with {method}() or None (got {shown(provider)})"
                )


def _invalid(message: str) -> Exception:
    from .._exceptions import InvalidArgumentError

    return InvalidArgumentError(message)


def check_telemetry(value: object) -> Telemetry | None:
    """*value* when it is a Telemetry or None, else InvalidArgumentError."""
    if value is not None and not isinstance(value, Telemetry):
        raise _invalid(f"telemetry must be a quickq.Telemetry or None (got {shown(value)})")
    return value
