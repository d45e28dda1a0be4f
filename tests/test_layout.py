"""The key layout is fdb.tuple encoding of the documented tuples, prefixes cached or not."""

from __future__ import annotations

import struct

import attrs
import fdb.tuple as fdb_tuple
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quickq._core import DeadLetterRecord, Item, Layout, Lease, State
from quickq._core._keys import _pack, _unpack
from quickq._core._records import BINARY_FORMAT

ids = st.text(min_size=1, max_size=40)
times = st.integers(min_value=0, max_value=2**53)
priorities = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@given(qid=ids, item_id=ids, priority=priorities, vesting=times)
def test_keys_are_the_tuple_encoding_of_the_documented_layout(
    qid: str, item_id: str, priority: int, vesting: int
) -> None:
    layout = Layout(("app", 7))
    root = ("app", 7, "q", qid)
    assert layout.item(qid, item_id) == fdb_tuple.pack((*root, "i", item_id))
    ready = layout.ready(qid, priority, vesting, item_id)
    assert ready == fdb_tuple.pack((*root, "r", priority, vesting, item_id))
    assert layout.tail(qid, ready, "r") == (priority, vesting, item_id)
    assert layout.scheduled(qid, vesting, item_id) == fdb_tuple.pack((*root, "s", vesting, item_id))
    assert layout.dead_letter(qid, item_id) == fdb_tuple.pack((*root, "d", item_id))
    begin, end = layout.range(qid, "r")
    assert begin < ready < end
    assert not begin <= layout.item(qid, item_id) < end
    assert layout.parse_pointer(layout.pointer(vesting, qid)) == (vesting, qid)


def test_item_records_round_trip() -> None:
    item = Item(
        item_id="x",
        topic="t",
        payload=b'{"a": "\\u0000 NUL inside"}',
        priority=3,
        vesting=10,
        max_retries=2,
        enqueued_at=5,
        state=State.RUNNING,
        attempt=1,
        lease=Lease("c", "l1", 99),
        last_error="boom\x00",
    )
    assert Item.from_bytes(item.to_bytes()) == item
    assert Item.from_bytes(item.to_json_bytes()) == item


texts = st.text(max_size=30)  # any code points, lone surrogates included
ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=300)
@given(
    item=st.builds(
        Item,
        item_id=texts,
        topic=texts,
        payload=st.binary(max_size=40),
        priority=ints,
        vesting=longs,
        max_retries=ints,
        enqueued_at=longs,
        state=st.sampled_from(State),
        attempt=ints,
        errors=ints,
        timeout=st.none() | st.floats(allow_nan=False),
        lease=st.none() | st.builds(Lease, texts, texts, longs),
        last_error=st.none() | texts,
        settled_by=st.none() | texts,
    )
)
def test_both_formats_round_trip_every_item(item: Item) -> None:
    binary = item.to_bytes()
    assert binary[:1] == bytes([BINARY_FORMAT])
    assert Item.from_bytes(binary) == item
    assert Item.from_bytes(item.to_json_bytes()) == item
    dead = DeadLetterRecord(item, "failed", item.last_error, 7)
    assert DeadLetterRecord.from_bytes(dead.to_bytes()) == dead


def test_integers_beyond_the_binary_fields_are_stored_as_json() -> None:
    """Times were not always bounded: such a record is still written, as JSON."""
    item = Item("x", "t", b"{}", 3, 10**300, 2, -(10**300), State.SCHEDULED)
    assert item.to_bytes() == item.to_json_bytes()
    assert Item.from_bytes(item.to_bytes()) == item


def test_a_record_of_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="known format"):
        Item.from_bytes(b"\x02" + Item("x", "t", b"", 3, 10, 2, 5, State.PENDING).to_bytes()[1:])


SAMPLE = Item(
    item_id="x",
    topic="t",
    payload=b"{}",
    priority=3,
    vesting=10,
    max_retries=2,
    enqueued_at=5,
    state=State.RUNNING,
    attempt=1,
    lease=Lease("c", "l1", 99),
    last_error="boom",
    settled_by="s",
)


