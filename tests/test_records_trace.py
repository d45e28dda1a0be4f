"""The trace context in the item record: both stored forms, records written
before the field, extensions a reader does not know, and the room it takes;
and the default propagators' fast path, byte for byte what they would write."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from quickq import _telemetry
from quickq._core import DeadLetterRecord, Item, Lease, State, record_overhead
from quickq._limits import MAX_ID_CHARS, MAX_RETRIES_LIMIT, MAX_TOPIC_CHARS, TRACE_BYTES
from quickq._telemetry._context import _writes_w3c_only

# Written by quickq 0.1.0 (before the trace field): a running item with every
# optional field, the same item in the JSON format, and a dead letter.
OLD_BINARY = bytes.fromhex(
    "016c0f050000007b68e5cf8b0100000068e5cf8b010000030000000200000001000000050004006a6f62"
    "2d316d61696c0000000000002940abdde5cf8b010000020005006331746f6b2e310400626f6f6d0500"
    "746f6b2e307b22746f223a2261227d"
)
OLD_JSON = (
    b'{"id":"job-1","t":"mail","pr":5,"v":1700000000123,"mr":3,"eq":1700000000000,"w":"l",'
    b'"a":2,"e":1,"to":12.5,"l":["c1","tok.1",1700000030123],"le":"boom","sb":"tok.0"}'
    b'\x00{"to":"a"}'
)
OLD_DEAD = (
    b'{"r":"failed","e":"err","at":99}\x00\x01r\x00d\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00'
    b"\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00"
    b"\x04\x00job-2mailnull"
)
ITEM = Item(
    "job-1", "mail", b'{"to":"a"}', 5, 1700000000123, 3, 1700000000000, State.RUNNING, 2, 1,
    12.5, Lease("c1", "tok.1", 1700000030123), "boom", "tok.0",
)  # fmt: skip
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_records_written_before_the_field_still_read() -> None:
    assert Item.from_bytes(OLD_BINARY) == ITEM
    assert Item.from_bytes(OLD_JSON) == ITEM
    dead = DeadLetterRecord.from_bytes(OLD_DEAD)
    assert dead.item.item_id == "job-2" and dead.item.trace is None
    assert (dead.reason, dead.error, dead.died_at) == ("failed", "err", 99)
    # And a record without a trace is written exactly as before.
    assert ITEM.to_bytes() == OLD_BINARY
    assert ITEM.to_json_bytes() == OLD_JSON


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": PARENT},
        {"traceparent": PARENT, "tracestate": "rojo=00f067aa0ba902b7"},
        {"traceparent": PARENT, "baggage": "user=7"},
        {"uber-trace-id": "abc:def:0:1"},
    ],
)
def test_each_form_round_trips_through_both_formats(carrier: dict[str, str]) -> None:
    trace = _telemetry.encode_carrier(carrier)
    assert trace is not None
    if len(carrier) == 1 and "traceparent" in carrier:
        assert len(trace) == 26 and trace[0] == 0  # the compact form
    else:
        assert trace[0] == 1 and json.loads(trace[1:]) == carrier
    assert _telemetry.carrier_of(trace) == carrier
    item = attrs.evolve(ITEM, trace=trace)
    for data in (item.to_bytes(), item.to_json_bytes()):
        assert Item.from_bytes(data) == item
    # The field survives a retry, a release, a dead letter, a replay's evolve.
    back = Item.from_bytes(attrs.evolve(item, lease=None, attempt=0).to_bytes())
    assert back.trace == trace
    dead = DeadLetterRecord(attrs.evolve(item, lease=None), "failed", "boom", 1)
    assert DeadLetterRecord.from_bytes(dead.to_bytes()).item.trace == trace
    assert item.leased(Lease("c2", "tok.2", 9)).trace == trace


def test_the_compact_form_decodes_to_the_span_context() -> None:
    context = _telemetry.decode_context(_telemetry.encode_carrier({"traceparent": PARENT}))
    assert context is not None
    assert context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert context.span_id == 0xB7AD6B7169203331
    assert context.trace_flags == 1 and context.is_remote
    with_state = _telemetry.encode_carrier({"traceparent": PARENT, "tracestate": "a=b"})
    other = _telemetry.decode_context(with_state)
    assert other is not None and other.span_id == context.span_id
    assert other.trace_state.get("a") == "b"
    for bad in (None, b"", b"\x00short", b"\x07" * 26, b"\x01not json"):
        assert _telemetry.decode_context(bad) is None


def test_a_carrier_over_the_cap_keeps_its_traceparent() -> None:
    big = {"traceparent": PARENT, "baggage": "k=" + "v" * TRACE_BYTES}
    trace = _telemetry.encode_carrier(big)
    assert trace is not None and len(trace) == 26
    assert _telemetry.carrier_of(trace) == {"traceparent": PARENT}
    assert _telemetry.encode_carrier({"baggage": "k=" + "v" * TRACE_BYTES}) is None
    assert _telemetry.encode_carrier({}) is None


def test_an_unknown_extension_is_skipped() -> None:
    trace = _telemetry.encode_carrier({"traceparent": PARENT})
    assert trace is not None
    data = bytearray(attrs.evolve(ITEM, trace=trace).to_bytes())
    # A later version's extension (flag 32), after the trace field, before the payload.
    payload_at = len(data) - len(ITEM.payload)
    data[2] |= 32
    data[payload_at:payload_at] = b"\x03\x00xyz"
    assert Item.from_bytes(bytes(data)) == attrs.evolve(ITEM, trace=trace)
    # And alone, without the trace field.
    plain = bytearray(ITEM.to_bytes())
    plain[2] |= 64
    at = len(plain) - len(ITEM.payload)
    plain[at:at] = b"\x00\x00"  # an empty one
    assert Item.from_bytes(bytes(plain)) == ITEM


def test_the_record_overhead_keeps_room_for_a_full_trace_field() -> None:
    from quickq._queue import MAX_PAYLOAD_BYTES, MAX_VALUE_BYTES

    overhead = record_overhead(
        id_chars=MAX_ID_CHARS, topic_chars=MAX_TOPIC_CHARS, max_retries=MAX_RETRIES_LIMIT
    )
    assert MAX_VALUE_BYTES - overhead == MAX_PAYLOAD_BYTES
    longest = attrs.evolve(
        ITEM,
        item_id="\U0001f600" * MAX_ID_CHARS,
        topic="t" * MAX_TOPIC_CHARS,
        payload=b"",
        last_error="e" * 3_998,
        trace=b"\x01" + b"x" * (TRACE_BYTES - 1),
    )
    assert len(longest.to_bytes()) <= overhead
    without = attrs.evolve(longest, trace=None)
    assert len(longest.to_bytes()) - len(without.to_bytes()) == TRACE_BYTES + 2
    assert MAX_PAYLOAD_BYTES == 94_395  # 258 bytes less than 0.1.0's 94,653


def test_the_largest_job_with_the_largest_trace_context_fits_at_every_step() -> None:
    """As tests/test_limits.py's payload test, with a trace context at its cap
    (baggage makes the carrier JSON): leased, retried with the longest error,
    dead-lettered, every record within the store's value limit."""
    import trio
    from opentelemetry import baggage, context

    import quickq
    from quickq import _core
    from quickq._queue import MAX_PAYLOAD_BYTES
    from quickq.stores import MemoryStore

    from ._otel import make_sdk
    from ._stores import run_virtual, virtual_clock

    sdk = make_sdk()
    jobs = quickq.JobRegistry()
    topic = "t" * MAX_TOPIC_CHARS

    @jobs.job(topic, backoff=quickq.Backoff(base=1.0, jitter=0.0))
    async def fail(payload: object, meta: quickq.JobMeta) -> None:
        raise RuntimeError("\U0001f600" * 5_000)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        longest: dict[str, object] = {"job_id": "\U0001f601" * MAX_ID_CHARS, "max_retries": 1}
        token = context.attach(baggage.set_baggage("k", "v" * (TRACE_BYTES - 120)))
        try:
            job = await queue.enqueue("q", topic, "x" * (MAX_PAYLOAD_BYTES - 2), **longest)  # type: ignore[arg-type]
        finally:
            context.detach(token)
        item = await store.transact(lambda tr: _core.read_item(tr, queue._layout, "q", job.job_id))
        assert item is not None and item.trace is not None
        assert item.trace[0] == 1 and TRACE_BYTES - 40 < len(item.trace) <= TRACE_BYTES
        async with quickq.open_consumer(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry):
            with trio.fail_after(600):
                while (await queue.stats("q")).dead < 1:  # noqa: ASYNC110
                    await trio.sleep(0.5)
        (dead,) = await queue.dead_letters("q")
        assert (dead.job.attempt, dead.reason) == (2, "failed")  # not "unrecordable"
        raw = store.raw_get(queue._layout.dead_letter("q", job.job_id))
        assert raw is not None and len(raw) <= 100_000
        assert DeadLetterRecord.from_bytes(raw).item.trace == item.trace
        links = [s.links for s in sdk.finished("process")]
        assert len(links) == 2 and all(len(x) == 1 for x in links)

    run_virtual(main)


