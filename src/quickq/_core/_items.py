"""Reading and writing one item: its record, its index entry and its counters.

Every operation that changes an item goes through these writes, so an item
always sits in exactly one index (the one its state names) and the counters
move with it. They take no read conflicts of their own: the operation that
calls them decides what it relies on. An operation on a batch of items
gathers their counter changes in a :class:`Tally` and adds each counter once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs

from ..stores._protocol import Transaction
from ._keys import Layout, State
from ._records import DeadLetterRecord, DeadReason, Item, truncate_error

MsClock = Callable[[], int]
"""The time in ms, read by fencing operations after their reads."""

DEAD: Final = "dead"
"""The counter of dead letters (its stored key; "dead letters" everywhere else)."""


async def read_item(
    tr: Transaction, layout: Layout, qid: str, item_id: str, *, snapshot: bool = False
) -> Item | None:
    """The record of live item *item_id* of *qid*, or None (absent, or a dead letter)."""
    raw = await tr.get(layout.item(qid, item_id), snapshot=snapshot)
    return None if raw is None else Item.from_bytes(raw)


async def read_dead_letter(
    tr: Transaction, layout: Layout, qid: str, item_id: str, *, snapshot: bool = False
) -> DeadLetterRecord | None:
    """The dead letter *item_id* of *qid*, or None."""
    raw = await tr.get(layout.dead_letter(qid, item_id), snapshot=snapshot)
    return None if raw is None else DeadLetterRecord.from_bytes(raw)


def count(tr: Transaction, layout: Layout, qid: str, counter: State | str, delta: int) -> None:
    """Adjust a counter, named directly (``dead``) or by the state it counts."""
    name = counter.counter if isinstance(counter, State) else counter
    tr.add(layout.counter(qid, name), delta)


class Tally:
    """Counter changes gathered over a batch, then added once per counter.

    Atomic adds commute, so the counters end the same as with one add per
    item. The commit carries one mutation per counter either way (FoundationDB's
    client, like quickq's stores, coalesces adds to one key); the batch saves
    the work of one or two adds per item.
    """

    __slots__ = ("_deltas",)

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, str], int] = {}

    def count(self, qid: str, counter: State | str, delta: int) -> None:
        """Adjust a counter by *delta*, named as :func:`count` names it."""
        key = (qid, counter.counter if isinstance(counter, State) else counter)
        self._deltas[key] = self._deltas.get(key, 0) + delta

    def flush(self, tr: Transaction, layout: Layout) -> None:
        """Add what was gathered (nothing for a net change of zero), and start over."""
        for (qid, name), delta in self._deltas.items():
            if delta:
                tr.add(layout.counter(qid, name), delta)
        self._deltas.clear()


def put(tr: Transaction, layout: Layout, qid: str, item: Item) -> None:
    """Write *item*'s record and its index entry (counters are the caller's)."""
    tr.set(layout.item(qid, item.item_id), item.to_bytes())
    tr.set(item.index_key(layout, qid), b"")


def move(
    tr: Transaction,
    layout: Layout,
    qid: str,
    old: Item,
    new: Item,
    tally: Tally | None = None,
    *,
    keys: tuple[bytes, bytes] | None = None,
) -> None:
    """Rewrite *old* as *new*, moving its index entry and counters (into
    *tally* when given, else at once). *keys*, when the caller has them at
    hand: the keys of the item's record and of *old*'s index entry."""
    record, index = keys or (layout.item(qid, old.item_id), old.index_key(layout, qid))
    tr.clear(index)
    tr.set(record, new.to_bytes())
    tr.set(new.index_key(layout, qid), b"")
    if old.state is not new.state:
        if tally is None:
            count(tr, layout, qid, old.state, -1)
            count(tr, layout, qid, new.state, 1)
        else:
            tally.count(qid, old.state, -1)
            tally.count(qid, new.state, 1)


def remove(
    tr: Transaction, layout: Layout, qid: str, item: Item, tally: Tally | None = None
) -> None:
    """Delete *item*'s record and index entry, and uncount it (in *tally* when given)."""
    tr.clear(layout.item(qid, item.item_id))
    tr.clear(item.index_key(layout, qid))
    if tally is None:
        count(tr, layout, qid, item.state, -1)
    else:
        tally.count(qid, item.state, -1)


def dead_letter(
    tr: Transaction,
    layout: Layout,
    qid: str,
    item: Item,
    reason: DeadReason,
    error: str | None,
    now: int,
    settled_by: str | None,
    tally: Tally | None = None,
) -> None:
    """Move *item* out of the queue into its dead letter, with why and when.

    *settled_by* is the lease id of the attempt that dead-letters it (None when
    its lease expired), so a re-run of that settlement recognises its commit.
    """
    remove(tr, layout, qid, item, tally)
    error = truncate_error(error)
    kept = attrs.evolve(item, lease=None, last_error=error, settled_by=settled_by)
    tr.set(
        layout.dead_letter(qid, item.item_id), DeadLetterRecord(kept, reason, error, now).to_bytes()
    )
    if tally is None:
        count(tr, layout, qid, DEAD, 1)
    else:
        tally.count(qid, DEAD, 1)
