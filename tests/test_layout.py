"""The key layout is fdb.tuple encoding of the documented tuples, prefixes cached or not."""

from __future__ import annotations

import fdb.tuple as fdb_tuple
from hypothesis import given, settings
from hypothesis import strategies as st

from quickq._core import Item, Layout, Lease, State
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