def _as_propagators_write_it(span: otel_trace.Span) -> bytes | None:
    """The general path: the global propagators' carrier, then encoded."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=otel_trace.set_span_in_context(span))
    return _telemetry.encode_carrier(carrier)


@given(
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    flags=st.sampled_from([0, 1, 2, 0xFF]),
    state=st.sampled_from([(), (("rojo", "00f067aa0ba902b7"),)]),
    baggage_value=st.sampled_from([None, "7"]),
)
def test_the_default_propagators_fast_path_writes_what_they_would(
    trace_id: int, span_id: int, flags: int, state: tuple[tuple[str, str], ...],
    baggage_value: str | None,
) -> None:  # fmt: skip
    context = otel_trace.SpanContext(
        trace_id, span_id, False, otel_trace.TraceFlags(flags), otel_trace.TraceState(state)
    )
    span = otel_trace.NonRecordingSpan(context)
    assert _writes_w3c_only(propagate.get_global_textmap())  # the default: the fast path
    token = None
    if baggage_value is not None:
        token = otel_context.attach(otel_baggage.set_baggage("user", baggage_value))
    try:
        trace = _telemetry.inject(span)
        assert trace == _as_propagators_write_it(span)
    finally:
        if token is not None:
            otel_context.detach(token)
    decoded = _telemetry.decode_context(trace)
    assert decoded is not None
    assert (decoded.trace_id, decoded.span_id, decoded.trace_flags) == (trace_id, span_id, flags)


class _Uber(TextMapPropagator):
    """A propagator of another format, as an application may set."""

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        span_context = otel_trace.get_current_span(context).get_span_context()
        carrier["uber-trace-id"] = f"{span_context.trace_id:x}:{span_context.span_id:x}:0:1"

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        return context

    @property
    def fields(self) -> set[str]:
        return {"uber-trace-id"}


@pytest.mark.parametrize(
    "propagator",
    [
        _Uber(),
        CompositePropagator([TraceContextTextMapPropagator(), _Uber()]),
        CompositePropagator([W3CBaggagePropagator()]),  # no traceparent written
        TraceContextTextMapPropagator(),
    ],
)
def test_other_propagators_write_what_they_write(propagator: TextMapPropagator) -> None:
    span = otel_trace.NonRecordingSpan(
        otel_trace.SpanContext(0xABC, 0xDEF, False, otel_trace.TraceFlags(1))
    )
    default = propagate.get_global_textmap()
    propagate.set_global_textmap(propagator)
    try:
        assert _telemetry.inject(span) == _as_propagators_write_it(span)
    finally:
        propagate.set_global_textmap(default)
    invalid = otel_trace.NonRecordingSpan(otel_trace.INVALID_SPAN_CONTEXT)
    assert _telemetry.inject(invalid) is None
