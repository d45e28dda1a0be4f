"""Key layout and record codecs: how a queue is laid out in the store.

Every key is ``root + fdb.tuple.pack(...)`` under a root subspace the
application chooses (default ``("quickq",)``). Per queue (tenant) ``qid``::

    (q, qid, i, item_id)                  item record (header JSON, NUL, payload)
    (q, qid, r, priority, vesting, id)    ready index: vested items, best first
    (q, qid, s, vesting, id)              schedule index: items waiting for their time
    (q, qid, l, expiry, id)               lease index: running items by lease expiry
    (q, qid, d, item_id)                  dead letters (never in the item ranges)
    (q, qid, c, name)                     counters (atomic add): pending/scheduled/running/dead
    (q, qid, p)                           the queue's pointer record
    (p, time, qid)                        pointer index: one row per non-empty queue
    (n, qid)                              names of queues ever used (for listing)
    (b, consumer, token)                  a consumer's last lease batch (idempotent retries)
    (x, minute, token)                    enqueue and completion receipts, kept 15 minutes
    (w,)                                  wake-up counter, bumped by every enqueue

A ready item is found through the ready index, whose order is the run order
(priority, then vesting time); items that are not yet due sit in the schedule
index and are moved over ("promoted") when due, so no number of future items
can hide a ready one, and a peek never reads them. Tuple encoding escapes
every element, so a queue id cannot reach outside its own ``(q, qid)`` range.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, Literal

import attrs
import fdb.tuple as fdb_tuple

from .._limits import ERROR_BYTES

Where = Literal["r", "s", "l"]


def _pack(parts: tuple[Any, ...]) -> bytes:
    """``fdb.tuple.pack(parts)``, with a fast path for the str and int elements
    of quickq's own keys (the bindings' generic packer dominated the hot path).
    Byte-for-byte the same encoding; anything else goes to the bindings."""
    out = bytearray()
    for part in parts:
        kind = type(part)
        if kind is str:
            out += b"\x02"
            out += part.encode().replace(b"\x00", b"\x00\xff")
            out += b"\x00"
        elif kind is int and -_INT_LIMIT < part < _INT_LIMIT:
            if part == 0:
                out += b"\x14"
            elif part > 0:
                size = (part.bit_length() + 7) // 8
                out.append(0x14 + size)
                out += part.to_bytes(size, "big")
            else:
                size = ((-part).bit_length() + 7) // 8
                out.append(0x14 - size)
                out += (part + (1 << (8 * size)) - 1).to_bytes(size, "big")
        else:
            packed: bytes = fdb_tuple.pack(parts)
            return packed
    return bytes(out)


_INT_LIMIT: Final = 1 << 64


COUNTERS: Final = ("pending", "scheduled", "running", "dead")


class Layout:
    """Builds and parses the keys of one root subspace."""

    def __init__(self, root: tuple[Any, ...] = ("quickq",)) -> None:
        self.root = root
        self.prefix = _pack(root)
        # Packing is the hot path's main cost: cache the fixed prefixes.
        self._prefixes: dict[tuple[str, str], bytes] = {}
        self.pointers = self.prefix + _pack(("p",))
        self.names = self.prefix + _pack(("n",))
        self.wake = self.prefix + _pack(("w",))

    def queue(self, qid: str) -> bytes:
        """The prefix of every key of queue *qid*."""
        return self._prefix(qid, "")

    def _prefix(self, qid: str, part: str) -> bytes:
        """``queue(qid)`` followed by the packed *part* (none when empty); cached."""
        prefix = self._prefixes.get((qid, part))
        if prefix is None:
            if len(self._prefixes) > 50_000:
                self._prefixes.clear()
            parts = ("q", qid, part) if part else ("q", qid)
            prefix = self._prefixes[qid, part] = self.prefix + _pack(parts)
        return prefix

    def sub(self, qid: str, part: str, *rest: Any) -> bytes:
        """The key ``(q, qid, part, *rest)``."""
        return self._prefix(qid, part) + _pack(rest) if rest else self._prefix(qid, part)

    def range(self, qid: str, part: str, *rest: Any) -> tuple[bytes, bytes]:
        """The ``[begin, end)`` range of every key that extends ``sub(qid, part, *rest)``."""
        key = self.sub(qid, part, *rest)
        return key + b"\x00", key + b"\xff"

    def item(self, qid: str, item_id: str) -> bytes:
        return self.sub(qid, "i", item_id)

    def ready(self, qid: str, priority: int, vesting: int, item_id: str) -> bytes:
        return self.sub(qid, "r", priority, vesting, item_id)

    def scheduled(self, qid: str, vesting: int, item_id: str) -> bytes:
        return self.sub(qid, "s", vesting, item_id)

    def leased(self, qid: str, expiry: int, item_id: str) -> bytes:
        return self.sub(qid, "l", expiry, item_id)

    def dead(self, qid: str, item_id: str) -> bytes:
        return self.sub(qid, "d", item_id)

    def counter(self, qid: str, name: str) -> bytes:
        return self.sub(qid, "c", name)

    def queue_pointer(self, qid: str) -> bytes:
        return self.sub(qid, "p")

    def pointer(self, time: int, qid: str) -> bytes:
        return self.pointers + _pack((time, qid))

    def pointer_range(self, until: int) -> tuple[bytes, bytes]:
        """Pointer rows due at or before *until*."""
        return self.pointers + b"\x00", self.pointers + _pack((until + 1,))

    def parse_pointer(self, key: bytes) -> tuple[int, str]:
        time, qid = fdb_tuple.unpack(key[len(self.pointers) :])
        return time, qid

    def receipt(self, bucket: int, token: str) -> bytes:
        return self.prefix + _pack(("x", bucket, token))

    def receipts_before(self, bucket: int) -> tuple[bytes, bytes]:
        """The range of every receipt in a bucket before *bucket*."""
        return self.prefix + _pack(("x",)) + b"\x00", self.prefix + _pack(("x", bucket))

    def name(self, qid: str) -> bytes:
        return self.names + _pack((qid,))

    def parse_name(self, key: bytes) -> str:
        (qid,) = fdb_tuple.unpack(key[len(self.names) :])
        return str(qid)

    def batch(self, consumer: str, token: str) -> bytes:
        return self.prefix + _pack(("b", consumer, token))

    def batches(self, consumer: str) -> tuple[bytes, bytes]:
        key = self.prefix + _pack(("b", consumer))
        return key + b"\x00", key + b"\xff"

    def tail(self, qid: str, key: bytes, part: str) -> tuple[Any, ...]:
        """The elements of *key* after ``(q, qid, part)``."""
        return fdb_tuple.unpack(key[len(self._prefix(qid, part)) :])  # type: ignore[no-any-return]


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
    where: Where
    attempt: int = 0
    errors: int = 0
    timeout: float | None = None
    lease: Lease | None = None
    last_error: str | None = None
    settled_by: str | None = None
    """The lease id of the attempt that last settled this item (idempotent retries)."""

    def index_key(self, layout: Layout, qid: str) -> bytes:
        """The key of this item's entry in the index its ``where`` names."""
        if self.where == "r":
            return layout.ready(qid, self.priority, self.vesting, self.item_id)
        if self.where == "s":
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
            "w": self.where,
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
            where=h["w"],
            attempt=h["a"],
            errors=h["e"],
            timeout=h["to"],
            lease=lease,
            last_error=h["le"],
            settled_by=h["sb"],
        )


