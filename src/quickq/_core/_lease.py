"""Leasing: the queue lease, batch leases of items, promotion, and extension.

A consumer takes a queue's lease in a transaction of its own (so others see
it at once and go elsewhere), then leases a batch in a second one, which
first promotes due scheduled items and expired leases, and finally moves the
pointer to the queue's next due time, ending the queue lease. Both are safe
to re-run after commit-unknown-result: the queue lease knows its own token,
the batch leaves a marker naming what it leased.
"""

from __future__ import annotations

import json

import attrs

from .._limits import LEASE_BYTES, PROMOTE_MIN, PROMOTE_PER_LEASED
from ..stores._protocol import Transaction, get_many
from ._history import DEAD, FAILED, HistoryTally
from ._items import MsClock, Tally, dead_letter, move, read_item
from ._keys import Layout, State
from ._pointers import get_pointer, set_pointer
from ._records import Item, Lease, QueuePointer


async def take_queue_lease(
    tr: Transaction, layout: Layout, qid: str, holder: str, token: str, now: int, duration: int
) -> bool:
    """Lease a due queue by moving its pointer to ``now + duration`` (QuiCK).

    Committed on its own, before any item is leased, so other consumers see the
    queue is taken and go elsewhere. A queue is due when its pointer is, or
    when it is marked due and no one holds its lease; a marked queue without
    a pointer (new, or collected) gets one here. False when the queue is not
    due (or taken). The mark is a snapshot read: producers marking the queue
    never conflict with this; two consumers taking it conflict on the pointer.
    """
    pointer = await get_pointer(tr, layout, qid)
    if pointer is not None and pointer.holder == holder and pointer.token == token:
        return True  # our own earlier commit
    mark = await tr.get(layout.mark(qid), snapshot=True)
    held = pointer is not None and pointer.holder is not None
    if (pointer is None or pointer.time > now) and (mark is None or held):
        return False  # due only if marked, and then only if no one holds it
    empty_since = None if pointer is None else pointer.empty_since
    set_pointer(tr, layout, qid, pointer, QueuePointer(now + duration, holder, token, empty_since))
    if mark is not None:
        # Leasing will see the work this mark announced (it reads later), so
        # the mark can go now, and scanners stop finding the queue while it is
        # held; a mark written since survives, and leasing reads that one.
        tr.compare_and_clear(layout.mark(qid), mark)
    return True


@attrs.frozen
class LeaseBatch:
    """What one leasing transaction took from one queue."""

    items: list[Item]
    more_ready: bool
    next_due: int | None = None
    """When the queue is next due, as this transaction left its pointer (None:
    not known, or no pointer left)."""


async def lease_items(
    tr: Transaction,
    layout: Layout,
    qid: str,
    *,
    holder: str,
    token: str,
    batch_token: str,
    limit: int,
    now: int,
    lease_ms: int,
    idle_gc_ms: int,
    history: bool = True,
) -> LeaseBatch:
    """Lease up to *limit* ready items of *qid*, then release the queue lease.

    Promotes due scheduled items and expired leases to ready first (an expired
    lease whose attempts are spent is dead-lettered, and each expired lease
    is a lost attempt in the queue's history, unless *history* is False),
    leases the best ready items, and moves the pointer to the queue's next due
    time (or garbage collects it once the queue has been empty for *idle_gc_ms*).
    """
    marker_key = layout.batch(holder, batch_token)
    marker = await tr.get(marker_key)
    if marker is not None:  # our own earlier commit: return what it leased
        ids = json.loads(marker)
        raws = await get_many(tr, [layout.item(qid, item_id) for item_id in ids])
        items = [None if raw is None else Item.from_bytes(raw) for raw in raws]
        mine = [i for i in items if i and i.lease and i.lease.lease_id.startswith(batch_token)]
        return LeaseBatch(mine, more_ready=False)
    pointer = await get_pointer(tr, layout, qid)
    if pointer is None or pointer.holder != holder or pointer.token != token:
        return LeaseBatch([], more_ready=False)  # our queue lease is gone
    # Work made due from now on comes with a new mark, which the clear below
    # leaves alone: so no conflict with the ready range or the heads is needed.
    mark = await tr.get(layout.mark(qid), snapshot=True)
    tally = Tally()  # counters change once per batch, not per item
    promote_limit = max(limit * PROMOTE_PER_LEASED, PROMOTE_MIN)
    minutes = HistoryTally() if history else None
    await _promote(tr, layout, qid, now, promote_limit, tally, minutes, holder)
    if minutes is not None:
        minutes.flush(tr, layout)
    ready_begin, ready_end = layout.range(qid, State.PENDING)
    ready = await tr.get_range(ready_begin, ready_end, limit=limit + 1, snapshot=True)
    leased: list[Item] = []
    size = 0
    more_ready = len(ready) > limit
    # Read the items together (snapshot); each one leased takes its conflict below.
    tails = [layout.tail(qid, key, State.PENDING) for key, _ in ready[:limit]]
    item_keys = [layout.item(qid, tail[2]) for tail in tails]
    raws = await get_many(tr, item_keys, snapshot=True)
    expiry = now + lease_ms
    for n, (key, _) in enumerate(ready[:limit]):
        if size >= LEASE_BYTES:  # keep the transaction small, whatever the limit
            more_ready = True
            break
        tr.add_read_conflict_key(key)  # two consumers leasing one item conflict
        tr.add_read_conflict_key(item_keys[n])
        raw = raws[n]
        item = None if raw is None else Item.from_bytes(raw)
        if item is None or item.state is not State.PENDING:
            continue
        new = item.leased(Lease(holder, f"{batch_token}.{n}", expiry))
        # The entry read is the item's own ready entry, unless the two disagree.
        index = key if tails[n][:2] == (item.priority, item.vesting) else None
        move(tr, layout, qid, item, new, tally, keys=(item_keys[n], index) if index else None)
        size += len(new.payload)
        leased.append(new)
    tally.flush(tr, layout)
    next_due = await _release_pointer(tr, layout, qid, pointer, more_ready, now, idle_gc_ms)
    if mark is not None:
        tr.compare_and_clear(layout.mark(qid), mark)
    tr.clear_range(*layout.batches(holder))
    tr.set(marker_key, json.dumps([i.item_id for i in leased]).encode())
    return LeaseBatch(leased, more_ready, next_due)


