"""Enqueue: store new jobs, first enqueue of an id wins, once per call.

The producer (:class:`quickq.JobQueue`) validates and encodes; this module
writes. A batch makes its items, their index entries, its counters (one add
per queue and state), the queue names, and one due mark and wake-up bump
per queue (blind writes: an enqueue never reads what leasing writes, so the
two never conflict), and leaves a receipt so that a re-run after
commit-unknown-result enqueues nothing twice.
"""

from __future__ import annotations

import secrets

import attrs

from ..stores._protocol import Transaction, get_many
from ._items import Tally, put
from ._keys import Layout, State
from ._pointers import mark_due, set_pointer
from ._receipts import enqueue_receipt
from ._records import DeadLetterRecord, Item, QueuePointer


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
    trace: bytes | None = None
    """The trace context of the job's creation (opaque here), stored with it."""

    def longest_key(self, layout: Layout) -> int:
        """The length of the longest key this job's own entries can take: its
        ready entry or its dead letter (checked against the store's key limit)."""
        return max(
            len(layout.ready(self.queue_id, self.priority, self.vesting, self.item_id)),
            len(layout.dead_letter(self.queue_id, self.item_id)),
        )


async def enqueue_many(
    tr: Transaction, layout: Layout, news: list[NewItem], now: int, *, token: str
) -> list[tuple[Item, bool]]:
    """Store each of *news* unless its id exists. Returns ``(item, created)`` pairs.

    A custom id the queue holds (or holds as a dead letter) returns the
    existing job: the first enqueue wins. *now* and *token* must be the same
    each time the body runs: the batch leaves a receipt under *token*, so a
    re-run after commit-unknown-result recognises its own earlier commit, even
    after consumers have finished its jobs, and enqueues nothing twice. Reads,
    in two round trips whatever the batch: the receipt, and the ids of
    custom-id jobs only (together).
    """
    receipt = enqueue_receipt(layout, token, now)
    earlier = await tr.get(receipt)  # which jobs our own earlier commit created
    if earlier is None:  # only a custom id can already exist: generated ones are fresh
        check = [new for new in news if new.custom_id]
    else:
        check = [new for n, new in enumerate(news) if earlier[n : n + 1] != b"1"]
    found = await _existing_many(tr, layout, check)
    out: list[tuple[Item, bool]] = []
    due: dict[str, int] = {}  # queue given a new job -> its earliest vesting
    tally = Tally()  # counters change once per queue and state, not per job
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
            state=State.PENDING if new.vesting <= now else State.SCHEDULED,
            timeout=new.timeout,
            trace=new.trace,
        )
        out.append((item, created))
        if earlier is not None or not created:
            continue
        if new.custom_id:  # a repeat of this id later in the batch finds this job
            found[qid, new.item_id] = item
        put(tr, layout, qid, item)
        tally.count(qid, item.state, 1)
        if qid not in due:
            tr.set(layout.name(qid), b"")
        due[qid] = min(due.get(qid, new.vesting), new.vesting)
    tally.flush(tr, layout)
    if earlier is None:
        tr.set(receipt, b"".join(b"1" if created else b"0" for _, created in out))
    later = [qid for qid, vesting in due.items() if vesting > now]
    for qid, vesting in due.items():
        if vesting <= now:
            mark_due(tr, layout, qid)
    if later:
        await _due_later(tr, layout, {qid: due[qid] for qid in later})
    return out


async def _due_later(tr: Transaction, layout: Layout, due: dict[str, int]) -> None:
    """Make queues whose new jobs are all due later visible at that time.

    A due mark would send a consumer to the queue now, only to find nothing
    ready: with many queues of future jobs (100,000 tenants with a reminder
    each) consumers would spend their time on such visits. So a queue nobody
    holds gets its pointer moved to the new time instead (read with a
    conflict: a consumer taking the queue meanwhile makes one of the two
    retry; a trickle of future jobs is rare next to leasing); a held queue
    gets a mark, which its holder's release leaves in place.
    """
    raws = await get_many(tr, [layout.queue_pointer(qid) for qid in due])
    for (qid, vesting), raw in zip(due.items(), raws, strict=True):
        pointer = None if raw is None else QueuePointer.from_bytes(raw)
        if pointer is not None and pointer.holder is not None:
            mark_due(tr, layout, qid)
            continue
        if pointer is None or pointer.time > vesting:
            set_pointer(tr, layout, qid, pointer, QueuePointer(vesting))
        tr.add(layout.wake_key(qid), 1)  # idle consumers recompute when to look


async def _existing_many(
    tr: Transaction, layout: Layout, news: list[NewItem]
) -> dict[tuple[str, str], Item | None]:
    """The jobs of *news*' ids, waiting, running or dead (None: absent), read together."""
    if not news:
        return {}
    keys: list[bytes] = []
    for new in news:
        keys += (
            layout.item(new.queue_id, new.item_id),
            layout.dead_letter(new.queue_id, new.item_id),
        )
    raws = await get_many(tr, keys)
    found: dict[tuple[str, str], Item | None] = {}
    for n, new in enumerate(news):
        raw, dead = raws[2 * n], raws[2 * n + 1]
        if raw is not None:
            found[new.queue_id, new.item_id] = Item.from_bytes(raw)
        else:
            found[new.queue_id, new.item_id] = (
                None if dead is None else DeadLetterRecord.from_bytes(dead).item
            )
    return found