DeadReason = Literal["failed", "discarded", "no_handler", "snoozed_out", "unrecordable"]

"""The most bytes an error text takes in a record, as its JSON string (quotes
and escapes included): errors are cut to fit by :func:`truncate_error`."""
_CUT: Final = "\n[... truncated ...]\n"


def truncate_error(text: str | None, budget: int = ERROR_BYTES) -> str | None:
    """*text*, or its start and its end (a traceback's first and last lines)
    around a marker, so that its JSON encoding takes at most *budget* bytes."""
    if text is None or len(text) * 12 + 2 <= budget:  # 12: the longest escape of a char
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
    lease_id = "f" * 12 + "." + "9" * 10
    error = "e" * (ERROR_BYTES - 2)
    item = Item(
        item_id="\U0001f600" * id_chars,
        topic="t" * topic_chars,
        payload=b"",
        priority=-(2**31),
        vesting=big,
        max_retries=max_retries,
        enqueued_at=big,
        where="l",
        attempt=max_retries + 1,
        errors=max_retries + 1,
        timeout=1.2345678901234567e-300,
        lease=Lease("f" * 16, lease_id, big),
        last_error=error,
        settled_by=lease_id,
    )
    dead = DeadItem(attrs.evolve(item, lease=None), "unrecordable", error, big)
    return max(len(item.to_bytes()), len(dead.to_bytes()))


@attrs.frozen
class DeadItem:
    """A dead letter: the item as it was, why it died, and when (ms)."""

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
    def from_bytes(cls, data: bytes) -> DeadItem:
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