async def _promote(
    tr: Transaction,
    layout: Layout,
    qid: str,
    now: int,
    limit: int,
    tally: Tally,
    minutes: HistoryTally | None,
    holder: str,
) -> None:
    """Move due scheduled items and expired leases into the ready index
    (their counters into *tally*, the lost attempts into *minutes*, found by
    consumer *holder*).

    Stops once the rewritten items' payloads reach LEASE_BYTES, like leasing,
    so that a promotion of large items stays a small transaction; the rest
    stay due, and the next leasing transaction promotes them.
    """
    size = 0
    for state in (State.SCHEDULED, State.RUNNING):
        begin, _ = layout.range(qid, state)
        end = layout.sub(qid, state, now + 1)
        rows = await tr.get_range(begin, end, limit=limit)
        # Read the items together (snapshot); each one promoted takes its conflict below.
        keys = [layout.item(qid, layout.tail(qid, key, state)[1]) for key, _ in rows]
        raws = await get_many(tr, keys, snapshot=True)
        for (key, _), item_key, raw in zip(rows, keys, raws, strict=True):
            if size >= LEASE_BYTES:
                return
            tr.add_read_conflict_key(item_key)
            item = None if raw is None else Item.from_bytes(raw)
            if item is None:
                tr.clear(key)  # a stray index entry; never expected
                continue
            size += len(item.payload)
            if state is State.SCHEDULED:
                move(tr, layout, qid, item, attrs.evolve(item, state=State.PENDING), tally)
                continue
            assert item.lease is not None
            error = f"lease expired (holder {item.lease.holder} stopped extending it)"
            if item.attempt > item.max_retries:
                # The expired attempt is a failure like any other: count it.
                spent = attrs.evolve(item, errors=item.errors + 1)
                dead_letter(tr, layout, qid, spent, "failed", error, now, None, tally)
                if minutes is not None:
                    minutes.lost(qid, now, DEAD, holder)
            else:
                expired = attrs.evolve(
                    item,
                    state=State.PENDING,
                    vesting=item.lease.expiry,
                    lease=None,
                    errors=item.errors + 1,
                    last_error=error,
                )
                move(tr, layout, qid, item, expired, tally)
                if minutes is not None:
                    minutes.lost(qid, now, FAILED, holder)


async def _release_pointer(
    tr: Transaction,
    layout: Layout,
    qid: str,
    pointer: QueuePointer,
    more_ready: bool,
    now: int,
    idle_gc_ms: int,
) -> int | None:
    """Set the pointer to the queue's next due time, ending the queue lease;
    return that time (None once the pointer is garbage collected).

    The heads are snapshot reads: what others insert before them outside the
    queue lease (a delayed enqueue, a retry with backoff) comes with a new due
    mark, which makes the queue due again, so nothing is stranded and these
    reads need not conflict with it. (A head removed meanwhile, a job
    finishing, only makes the pointer a little early.)
    """
    if more_ready:
        set_pointer(tr, layout, qid, pointer, QueuePointer(now))
        return now
    heads: list[int] = []
    for state in (State.SCHEDULED, State.RUNNING):
        begin, end = layout.range(qid, state)
        rows = await tr.get_range(begin, end, limit=1, snapshot=True)
        if rows:
            heads.append(layout.tail(qid, rows[0][0], state)[0])
    if heads:
        set_pointer(tr, layout, qid, pointer, QueuePointer(min(heads)))
        return min(heads)
    if pointer.empty_since is not None and now - pointer.empty_since >= idle_gc_ms:
        # Empty as this transaction saw it; work added since carries a mark,
        # and a marked queue without a pointer gets a new one when leased.
        set_pointer(tr, layout, qid, pointer, None)
        return None
    empty_since = pointer.empty_since if pointer.empty_since is not None else now
    set_pointer(tr, layout, qid, pointer, QueuePointer(now + idle_gc_ms, None, None, empty_since))
    return now + idle_gc_ms


async def extend_lease(
    tr: Transaction,
    layout: Layout,
    qid: str,
    item_id: str,
    lease_id: str,
    clock: MsClock,
    lease_ms: int,
) -> bool:
    """Push the lease's expiry to ``now + lease_ms`` while it is still ours.

    The clock is read after the item, so the lease is judged as of the write;
    a lease at exactly its expiry is already lost.
    """
    item = await read_item(tr, layout, qid, item_id)
    now = clock()
    if item is None or item.lease is None or item.lease.lease_id != lease_id:
        return False
    if item.lease.expiry <= now:
        return False
    lease = attrs.evolve(item.lease, expiry=max(item.lease.expiry, now + lease_ms))
    move(tr, layout, qid, item, attrs.evolve(item, lease=lease))
    return True
