"""Inspection and control: counters, listings, dead letters, cancel, queue names.

Listings and counters are snapshot reads (stats never conflict with the
consumers' work). Control operations (replay, purge, cancel) change one job
and report whether they found it; :func:`quickq._core.run_once` makes each
call's answer survive a re-run after commit-unknown-result.
"""

from __future__ import annotations

import attrs

from ..stores._protocol import Transaction, decode_counter
from ._items import DEAD, count, put, read_dead_letter, read_item, remove
from ._keys import Layout, State
from ._pointers import mark_due
from ._records import COUNTERS, DeadLetterRecord, Item


async def counters(tr: Transaction, layout: Layout, qid: str) -> dict[str, int]:
    """The queue's counters (snapshot reads: stats never conflict)."""
    return {
        name: decode_counter(await tr.get(layout.counter(qid, name), snapshot=True))
        for name in COUNTERS
    }


async def list_items(
    tr: Transaction, layout: Layout, qid: str, state: State, limit: int
) -> list[Item]:
    """Items in one state, in its index's order (run order for pending ones)."""
    begin, end = layout.range(qid, state)
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    found = []
    for key, _ in rows:
        item = await read_item(tr, layout, qid, layout.tail(qid, key, state)[-1])
        if item is not None:
            found.append(item)
    return found


async def dead_letters(
    tr: Transaction, layout: Layout, qid: str, limit: int
) -> list[DeadLetterRecord]:
    """Up to *limit* dead letters of *qid*, by id (snapshot read)."""
    begin, end = layout.range(qid, "d")
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    return [DeadLetterRecord.from_bytes(value) for _, value in rows]


async def replay_dead_letter(
    tr: Transaction, layout: Layout, qid: str, item_id: str, now: int
) -> bool:
    """Put a dead letter back in the queue, ready now, with fresh attempts."""
    dead = await read_dead_letter(tr, layout, qid, item_id)
    if dead is None:
        return False
    if await tr.get(layout.item(qid, item_id)) is not None:
        return False  # an item with that id was enqueued since
    tr.clear(layout.dead_letter(qid, item_id))
    count(tr, layout, qid, DEAD, -1)
    item = attrs.evolve(
        dead.item,
        state=State.PENDING,
        vesting=now,
        attempt=0,
        errors=0,
        lease=None,
        settled_by=None,
    )
    put(tr, layout, qid, item)
    count(tr, layout, qid, item.state, 1)
    mark_due(tr, layout, qid)
    return True


async def purge_dead_letter(tr: Transaction, layout: Layout, qid: str, item_id: str) -> bool:
    """Delete one dead letter for good."""
    key = layout.dead_letter(qid, item_id)
    if await tr.get(key) is None:
        return False
    tr.clear(key)
    count(tr, layout, qid, DEAD, -1)
    return True


async def cancel_item(tr: Transaction, layout: Layout, qid: str, item_id: str) -> Item | None:
    """Remove a job that is not running. Returns it, or None when absent or running."""
    item = await read_item(tr, layout, qid, item_id)
    if item is None or item.state is State.RUNNING:
        return None
    remove(tr, layout, qid, item)
    return item


async def queue_names(tr: Transaction, layout: Layout) -> list[str]:
    """The ids of every queue that ever held a job, in order (snapshot read)."""
    rows = await tr.get_range(layout.names + b"\x00", layout.names + b"\xff", snapshot=True)
    return [layout.parse_name(key) for key, _ in rows]
