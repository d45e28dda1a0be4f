"""Inspection and control: counters, listings, dead letters, cancel, queue names.

Listings and counters are snapshot reads (stats never conflict with the
consumers' work). Control operations (replay, purge, cancel) change one job
and report whether they found it; :func:`quickq._core.run_once` makes each
call's answer survive a re-run after commit-unknown-result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from ..stores._protocol import Transaction, decode_counter, get_many
from ._items import DEAD, count, put, read_dead_letter, read_item, remove
from ._keys import Layout, State
from ._pointers import mark_due
from ._records import COUNTERS, DeadLetterRecord, Item

OLDEST_SCAN: Final = 100
"""Ready-index entries read per queue to find its oldest ready job."""


async def counters(tr: Transaction, layout: Layout, qid: str) -> dict[str, int]:
    """The queue's counters (snapshot reads: stats never conflict)."""
    keys = [layout.counter(qid, name) for name in COUNTERS]
    values = await get_many(tr, keys, snapshot=True)
    return {name: decode_counter(value) for name, value in zip(COUNTERS, values, strict=True)}


@attrs.frozen
class QueueSummary:
    """A queue's counters and the due time of its oldest ready job."""

    qid: str
    counts: dict[str, int]
    oldest_due: int | None
    """When the oldest ready job seen became due (ms); None when none is."""
    exact: bool
    """False when the ready index holds more than was read: then the oldest
    seen is a lower bound on the age of the oldest."""


async def summaries(
    tr: Transaction, layout: Layout, qids: Sequence[str], now: int
) -> list[QueueSummary]:
    """The counters and oldest ready job of each of *qids* (snapshot reads).

    The oldest ready job is found from index keys alone, never from items:
    the first ``OLDEST_SCAN`` ready entries (their keys hold the vesting
    time, in run order: priority first), and the earliest schedule entry in
    case it is due but no consumer has moved it to pending yet.
    """
    keys = [layout.counter(qid, name) for qid in qids for name in COUNTERS]
    values = iter(await get_many(tr, keys, snapshot=True))
    found = []
    for qid in qids:
        counts = {name: decode_counter(next(values)) for name in COUNTERS}
        begin, end = layout.range(qid, State.PENDING)
        ready = await tr.get_range(begin, end, limit=OLDEST_SCAN, snapshot=True)
        times = [layout.tail(qid, key, State.PENDING)[1] for key, _ in ready]
        begin, end = layout.range(qid, State.SCHEDULED)
        for key, _ in await tr.get_range(begin, end, limit=1, snapshot=True):
            vesting = layout.tail(qid, key, State.SCHEDULED)[0]
            if vesting <= now:
                times.append(vesting)
        exact = counts["pending"] <= len(ready)
        found.append(QueueSummary(qid, counts, min(times, default=None), exact))
    return found


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


async def queue_names(tr: Transaction, layout: Layout, limit: int = 0) -> list[str]:
    """The ids of every queue that ever held a job (the first *limit*, if
    not 0), in order (snapshot read)."""
    begin, end = layout.names + b"\x00", layout.names + b"\xff"
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    return [layout.parse_name(key) for key, _ in rows]
