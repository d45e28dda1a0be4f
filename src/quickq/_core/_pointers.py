"""The pointer index and the due marks: how scanners find queues with due work.

The pointer index has one row per non-empty queue, keyed by when it is next
due. A queue's pointer record holds the time of its row and, while a
consumer holds the queue lease, that lease (QuiCK leases the pointer itself
by moving its time forward). Only the holder of the queue lease writes it.

Whatever makes work due without the queue lease (enqueue, a retry, a
release, a replayed dead letter) writes the queue's due mark instead: one
blind ``set`` of a fresh random token, with no read, so it never conflicts
with the consumer leasing from the queue. That consumer clears the mark it
read with a compare-and-clear, so a mark written meanwhile survives and the
queue is due again. Scanners peek (snapshot reads, no conflicts) at the
pointer rows due by now and at the marks.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

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


def mark_due(tr: Transaction, layout: Layout, qid: str) -> None:
    """Mark the queue due, and bump its shard's wake-up counter (blind writes).

    The next consumer to lease from the queue finds its work, moves the
    pointer to the queue's next due time, and clears this mark unless a newer
    one replaced it. Work due later (a delay, a backoff) costs that consumer
    one look too soon; no read here means no conflict with it.
    """
    tr.set(layout.mark(qid), secrets.token_bytes(8))
    tr.add(layout.wake_key(qid), 1)


async def ensure_pointer(tr: Transaction, layout: Layout, qid: str, time: int) -> None:
    """Make the queue's work due at *time* visible: :func:`mark_due` (which
    does not read, and so does not wait on anything, whatever *time* is)."""
    mark_due(tr, layout, qid)


async def due_queues(tr: Transaction, layout: Layout, now: int, limit: int) -> list[str]:
    """Queues due now: those whose pointer is due (oldest first), then those
    marked due, each read up to *limit* (snapshot reads: no conflicts). Fewer
    than *limit* means neither read stopped at its limit: these are all."""
    begin, end = layout.pointer_range(now)
    rows = await tr.get_range(begin, end, limit=limit, snapshot=True)
    marks = await tr.get_range(*layout.marks_range(), limit=limit, snapshot=True)
    due = dict.fromkeys(layout.parse_pointer(key)[1] for key, _ in rows)
    due.update(dict.fromkeys(layout.parse_mark(key) for key, _ in marks))
    return list(due)


async def wake_counters(tr: Transaction, layout: Layout) -> Mapping[bytes, bytes | None]:
    """The wake-up counters as they are now (one snapshot range read), to
    watch: every shard's, and the single key ``(w,)`` that producers of
    earlier versions bump."""
    keys = [layout.wake, *layout.wake_keys]
    rows = dict(await tr.get_range(keys[0], keys[-1] + b"\x00", snapshot=True))
    return {key: rows.get(key) for key in keys}


async def next_due_time(tr: Transaction, layout: Layout, after: int | None = None) -> int | None:
    """The earliest pointer time of any queue (later than *after*, if given;
    snapshot read), or None with no such queue."""
    begin = layout.pointers + b"\x00" if after is None else layout.pointer_range(after)[1]
    rows = await tr.get_range(begin, layout.pointers + b"\xff", limit=1, snapshot=True)
    return layout.parse_pointer(rows[0][0])[0] if rows else None
