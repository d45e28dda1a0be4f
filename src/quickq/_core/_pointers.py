"""The pointer index: one row per non-empty queue, keyed by when it is next due.

Scanners find queues with due work by a snapshot read of the rows due by now,
without visiting every queue. A queue's pointer record holds the time of its
row and, while a consumer holds the queue lease, that lease (QuiCK leases the
pointer itself by moving its time forward).
"""

from __future__ import annotations

from ..stores._protocol import Transaction
from ._keys import Layout
from ._records import QueuePointer


async def get_pointer(tr: Transaction, layout: Layout, qid: str) -> QueuePointer | None:
    raw = await tr.get(layout.queue_pointer(qid))
    return None if raw is None else QueuePointer.from_bytes(raw)


def set_pointer(
    tr: Transaction, layout: Layout, qid: str, old: QueuePointer | None, new: QueuePointer | None
) -> None:
    """Replace the pointer *old* (as read) by *new*; None removes it."""
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
    ensure_pointer_as_read(tr, layout, qid, await get_pointer(tr, layout, qid), time)


def ensure_pointer_as_read(
    tr: Transaction, layout: Layout, qid: str, pointer: QueuePointer | None, time: int
) -> None:
    """:func:`ensure_pointer`, given the pointer as read (reads issued together)."""
    if pointer is None:
        set_pointer(tr, layout, qid, None, QueuePointer(time))
    elif pointer.holder is None and pointer.time > time:
        set_pointer(tr, layout, qid, pointer, QueuePointer(time))


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
