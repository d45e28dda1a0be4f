"""The job's creation context, as its record keeps it (``Item.trace``): the
W3C ``traceparent`` alone in 26 bytes, anything else (``tracestate``,
baggage, other propagators) as the carrier's compact JSON, at most
TRACE_BYTES. ``_core`` stores the bytes and never imports OpenTelemetry.
And the handler's current span (:func:`attach`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from .._limits import TRACE_BYTES

try:
    from opentelemetry import baggage as otel_baggage
    from opentelemetry import context as otel_context
    from opentelemetry import propagate
    from opentelemetry import trace as otel_trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _FLAGS = {0: otel_trace.TraceFlags(0), 1: otel_trace.TraceFlags(1)}
    """The usual trace flags, made once (unsampled, sampled)."""
except ImportError:  # the quickq[otel] extra is not installed
    pass

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanContext

_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_BINARY: Final = 0
_CARRIER: Final = 1


def inject(span: Span) -> bytes | None:
    """The creation context of *span* (with the current baggage), as the
    application's propagators write it, encoded for the job record."""
    context = span.get_span_context()
    if (
        _writes_w3c_only(propagate.get_global_textmap())
        and not context.trace_state
        and not otel_baggage.get_all()
    ):
        # What those propagators would write, a lone traceparent, encoded
        # without writing and parsing its text (3.4 -> 0.5 us a job).
        if not context.is_valid:
            return None
        flags = bytes((_BINARY, context.trace_flags & 0xFF))
        return flags + context.trace_id.to_bytes(16) + context.span_id.to_bytes(8)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=otel_trace.set_span_in_context(span))
    return encode_carrier(carrier)


def _writes_w3c_only(propagator: object) -> bool:
    """Whether *propagator* is W3C trace context (with or without baggage)
    as the SDK's own classes write it: the default, unless the application
    set others. Judged once per propagator object."""
    global _judged
    if _judged[0] is not propagator:
        _judged = (propagator, _judge(propagator))
    return _judged[1]


_judged: tuple[object, bool] = (None, False)
"""The last propagator judged, and the verdict."""


def _judge(propagator: object) -> bool:
    # A composite keeps its parts in a private list: read it only of the
    # SDK's own class; any other shape takes the general path.
    composite = type(propagator) is CompositePropagator
    parts = getattr(propagator, "_propagators", None) if composite else [propagator]
    if not isinstance(parts, list):
        return False
    kinds = {type(p) for p in parts}
    return TraceContextTextMapPropagator in kinds and kinds <= {
        TraceContextTextMapPropagator,
        W3CBaggagePropagator,
    }


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


def attach(span: Span) -> Token[Context]:
    """Make *span* the current span of this task (the handler's spans are its
    children) until :func:`detach` with the returned token."""
    return otel_context.attach(otel_trace.set_span_in_context(span))


def detach(token: Token[Context]) -> None:
    otel_context.detach(token)
