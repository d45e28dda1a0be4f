"""The queue's transactional operations: ``f(tr, layout, ..., now)``, no other I/O.

Each function runs inside a caller's transaction and is safe to run again
after commit-unknown-result: enqueue finds its own item; leasing finds its
batch marker; settling finds its lease id in ``settled_by``. Peeks use
snapshot reads; read conflicts are taken only on what an operation claims
(the items it leases, the pointer it moves, the emptiness it relies on).

Fencing operations (extend, settle) take a clock rather than a time, and read
it after their reads, so a lease is judged at the moment of the write.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import attrs

from .._limits import LEASE_BYTES
from ..stores._protocol import Transaction, decode_counter, get_many
from ._layout import (
    COUNTERS,
    DeadItem,
    DeadReason,
    Item,
    Layout,
    Lease,
    QueuePointer,
    Where,
    truncate_error,
)

MsClock = Callable[[], int]

_COUNTER_OF: dict[str, str] = {"r": "pending", "s": "scheduled", "l": "running"}


def _count(tr: Transaction, layout: Layout, qid: str, where: str, delta: int) -> None:
    """Adjust a counter, named directly or by an index (r, s, l)."""
    name = _COUNTER_OF.get(where, where)
    tr.add(layout.counter(qid, name), delta)


def _put(tr: Transaction, layout: Layout, qid: str, item: Item) -> None:
    tr.set(layout.item(qid, item.item_id), item.to_bytes())
    tr.set(item.index_key(layout, qid), b"")


def _move(tr: Transaction, layout: Layout, qid: str, old: Item, new: Item) -> None:
    """Rewrite *old* as *new*, moving its index entry and counters."""
    tr.clear(old.index_key(layout, qid))
    _put(tr, layout, qid, new)
    if old.where != new.where:
        _count(tr, layout, qid, old.where, -1)
        _count(tr, layout, qid, new.where, 1)


async def _get_item(tr: Transaction, layout: Layout, qid: str, item_id: str) -> Item | None:
    raw = await tr.get(layout.item(qid, item_id))
    return None if raw is None else Item.from_bytes(raw)


# -- pointers -------------------------------------------------------------------


async def _get_pointer(tr: Transaction, layout: Layout, qid: str) -> QueuePointer | None:
    raw = await tr.get(layout.queue_pointer(qid))
    return None if raw is None else QueuePointer.from_bytes(raw)


def _set_pointer(
    tr: Transaction, layout: Layout, qid: str, old: QueuePointer | None, new: QueuePointer | None
) -> None:
    if old is not None:
        tr.clear(layout.pointer(old.time, qid))
    if new is None:
        tr.clear(layout.queue_pointer(qid))
    else:
        tr.set(layout.pointer(new.time, qid), b"")
        tr.set(layout.queue_pointer(qid), new.to_bytes())


async def ensure_pointer(tr: Transaction, layout: Layout, qid: str, time: int) -> None:
    """Make the queue's pointer due no later than *time* (work becomes visible then).

    A leased pointer is left alone: its holder recomputes it on release, and the
    read here conflicts with that release, so nothing is missed.
    """
    _ensure_pointer(tr, layout, qid, await _get_pointer(tr, layout, qid), time)


def _ensure_pointer(
    tr: Transaction, layout: Layout, qid: str, pointer: QueuePointer | None, time: int
) -> None:
    """:func:`ensure_pointer`, given the pointer as read."""
    if pointer is None:
        _set_pointer(tr, layout, qid, None, QueuePointer(time))
    elif pointer.holder is None and pointer.time > time:
        _set_pointer(tr, layout, qid, pointer, QueuePointer(time))


async def due_queues(tr: Transaction, layout: Layout, now: int, limit: int) -> list[str]:
    """Queues whose pointer is due, oldest first (snapshot read: no conflicts)."""
    begin, end = layout.pointer_range(now)
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    return [layout.parse_pointer(key)[1] for key, _ in rows]


async def next_due_time(tr: Transaction, layout: Layout, after: int | None = None) -> int | None:
    """The earliest pointer time of any queue (later than *after*, if given;
    snapshot read), or None with no such queue."""
    begin = layout.pointers + b"\x00" if after is None else layout.pointer_range(after)[1]
    rows = await tr.get_range(begin, layout.pointers + b"\xff", limit=1, snapshot=True)
    return layout.parse_pointer(rows[0][0])[0] if rows else None


# -- enqueue --------------------------------------------------------------------


@attrs.frozen
class NewItem:
    """A validated job to enqueue (see ``JobQueue.enqueue``)."""

    queue_id: str
    item_id: str
    topic: str
    payload: bytes
    priority: int
    vesting: int
    max_retries: int
    timeout: float | None = None
    custom_id: bool = False
    token: str = attrs.field(factory=lambda: secrets.token_hex(8))
    """Unique to this NewItem, so to one enqueue call: its receipt's value. Build
    the NewItem outside the retry loop, so every run of the body shares it."""


RECEIPT_BUCKET_MS: Final = 60_000
RECEIPT_KEEP_MS: Final = 15 * 60_000
"""Receipts outlive any retry loop of the operation that wrote them."""
_DONE: Final = "done:"
"""Completion receipts are keyed by the completing lease id, after this prefix."""


async def enqueue(tr: Transaction, layout: Layout, new: NewItem, now: int) -> tuple[Item, bool]:
    """Enqueue one job: ``enqueue_many`` with the NewItem's own receipt token."""
    (result,) = await enqueue_many(tr, layout, [new], now, token=new.token)
    return result