def test_stored_bytes_keep_their_format() -> None:
    """Records and index keys are stored: these bytes must read back forever."""
    stored = (
        b"\x01l\x0e"  # format 1, state "l", flags: lease, last error, settled_by
        b"\x03\x00\x00\x00"  # priority (int32, little-endian)
        b"\x0a\x00\x00\x00\x00\x00\x00\x00"  # vesting (int64)
        b"\x05\x00\x00\x00\x00\x00\x00\x00"  # enqueued_at (int64)
        b"\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"  # max_retries, attempt, errors
        b"\x01\x00\x01\x00xt"  # the lengths of id and topic (uint16), then both
        b"\x63\x00\x00\x00\x00\x00\x00\x00\x01\x00\x02\x00cl1"  # lease: expiry, holder, id
        b"\x04\x00boom\x01\x00s"  # last error, settled_by
        b"{}"  # the payload
    )
    assert SAMPLE.to_bytes() == stored
    assert Item.from_bytes(stored) == SAMPLE
    timed = attrs.evolve(SAMPLE, lease=None, last_error=None, settled_by=None, timeout=0.5)
    assert timed.to_bytes() == stored[:2] + b"\x01" + stored[3:41] + b"\x00" * 6 + b"\xe0?{}"
    pending = Item("x", "t", b"{}", 3, 10, 2, 5, State.PENDING)
    dead = DeadLetterRecord(pending, "failed", "boom", 7)
    assert dead.to_bytes() == b'{"r":"failed","e":"boom","at":7}\x00' + pending.to_bytes()
    assert pending.to_bytes() == b"\x01r\x00" + stored[3:27] + b"\x00" * 8 + stored[35:41] + b"{}"
    queue = b"\x02quickq\x00\x02q\x00\x02q\x00"
    layout = Layout()
    assert layout.ready("q", 1, 2, "a") == queue + b"\x02r\x00\x15\x01\x15\x02\x02a\x00"
    assert layout.scheduled("q", 2, "a") == queue + b"\x02s\x00\x15\x02\x02a\x00"
    assert layout.leased("q", 2, "a") == queue + b"\x02l\x00\x15\x02\x02a\x00"
    assert layout.dead_letter("q", "a") == queue + b"\x02d\x00\x02a\x00"
    assert [layout.range("q", state)[0] for state in State] == [
        queue + tag + b"\x00" for tag in (b"\x02r\x00", b"\x02s\x00", b"\x02l\x00")
    ]


def test_records_of_the_json_format_still_read() -> None:
    """Stores written before the binary format hold JSON records: they read
    back as they were, and are rewritten in the binary format."""
    stored = (
        b'{"id":"x","t":"t","pr":3,"v":10,"mr":2,"eq":5,"w":"l","a":1,"e":0,"to":null,'
        b'"l":["c","l1",99],"le":"boom","sb":"s"}\x00{}'
    )
    assert Item.from_bytes(stored) == SAMPLE
    assert SAMPLE.to_json_bytes() == stored
    dead = (
        b'{"r":"failed","e":"boom","at":7}\x00{"id":"x","t":"t","pr":3,"v":10,"mr":2,"eq":5,'
        b'"w":"r","a":0,"e":0,"to":null,"l":null,"le":null,"sb":null}\x00{}'
    )
    pending = Item("x", "t", b"{}", 3, 10, 2, 5, State.PENDING, last_error="boom")
    assert DeadLetterRecord.from_bytes(dead) == DeadLetterRecord(pending, "failed", "boom", 7)
    timed = b'{"id":"x","t":"t","pr":3,"v":10,"mr":2,"eq":5,"w":"s","a":0,"e":0,"to":0.5,'
    timed += b'"l":null,"le":null,"sb":null}\x00\x00NUL-led payload'
    item = Item.from_bytes(timed)
    assert (item.state, item.timeout, item.payload) == (
        State.SCHEDULED,
        0.5,
        b"\x00NUL-led payload",
    )


@settings(max_examples=500)
@given(
    st.lists(
        st.one_of(
            st.text(),
            st.integers(min_value=-(1 << 70), max_value=1 << 70),
            st.booleans(),
            st.none(),
            st.binary(),
        ),
        max_size=5,
    )
)
def test_fast_key_packing_is_the_bindings_encoding(parts: list[object]) -> None:
    assert _pack(tuple(parts)) == fdb_tuple.pack(tuple(parts))
    assert _unpack(fdb_tuple.pack(tuple(parts))) == fdb_tuple.unpack(fdb_tuple.pack(tuple(parts)))


edges = [0, 1, -1, 255, -255, 256, -256, 2**63, -(2**63), 2**64 - 2, -(2**64 - 2)]
edges += [2**64 - 1, -(2**64 - 1), 2**64, -(2**64), 10**300, -(10**300)]


@given(qid=ids, item_id=ids, n=st.sampled_from(edges) | st.integers(), m=st.integers())
def test_the_hot_keys_are_the_bindings_encoding_at_every_int(
    qid: str, item_id: str, n: int, m: int
) -> None:
    layout = Layout()
    root = ("quickq", "q", qid)
    assert layout.ready(qid, n, m, item_id) == fdb_tuple.pack((*root, "r", n, m, item_id))
    assert layout.scheduled(qid, n, item_id) == fdb_tuple.pack((*root, "s", n, item_id))
    assert layout.leased(qid, n, item_id) == fdb_tuple.pack((*root, "l", n, item_id))
    assert layout.tail(qid, layout.ready(qid, n, m, item_id), "r") == (n, m, item_id)
    assert _pack((n, item_id)) == fdb_tuple.pack((n, item_id))


def test_fast_key_unpacking_refuses_what_the_bindings_refuse() -> None:
    bad: list[tuple[bytes, type[Exception]]] = [
        (b"\x16\x01", struct.error),  # an int cut short
        (b"\x02\xff\xfe\x00", UnicodeDecodeError),
    ]
    for key, error in bad:
        with pytest.raises(error):
            _unpack(key)
        with pytest.raises(error):
            fdb_tuple.unpack(key)
    assert _unpack(b"\x02a\x00\xffb") == fdb_tuple.unpack(b"\x02a\x00\xffb") == ("a\x00b",)
