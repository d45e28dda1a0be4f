"""The key layout is fdb.tuple encoding of the documented tuples, prefixes cached or not."""

from __future__ import annotations

import fdb.tuple as fdb_tuple
from hypothesis import given, settings
from hypothesis import strategies as st

from quickq._core import DeadLetterRecord, Item, Layout, Lease, State
from quickq._core._keys import _pack

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


def test_stored_bytes_keep_their_format() -> None:
    """Records and index keys are stored: these bytes must read back forever."""
    item = Item(
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
    stored = (
        b'{"id":"x","t":"t","pr":3,"v":10,"mr":2,"eq":5,"w":"l","a":1,"e":0,"to":null,'
        b'"l":["c","l1",99],"le":"boom","sb":"s"}\x00{}'
    )
    assert item.to_bytes() == stored
    assert Item.from_bytes(stored) == item
    pending = Item("x", "t", b"{}", 3, 10, 2, 5, State.PENDING)
    dead = DeadLetterRecord(pending, "failed", "boom", 7)
    assert dead.to_bytes() == (
        b'{"r":"failed","e":"boom","at":7}\x00{"id":"x","t":"t","pr":3,"v":10,"mr":2,"eq":5,'
        b'"w":"r","a":0,"e":0,"to":null,"l":null,"le":null,"sb":null}\x00{}'
    )
    queue = b"\x02quickq\x00\x02q\x00\x02q\x00"
    layout = Layout()
    assert layout.ready("q", 1, 2, "a") == queue + b"\x02r\x00\x15\x01\x15\x02\x02a\x00"
    assert layout.scheduled("q", 2, "a") == queue + b"\x02s\x00\x15\x02\x02a\x00"
    assert layout.leased("q", 2, "a") == queue + b"\x02l\x00\x15\x02\x02a\x00"
    assert layout.dead_letter("q", "a") == queue + b"\x02d\x00\x02a\x00"
    assert [layout.range("q", state)[0] for state in State] == [
        queue + tag + b"\x00" for tag in (b"\x02r\x00", b"\x02s\x00", b"\x02l\x00")
    ]


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
