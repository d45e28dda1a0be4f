"""The records stored as values: items, leases, dead letters and queue pointers.

Each record encodes itself as compact JSON (an item's payload follows its
header after a NUL, unencoded), and the field tags are the stored format:
they never change. Errors are cut by bytes before they are stored, and
:func:`record_overhead` bounds what a record adds to its payload, so the
producer can refuse a payload that could not be stored at every step of its
life.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final, Literal

import attrs

from .._limits import ERROR_BYTES, MIN_PRIORITY
from ._keys import Layout, State

COUNTERS: Final = ("pending", "scheduled", "running", "dead")
"""The per-queue counters. "dead" counts dead letters: a stored key, kept so."""


@attrs.frozen
class Lease:
    """Who runs an item, under which lease id, until when (ms)."""

    holder: str
    lease_id: str
    expiry: int


@attrs.frozen
class Item:
    """A job as stored: everything but its queue id, which is in its key."""

    item_id: str
    topic: str
    payload: bytes
    priority: int
    vesting: int
    max_retries: int
    enqueued_at: int
    state: State
    attempt: int = 0
    errors: int = 0
    timeout: float | None = None
    lease: Lease | None = None
    last_error: str | None = None
    settled_by: str | None = None
    """The lease id of the attempt that last settled this item (idempotent retries)."""

    @property
    def due(self) -> int:
        """When this item next needs a consumer (ms): its lease's expiry while
        leased (it comes back then if its holder dies), else its vesting time."""
        return self.lease.expiry if self.lease else self.vesting

    def index_key(self, layout: Layout, qid: str) -> bytes:
        """The key of this item's entry in the index of its state."""
        if self.state is State.PENDING:
            return layout.ready(qid, self.priority, self.vesting, self.item_id)
        if self.state is State.SCHEDULED:
            return layout.scheduled(qid, self.vesting, self.item_id)
        assert self.lease is not None
        return layout.leased(qid, self.lease.expiry, self.item_id)

    def to_bytes(self) -> bytes:
        header = {
            "id": self.item_id,
            "t": self.topic,
            "pr": self.priority,
            "v": self.vesting,
            "mr": self.max_retries,
            "eq": self.enqueued_at,
            "w": self.state.value,
            "a": self.attempt,
            "e": self.errors,
            "to": self.timeout,
            "l": [self.lease.holder, self.lease.lease_id, self.lease.expiry]
            if self.lease
            else None,
            "le": self.last_error,
            "sb": self.settled_by,
        }
        return json.dumps(header, separators=(",", ":")).encode() + b"\x00" + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> Item:
        head, _, payload = data.partition(b"\x00")
        h = json.loads(head)
        lease = Lease(h["l"][0], h["l"][1], h["l"][2]) if h["l"] else None
        return cls(
            item_id=h["id"],
            topic=h["t"],
            payload=payload,
            priority=h["pr"],
            vesting=h["v"],
            max_retries=h["mr"],
            enqueued_at=h["eq"],
            state=State(h["w"]),
            attempt=h["a"],
            errors=h["e"],
            timeout=h["to"],
            lease=lease,
            last_error=h["le"],
            settled_by=h["sb"],
        )


DeadReason = Literal["failed", "discarded", "no_handler", "snoozed_out", "unrecordable"]


@attrs.frozen
class DeadLetterRecord:
    """A dead letter as stored: the item as it was, why it died, and when (ms)."""

    item: Item
    reason: DeadReason
    error: str | None
    died_at: int

    def to_bytes(self) -> bytes:
        head = json.dumps(
            {"r": self.reason, "e": self.error, "at": self.died_at}, separators=(",", ":")
        )
        item = self.item
        if item.last_error is not None and item.last_error == self.error:
            item = attrs.evolve(item, last_error=None)  # stored once, in the header
        return head.encode() + b"\x00" + item.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DeadLetterRecord:
        head, _, rest = data.partition(b"\x00")
        h = json.loads(head)
        item = Item.from_bytes(rest)
        if item.last_error is None and h["e"] is not None:
            item = attrs.evolve(item, last_error=h["e"])
        return cls(item=item, reason=h["r"], error=h["e"], died_at=h["at"])


@attrs.frozen
class QueuePointer:
    """A queue's pointer: when it is next due, and its queue lease if taken.

    Taking the queue lease moves ``time`` forward to the lease's expiry, so other
    scanners see the queue as not due until the lease ends (QuiCK).
    """

    time: int
    holder: str | None = None
    token: str | None = None
    empty_since: int | None = None

    def to_bytes(self) -> bytes:
        return json.dumps([self.time, self.holder, self.token, self.empty_since]).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> QueuePointer:
        time, holder, token, empty_since = json.loads(data)
        return cls(time, holder, token, empty_since)


# -- sizes ----------------------------------------------------------------------

_CUT: Final = "\n[... truncated ...]\n"
_LONGEST_ESCAPE: Final = 12
"""The most bytes one character takes in JSON (a surrogate pair's two ``\\uXXXX``)."""


def truncate_error(text: str | None, budget: int = ERROR_BYTES) -> str | None:
    """*text*, or its start and its end (a traceback's first and last lines)
    around a marker, so that its JSON encoding takes at most *budget* bytes."""
    if text is None or len(text) * _LONGEST_ESCAPE + 2 <= budget:
        return text
    if _json_bytes(text) <= budget:
        return text
    half = (budget - _json_bytes(_CUT)) // 2
    head = text[: _fitting(text, half, lambda n: text[:n])]
    tail_len = _fitting(text, half, lambda n: text[len(text) - n :])
    return head + _CUT + text[len(text) - tail_len :]


def _fitting(text: str, budget: int, part: Callable[[int], str]) -> int:
    """The most characters ``part(n)`` may take for its JSON body to fit *budget*."""
    lo, hi = 0, min(len(text), budget)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _json_bytes(part(mid)) - 2 <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _json_bytes(text: str) -> int:
    return len(json.dumps(text))  # ASCII: escapes keep every byte one char


def record_overhead(*, id_chars: int, topic_chars: int, max_retries: int) -> int:
    """The most bytes an item's record, or its dead letter, takes beyond its
    payload: every field at its longest (ids of characters with the longest
    JSON escape, times of 16 digits, a lease, an error of ERROR_BYTES)."""
    big = 10**16 - 1
    lease_id = "f" * 12 + "." + "9" * 10  # a batch token, a dot, an index in the batch
    error = "e" * (ERROR_BYTES - 2)
    item = Item(
        item_id="\U0001f600" * id_chars,
        topic="t" * topic_chars,
        payload=b"",
        priority=MIN_PRIORITY,
        vesting=big,
        max_retries=max_retries,
        enqueued_at=big,
        state=State.RUNNING,
        attempt=max_retries + 1,
        errors=max_retries + 1,
        timeout=1.2345678901234567e-300,
        lease=Lease("f" * 16, lease_id, big),
        last_error=error,
        settled_by=lease_id,
    )
    dead = DeadLetterRecord(attrs.evolve(item, lease=None), "unrecordable", error, big)
    return max(len(item.to_bytes()), len(dead.to_bytes()))
