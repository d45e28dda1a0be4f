"""Settling an attempt: complete, retry, snooze, dead-letter or release it.

The consumer reports how each attempt ended as a :class:`Settlement`;
:func:`settle` records it only while the attempt's lease is still ours
(fencing by lease id, the clock read after the reads), and recognises its
own earlier commit after commit-unknown-result: by ``settled_by`` on the
item or its dead letter, or by the completion receipt of a deleted job.
Only the branches that write an outcome count it in the queue's history
(``_history``), so a re-run that finds its own commit counts nothing again.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import attrs

from ..stores._protocol import Transaction, get_many
from ._history import COMPLETED, DEAD, FAILED, SNOOZED, HistoryTally
from ._items import MsClock, Tally, dead_letter, move, read_dead_letter, read_item, remove
from ._keys import Layout, State
from ._pointers import ensure_pointer
from ._receipts import completed_recently, completion_receipt
from ._records import DeadReason, Item, truncate_error


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
    started: int | None = None
    """When the attempt started (ms, the consumer's clock), for the queue's
    history: its wait and run time (None: counted, but not timed)."""

    @property
    def dead_reason(self) -> DeadReason:
        """Why the job is dead-lettered, when this settles it so: *reason*,
        but a snooze whose attempts ran out, and a completion the acker could
        not record (it records an ``unrecordable`` dead letter instead)."""
        if self.action is Action.SNOOZE:
            return "snoozed_out"
        if self.action is Action.COMPLETE:
            return "unrecordable"
        return self.reason


_UNREAD: Final = b"unread"
"""No record read ahead: :func:`_settle` reads it (compared by identity)."""


async def settle(
    tr: Transaction, layout: Layout, s: Settlement, clock: MsClock, *, history: bool = True
) -> Outcome:
    """Record the end of an attempt, only while its lease is still ours (and
    count it in the queue's history, unless *history* is False)."""
    (outcome,) = await settle_many(tr, layout, [s], clock, history=history)
    return outcome


async def settle_many(
    tr: Transaction,
    layout: Layout,
    settlements: Sequence[Settlement],
    clock: MsClock,
    *,
    history: bool = True,
) -> list[Outcome]:
    """:func:`settle` each of *settlements* in turn, in one transaction, with
    the counters adjusted once per queue and counter rather than per job.

    The same outcomes and the same writes as one :func:`settle` call each;
    the counters are brought up to date before each handler's own *writes*
    run, so that those see them as a call each would. The history counters
    (unless *history* is False) are added once per queue, minute and name,
    at the end.
    """
    tally = Tally()
    minutes = HistoryTally() if history else None
    outcomes = []
    records = await _read_records(tr, layout, settlements)
    for n, s in enumerate(settlements):
        if s.writes is not None:
            tally.flush(tr, layout)
        record = records[n] if n < len(records) else _UNREAD
        outcomes.append(await _settle(tr, layout, s, clock, tally, minutes, record))
    tally.flush(tr, layout)
    if minutes is not None:
        minutes.flush(tr, layout)
    return outcomes


async def _read_records(
    tr: Transaction, layout: Layout, settlements: Sequence[Settlement]
) -> list[bytes | None]:
    """The item records of the first settlements, read together (one read,
    the same conflicts as one per job): up to the first with handler writes,
    which might change what later ones read, and short of a repeated item,
    which must see the earlier settlement's writes (the rest read their own)."""
    keys: list[bytes] = []
    seen: set[bytes] = set()
    for s in settlements:
        key = layout.item(s.queue_id, s.item_id)
        if key in seen:
            break
        seen.add(key)
        keys.append(key)
        if s.writes is not None:
            break
    if len(keys) < 2:
        return []
    return await get_many(tr, keys)


async def _settle(
    tr: Transaction,
    layout: Layout,
    s: Settlement,
    clock: MsClock,
    tally: Tally,
    minutes: HistoryTally | None,
    record: bytes | None = _UNREAD,
) -> Outcome:
    """:func:`settle`, its counters into *tally* and its history into
    *minutes* (None: kept none); *record*: the item's record when the caller
    read it already (None: absent)."""
    qid = s.queue_id
    if record is _UNREAD:
        item = await read_item(tr, layout, qid, s.item_id)
    else:
        item = None if record is None else Item.from_bytes(record)
    if item is None:
        if s.action is Action.COMPLETE:
            # Ours if our earlier commit left its receipt; else someone else's.
            if await completed_recently(tr, layout, s.lease_id, clock()):
                return Outcome.COMPLETED
            return Outcome.LOST
        dead = await read_dead_letter(tr, layout, qid, s.item_id)
        if dead is not None and dead.item.settled_by == s.lease_id:
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
        remove(tr, layout, qid, item, tally)
        tr.set(completion_receipt(layout, s.lease_id, now), b"")
        if minutes is not None:
            minutes.attempt(qid, now, COMPLETED, s.started, item.vesting, item.lease.holder)
        return Outcome.COMPLETED
    if s.action is Action.RELEASE:
        released = attrs.evolve(
            item,
            state=State.PENDING,
            vesting=now,
            lease=None,
            attempt=item.attempt - 1,
            settled_by=s.lease_id,
        )
        move(tr, layout, qid, item, released, tally)
        await ensure_pointer(tr, layout, qid, now)
        return Outcome.RELEASED
    failed = s.action is not Action.SNOOZE
    errors = item.errors + (1 if failed else 0)
    spent = item.attempt > item.max_retries
    error = truncate_error(s.error)  # records keep room for an error of ERROR_BYTES, no more
    if s.action is Action.DEAD_LETTER or spent:
        reason = s.dead_reason
        spent_item = attrs.evolve(item, errors=errors)
        dead_letter(tr, layout, qid, spent_item, reason, error, now, s.lease_id, tally)
        if minutes is not None:
            minutes.attempt(qid, now, DEAD, s.started, item.vesting, item.lease.holder)
        return Outcome.DEAD_LETTERED
    vesting = now + s.delay_ms
    retried = attrs.evolve(
        item,
        state=State.SCHEDULED if vesting > now else State.PENDING,
        vesting=vesting,
        lease=None,
        errors=errors,
        last_error=error if error is not None else item.last_error,
        settled_by=s.lease_id,
    )
    move(tr, layout, qid, item, retried, tally)
    await ensure_pointer(tr, layout, qid, vesting)
    if minutes is not None:
        kind = FAILED if failed else SNOOZED
        minutes.attempt(qid, now, kind, s.started, item.vesting, item.lease.holder)
    return Outcome.RETRIED