async def enqueue_many(
    tr: Transaction, layout: Layout, news: list[NewItem], now: int, *, token: str
) -> list[tuple[Item, bool]]:
    """Store each of *news* unless its id exists. Returns ``(item, created)`` pairs.

    A custom id the queue holds (or holds as a dead letter) returns the
    existing job: the first enqueue wins. *now* and *token* must be the same
    each time the body runs: the batch leaves a receipt under *token*, so a
    re-run after commit-unknown-result recognises its own earlier commit, even
    after consumers have finished its jobs, and enqueues nothing twice. Reads,
    in three round trips whatever the batch: the receipt, the ids of custom-id
    jobs only (together), and one pointer per queue (together).
    """
    receipt = layout.receipt(now // RECEIPT_BUCKET_MS, token)
    earlier = await tr.get(receipt)  # which jobs our own earlier commit created
    if earlier is None:  # only a custom id can already exist: generated ones are fresh
        check = [new for new in news if new.custom_id]
    else:
        check = [new for n, new in enumerate(news) if earlier[n : n + 1] != b"1"]
    found = await _existing_many(tr, layout, check)
    out: list[tuple[Item, bool]] = []
    due: dict[str, int] = {}  # queue -> earliest vesting among the new jobs
    for n, new in enumerate(news):
        qid = new.queue_id
        if earlier is not None:
            created = earlier[n : n + 1] == b"1"
            existing = None if created else found.get((qid, new.item_id))
        else:
            existing = found.get((qid, new.item_id)) if new.custom_id else None
            created = existing is None
        item = existing or Item(
            item_id=new.item_id,
            topic=new.topic,
            payload=new.payload,
            priority=new.priority,
            vesting=new.vesting,
            max_retries=new.max_retries,
            enqueued_at=now,
            where="r" if new.vesting <= now else "s",
            timeout=new.timeout,
        )
        out.append((item, created))
        if earlier is not None or not created:
            continue
        if new.custom_id:  # a repeat of this id later in the batch finds this job
            found[qid, new.item_id] = item
        _put(tr, layout, qid, item)
        _count(tr, layout, qid, item.where, 1)
        if qid not in due:
            tr.set(layout.name(qid), b"")
        due[qid] = min(due.get(qid, new.vesting), new.vesting)
    if earlier is None:
        tr.set(receipt, b"".join(b"1" if created else b"0" for _, created in out))
    if due:
        tr.add(layout.wake, 1)
        pointers = await get_many(tr, [layout.queue_pointer(qid) for qid in due])
        for (qid, vesting), raw in zip(due.items(), pointers, strict=True):
            pointer = None if raw is None else QueuePointer.from_bytes(raw)
            _ensure_pointer(tr, layout, qid, pointer, vesting)
    return out


async def _existing_many(
    tr: Transaction, layout: Layout, news: list[NewItem]
) -> dict[tuple[str, str], Item | None]:
    """The jobs of *news*' ids, waiting, running or dead (None: absent), read together."""
    if not news:
        return {}
    keys: list[bytes] = []
    for new in news:
        keys += (layout.item(new.queue_id, new.item_id), layout.dead(new.queue_id, new.item_id))
    raws = await get_many(tr, keys)
    found: dict[tuple[str, str], Item | None] = {}
    for n, new in enumerate(news):
        raw, dead = raws[2 * n], raws[2 * n + 1]
        if raw is not None:
            found[new.queue_id, new.item_id] = Item.from_bytes(raw)
        else:
            found[new.queue_id, new.item_id] = (
                None if dead is None else DeadItem.from_bytes(dead).item
            )
    return found


_ONCE: Final = "once:"
"""Receipts of control calls (cancel, replay, purge), keyed by the call's token."""


async def run_once(
    tr: Transaction,
    layout: Layout,
    token: str,
    now: int,
    op: Callable[[], Awaitable[bytes | None]],
) -> bytes | None:
    """Run a control *op* at most once per call *token* (fixed, with *now*,
    outside the retry loop): *op* returns what it did, recorded in a receipt,
    or None for nothing. A re-run after commit-unknown-result finds the
    receipt and returns what the committed run did, instead of reporting the
    job gone."""
    key = layout.receipt(now // RECEIPT_BUCKET_MS, _ONCE + token)
    earlier = await tr.get(key)
    if earlier is not None:
        return earlier
    done = await op()
    if done is not None:
        tr.set(key, done)
    return done


def forget_receipts(tr: Transaction, layout: Layout, now: int) -> None:
    """Drop enqueue receipts older than RECEIPT_KEEP_MS (a blind range clear)."""
    tr.clear_range(*layout.receipts_before((now - RECEIPT_KEEP_MS) // RECEIPT_BUCKET_MS))


# -- queue lease and item leases ------------------------------------------------


async def take_queue_lease(
    tr: Transaction, layout: Layout, qid: str, holder: str, token: str, now: int, duration: int
) -> bool:
    """Lease a due queue by moving its pointer to ``now + duration`` (QuiCK).

    Committed on its own, before any item is leased, so other consumers see the
    queue is taken and go elsewhere. False when the queue is not due (taken).
    """
    pointer = await _get_pointer(tr, layout, qid)
    if pointer is None:
        return False
    if pointer.holder == holder and pointer.token == token:
        return True  # our own earlier commit
    if pointer.time > now:
        return False
    leased = QueuePointer(now + duration, holder, token, pointer.empty_since)
    _set_pointer(tr, layout, qid, pointer, leased)
    return True


"""Leasing stops adding items once their payloads reach this many bytes, so
that a large batch stays a small transaction (FoundationDB advises < 1 MB)."""


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
) -> LeaseBatch:
    """Lease up to *limit* ready items of *qid*, then release the queue lease.

    Promotes due scheduled items and expired leases to ready first (an expired
    lease whose attempts are spent is dead-lettered), leases the best ready
    items, and moves the pointer to the queue's next due time (or garbage
    collects it once the queue has been empty for *idle_gc_ms*).
    """
    marker_key = layout.batch(holder, batch_token)
    marker = await tr.get(marker_key)
    if marker is not None:  # our own earlier commit: return what it leased
        ids = json.loads(marker)
        raws = await get_many(tr, [layout.item(qid, item_id) for item_id in ids])
        items = [None if raw is None else Item.from_bytes(raw) for raw in raws]
        mine = [i for i in items if i and i.lease and i.lease.lease_id.startswith(batch_token)]
        return LeaseBatch(mine, more_ready=False)
    pointer = await _get_pointer(tr, layout, qid)
    if pointer is None or pointer.holder != holder or pointer.token != token:
        return LeaseBatch([], more_ready=False)  # our queue lease is gone
    await _promote(tr, layout, qid, now, limit=max(limit * 4, 64))
    ready_begin, ready_end = layout.range(qid, "r")
    ready = await tr.get_range(ready_begin, ready_end, limit=limit + 1, snapshot=True)
    leased: list[Item] = []
    size = 0
    more_ready = len(ready) > limit
    # Read the items together (snapshot); each one leased takes its conflict below.
    item_keys = [layout.item(qid, layout.tail(qid, key, "r")[2]) for key, _ in ready[:limit]]
    raws = await get_many(tr, item_keys, snapshot=True)
    for n, (key, _) in enumerate(ready[:limit]):
        if size >= LEASE_BYTES:  # keep the transaction small, whatever the limit
            more_ready = True
            break
        tr.add_read_conflict_key(key)  # two consumers leasing one item conflict
        tr.add_read_conflict_key(item_keys[n])
        raw = raws[n]
        item = None if raw is None else Item.from_bytes(raw)
        if item is None or item.where != "r":
            continue
        lease = Lease(holder, f"{batch_token}.{n}", now + lease_ms)
        new = attrs.evolve(item, where="l", lease=lease, attempt=item.attempt + 1)
        _move(tr, layout, qid, item, new)
        size += len(new.payload)
        leased.append(new)
    if not more_ready:
        tr.add_read_conflict_range(ready_begin, ready_end)  # we rely on it being drained
    next_due = await _release_pointer(tr, layout, qid, pointer, more_ready, now, idle_gc_ms)
    tr.clear_range(*layout.batches(holder))
    tr.set(marker_key, json.dumps([i.item_id for i in leased]).encode())
    return LeaseBatch(leased, more_ready, next_due)


async def _promote(tr: Transaction, layout: Layout, qid: str, now: int, limit: int) -> None:
    """Move due scheduled items and expired leases into the ready index.

    Stops once the rewritten items' payloads reach LEASE_BYTES, like leasing,
    so that a promotion of large items stays a small transaction; the rest
    stay due, and the next leasing transaction promotes them.
    """
    size = 0
    for where in ("s", "l"):
        begin, _ = layout.range(qid, where)
        end = layout.sub(qid, where, now + 1)
        rows = await tr.get_range(begin, end, limit=limit)
        # Read the items together (snapshot); each one promoted takes its conflict below.
        keys = [layout.item(qid, layout.tail(qid, key, where)[1]) for key, _ in rows]
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
            if where == "s":
                _move(tr, layout, qid, item, attrs.evolve(item, where="r"))
                continue
            assert item.lease is not None
            error = f"lease expired (holder {item.lease.holder} stopped extending it)"
            if item.attempt > item.max_retries:
                # The expired attempt is a failure like any other: count it.
                spent = attrs.evolve(item, errors=item.errors + 1)
                _dead_letter(tr, layout, qid, spent, "failed", error, now, settled_by=None)
            else:
                expired = attrs.evolve(
                    item,
                    where="r",
                    vesting=item.lease.expiry,
                    lease=None,
                    errors=item.errors + 1,
                    last_error=error,
                )
                _move(tr, layout, qid, item, expired)


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
    return that time (None once the pointer is garbage collected)."""
    if more_ready:
        _set_pointer(tr, layout, qid, pointer, QueuePointer(now))
        return now
    heads: list[int] = []
    for where in ("s", "l"):
        begin, end = layout.range(qid, where)
        rows = await tr.get_range(begin, end, limit=1, snapshot=True)
        # Conflict only with entries inserted before the head (they would make
        # the queue due earlier), not with the head's own removal (a job
        # finishing), which only makes the pointer a little early.
        tr.add_read_conflict_range(begin, rows[0][0] if rows else end)
        if rows:
            heads.append(layout.tail(qid, rows[0][0], where)[0])
    if heads:
        _set_pointer(tr, layout, qid, pointer, QueuePointer(min(heads)))
        return min(heads)
    if pointer.empty_since is not None and now - pointer.empty_since >= idle_gc_ms:
        _set_pointer(tr, layout, qid, pointer, None)  # the reads above prove it empty
        return None
    empty_since = pointer.empty_since if pointer.empty_since is not None else now
    _set_pointer(tr, layout, qid, pointer, QueuePointer(now + idle_gc_ms, None, None, empty_since))
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
    """Push the lease's expiry to ``now + lease_ms`` while it is still ours."""
    item = await _get_item(tr, layout, qid, item_id)
    now = clock()
    if item is None or item.lease is None or item.lease.lease_id != lease_id:
        return False
    if item.lease.expiry <= now:
        return False
    lease = attrs.evolve(item.lease, expiry=max(item.lease.expiry, now + lease_ms))
    _move(tr, layout, qid, item, attrs.evolve(item, lease=lease))
    return True


# -- settling an attempt --------------------------------------------------------


class Outcome(enum.Enum):
    """What settling an attempt did."""

    COMPLETED = "completed"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"
    RELEASED = "released"
    LOST = "lost"
    """The lease was no longer ours: nothing was written."""


class Action(enum.Enum):
    """How an attempt ended, as the consumer reports it."""

    COMPLETE = "complete"
    RETRY = "retry"
    """A failure: counts an error, runs again after *delay_ms*."""
    SNOOZE = "snooze"
    """Runs again after *delay_ms* without counting an error."""
    DEAD_LETTER = "dead_letter"
    RELEASE = "release"
    """Given back unrun (a cancelled attempt): the attempt is not counted."""


@attrs.frozen
class Settlement:
    """The end of one attempt, as the consumer reports it.

    ``RETRY`` and ``SNOOZE`` run the job again after *delay_ms*; either
    dead-letters it instead when its attempts are spent.
    """

    action: Action
    queue_id: str
    item_id: str
    lease_id: str
    delay_ms: int = 0
    error: str | None = None
    reason: DeadReason = "failed"
    writes: Callable[[Transaction], Awaitable[None]] | None = None
    """For COMPLETE: the handler's own writes, committed with the completion."""


async def settle(tr: Transaction, layout: Layout, s: Settlement, clock: MsClock) -> Outcome:
    """Record the end of an attempt, only while its lease is still ours."""
    qid = s.queue_id
    item = await _get_item(tr, layout, qid, s.item_id)
    if item is None:
        if s.action is Action.COMPLETE:
            # Ours if our earlier commit left its receipt (a re-run comes within
            # seconds: this minute's bucket or the last); else someone else's.
            bucket = clock() // RECEIPT_BUCKET_MS
            for b in (bucket, bucket - 1):
                if await tr.get(layout.receipt(b, _DONE + s.lease_id)) is not None:
                    return Outcome.COMPLETED
            return Outcome.LOST
        raw = await tr.get(layout.dead(qid, s.item_id))
        if raw is not None and DeadItem.from_bytes(raw).item.settled_by == s.lease_id:
            return Outcome.DEAD_LETTERED
        return Outcome.LOST
    if item.settled_by == s.lease_id:  # our own earlier commit
        return Outcome.RELEASED if s.action is Action.RELEASE else Outcome.RETRIED
    now = clock()
    if item.lease is None or item.lease.lease_id != s.lease_id or item.lease.expiry <= now:
        return Outcome.LOST
    if s.action is Action.COMPLETE:
        if s.writes is not None:
            await s.writes(tr)  # exactly once: only while the lease is ours
        tr.clear(layout.item(qid, item.item_id))
        tr.clear(item.index_key(layout, qid))
        _count(tr, layout, qid, "l", -1)
        tr.set(layout.receipt(now // RECEIPT_BUCKET_MS, _DONE + s.lease_id), b"")
        return Outcome.COMPLETED
    if s.action is Action.RELEASE:
        released = attrs.evolve(
            item,
            where="r",
            vesting=now,
            lease=None,
            attempt=item.attempt - 1,
            settled_by=s.lease_id,
        )
        _move(tr, layout, qid, item, released)
        await ensure_pointer(tr, layout, qid, now)
        return Outcome.RELEASED
    failed = s.action is not Action.SNOOZE
    errors = item.errors + (1 if failed else 0)
    spent = item.attempt > item.max_retries
    error = truncate_error(s.error)  # records keep room for an error of ERROR_BYTES, no more
    if s.action is Action.DEAD_LETTER or spent:
        reason = s.reason if failed else "snoozed_out"
        _dead_letter(
            tr, layout, qid, attrs.evolve(item, errors=errors), reason, error, now, s.lease_id
        )
        return Outcome.DEAD_LETTERED
    vesting = now + s.delay_ms
    retried = attrs.evolve(
        item,
        where="s" if vesting > now else "r",
        vesting=vesting,
        lease=None,
        errors=errors,
        last_error=error if error is not None else item.last_error,
        settled_by=s.lease_id,
    )
    _move(tr, layout, qid, item, retried)
    await ensure_pointer(tr, layout, qid, vesting)
    return Outcome.RETRIED


def _dead_letter(
    tr: Transaction,
    layout: Layout,
    qid: str,
    item: Item,
    reason: DeadReason,
    error: str | None,
    now: int,
    settled_by: str | None,
) -> None:
    tr.clear(layout.item(qid, item.item_id))
    tr.clear(item.index_key(layout, qid))
    _count(tr, layout, qid, item.where, -1)
    error = truncate_error(error)
    dead_item = attrs.evolve(item, lease=None, last_error=error, settled_by=settled_by)
    tr.set(layout.dead(qid, item.item_id), DeadItem(dead_item, reason, error, now).to_bytes())
    _count(tr, layout, qid, "dead", 1)


# -- inspection and control -----------------------------------------------------


async def counters(tr: Transaction, layout: Layout, qid: str) -> dict[str, int]:
    """The queue's counters (snapshot reads: stats never conflict)."""
    return {
        name: decode_counter(await tr.get(layout.counter(qid, name), snapshot=True))
        for name in COUNTERS
    }


async def list_items(
    tr: Transaction, layout: Layout, qid: str, where: Where, limit: int
) -> list[Item]:
    """Items in one index, in that index's order."""
    begin, end = layout.range(qid, where)
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    found = []
    for key, _ in rows:
        item = await _get_item(tr, layout, qid, layout.tail(qid, key, where)[-1])
        if item is not None:
            found.append(item)
    return found


async def get_item(tr: Transaction, layout: Layout, qid: str, item_id: str) -> Item | None:
    return await _get_item(tr, layout, qid, item_id)


async def dead_items(tr: Transaction, layout: Layout, qid: str, limit: int) -> list[DeadItem]:
    begin, end = layout.range(qid, "d")
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    return [DeadItem.from_bytes(value) for _, value in rows]


async def replay_dead(tr: Transaction, layout: Layout, qid: str, item_id: str, now: int) -> bool:
    """Put a dead letter back in the queue, ready now, with fresh attempts."""
    raw = await tr.get(layout.dead(qid, item_id))
    if raw is None:
        return False
    old = DeadItem.from_bytes(raw).item
    if await tr.get(layout.item(qid, item_id)) is not None:
        return False  # an item with that id was enqueued since
    tr.clear(layout.dead(qid, item_id))
    _count(tr, layout, qid, "dead", -1)
    item = attrs.evolve(
        old, where="r", vesting=now, attempt=0, errors=0, lease=None, settled_by=None
    )
    _put(tr, layout, qid, item)
    _count(tr, layout, qid, "r", 1)
    tr.add(layout.wake, 1)
    await ensure_pointer(tr, layout, qid, now)
    return True


async def purge_dead(tr: Transaction, layout: Layout, qid: str, item_id: str) -> bool:
    """Delete one dead letter for good."""
    key = layout.dead(qid, item_id)
    if await tr.get(key) is None:
        return False
    tr.clear(key)
    _count(tr, layout, qid, "dead", -1)
    return True


async def cancel_item(tr: Transaction, layout: Layout, qid: str, item_id: str) -> Item | None:
    """Remove a job that is not running. Returns it, or None when absent or running."""
    item = await _get_item(tr, layout, qid, item_id)
    if item is None or item.where == "l":
        return None
    tr.clear(layout.item(qid, item_id))
    tr.clear(item.index_key(layout, qid))
    _count(tr, layout, qid, item.where, -1)
    return item


async def queue_names(tr: Transaction, layout: Layout, limit: int = 0) -> list[str]:
    rows = await tr.get_range(
        layout.names + b"\x00", layout.names + b"\xff", limit=limit, snapshot=True
    )
    return [layout.parse_name(key) for key, _ in rows]
