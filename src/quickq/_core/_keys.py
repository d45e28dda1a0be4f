"""The key layout: which key holds what, and the fast tuple packing behind it.

Every key is ``root + fdb.tuple.pack(...)`` under a root subspace the
application chooses (default ``("quickq",)``). Per queue (tenant) ``qid``::

    (q, qid, i, item_id)                  item record (binary header, payload)
    (q, qid, r, priority, vesting, id)    ready index: pending items, best first
    (q, qid, s, vesting, id)              schedule index: items waiting for their time
    (q, qid, l, expiry, id)               lease index: running items by lease expiry
    (q, qid, d, item_id)                  dead letters (never in the item ranges)
    (q, qid, c, name)                     counters (atomic add): pending/scheduled/running/dead
    (q, qid, p)                           the queue's pointer record
    (q, qid, h, minute, name)             history: per-minute counters (atomic add)
    (p, time, qid)                        pointer index: one row per non-empty queue
    (m, qid)                              due mark: a random token, set blindly by whatever
                                          makes the queue's work due without its queue lease
    (n, qid)                              names of queues ever used (for listing)
    (b, consumer, token)                  a consumer's last lease batch (idempotent retries)
    (x, minute, token)                    enqueue, completion and control receipts
    (w, shard)                            wake-up counters (atomic add), one per shard of
                                          queues (WAKE_SHARDS), bumped with each due mark
    (hq, minute, qid)                     history index: the queues with history that minute
    (ht, minute, shard, name)             history: store-wide per-minute counters (atomic
                                          add), in HISTORY_SHARDS shards
    (hb, consumer)                        a live consumer's heartbeat record (JSON), written
                                          blind every few seconds, cleared when it stops

A queue is found due through its pointer row, or through its due mark: a
producer marks the queue (one blind write, no read, so no conflict with the
consumer that holds the queue lease), and the consumer that next leases
from the queue clears the mark it read with a compare-and-clear, so a mark
written meanwhile survives. One mark per queue, so a busy queue cannot hide
the others from a peek. The old global wake key ``(w,)`` is no longer written.

A pending item is found through the ready index, whose order is the run order
(priority, then vesting time); items that are not yet due sit in the schedule
index and are moved over ("promoted") when due, so no number of future items
can hide a ready one, and a peek never reads them. Tuple encoding escapes
every element, so a queue id cannot reach outside its own ``(q, qid)`` range.

:class:`State` lives here rather than with the records because its values are
first of all the tags of the three index ranges (``r``, ``s``, ``l``); the
item record stores the same tag, so the records build on this module.
"""

from __future__ import annotations

import enum
import zlib
from typing import Any, Final, Literal

import fdb.tuple as fdb_tuple

_INT_LIMIT: Final = (1 << 64) - 1
"""Ints of at most eight bytes (the bindings encode +-(2**64 - 1) in the longer form)."""
WAKE_SHARDS: Final = 16
"""Wake-up counters: a queue's marks bump one of these (by a stable hash of
its id), so that no one key takes every enqueue of a cluster (FoundationDB
advises splitting keys written more than 10-100 times a second)."""
HISTORY_SHARDS: Final = 8
"""Store-wide history counters: a consumer adds to one shard's (by a stable
hash of its id), so that no one key takes every batch of a cluster (the
reason for WAKE_SHARDS); a reader sums the shards."""
_PREFIX_CACHE_SIZE: Final = 50_000
"""Cached key prefixes (a few per queue) before the cache starts over."""


class State(enum.StrEnum):
    """Which index a live item sits in, named as the public job states are.

    The values are the one-letter tags of the index ranges in keys and of the
    ``w`` field of item records: they are stored, so they never change.
    """

    PENDING = "r"
    """In the ready index: due, waiting for a consumer (run order)."""
    SCHEDULED = "s"
    """In the schedule index: waiting for its vesting time."""
    RUNNING = "l"
    """In the lease index: leased by a consumer until its lease expiry."""

    @property
    def counter(self) -> Literal["pending", "scheduled", "running"]:
        """The name of the counter of items in this state (also ``Job.state``)."""
        return _COUNTER_OF[self]


_COUNTER_OF: Final[dict[State, Literal["pending", "scheduled", "running"]]] = {
    State.PENDING: "pending",
    State.SCHEDULED: "scheduled",
    State.RUNNING: "running",
}


def _str(text: str) -> bytes:
    """The tuple encoding of one str element."""
    return b"\x02" + text.encode().replace(b"\x00", b"\x00\xff") + b"\x00"


def _int(n: int) -> bytes:
    """The tuple encoding of one int element."""
    if not -_INT_LIMIT < n < _INT_LIMIT:
        packed: bytes = fdb_tuple.pack((n,))
        return packed
    if n > 0:
        size = (n.bit_length() + 7) // 8
        return _INT_CODES[20 + size] + n.to_bytes(size, "big")
    if n == 0:
        return b"\x14"
    size = ((-n).bit_length() + 7) // 8
    return _INT_CODES[20 - size] + (n + (1 << (8 * size)) - 1).to_bytes(size, "big")


_INT_CODES: Final = [bytes([code]) for code in range(256)]


def _pack(parts: tuple[Any, ...]) -> bytes:
    """``fdb.tuple.pack(parts)``, with a fast path for the str and int elements
    of quickq's own keys (the bindings' generic packer dominated the hot path).
    Byte-for-byte the same encoding; anything else goes to the bindings."""
    out = b""
    for part in parts:
        kind = type(part)
        if kind is str:
            out += _str(part)
        elif kind is int and -_INT_LIMIT < part < _INT_LIMIT:
            out += _int(part)
        else:
            packed: bytes = fdb_tuple.pack(parts)
            return packed
    return out


def _unpack(data: bytes) -> tuple[Any, ...]:
    """``fdb.tuple.unpack(data)``, with a fast path for tuples of str and int
    elements (quickq's index keys); anything else goes to the bindings."""
    out: list[Any] = []
    pos, end = 0, len(data)
    while pos < end:
        code = data[pos]
        if code == 0x02:
            stop = data.find(b"\x00", pos + 1)
            while stop >= 0 and data[stop + 1 : stop + 2] == b"\xff":  # an escaped NUL
                stop = data.find(b"\x00", stop + 2)
            if stop < 0:
                break
            out.append(data[pos + 1 : stop].replace(b"\x00\xff", b"\x00").decode())
            pos = stop + 1
        elif 0x0B < code < 0x1D:
            size = code - 0x14 if code >= 0x14 else 0x14 - code
            pos += 1 + size
            if pos > end:
                break
            n = int.from_bytes(data[pos - size : pos], "big")
            out.append(n if code >= 0x14 else n - (1 << (8 * size)) + 1)
        else:
            break
    else:
        return tuple(out)
    return fdb_tuple.unpack(data)  # type: ignore[no-any-return]


class Layout:
    """Builds and parses the keys of one root subspace."""

    def __init__(self, root: tuple[Any, ...] = ("quickq",)) -> None:
        self.prefix = _pack(root)
        # Packing is the hot path's main cost: cache the fixed prefixes.
        self._prefixes: dict[tuple[str, str], bytes] = {}
        self.pointers = self.prefix + _pack(("p",))
        self.names = self.prefix + _pack(("n",))
        self.marks = self.prefix + _pack(("m",))
        self.wake = self.prefix + _pack(("w",))
        self.wake_keys = [self.wake + _int(shard) for shard in range(WAKE_SHARDS)]
        self.history_index = self.prefix + _pack(("hq",))
        self.history_totals = self.prefix + _pack(("ht",))
        self.heartbeats = self.prefix + _pack(("hb",))

    def _prefix(self, qid: str, part: str) -> bytes:
        """The packed ``(q, qid, part)``, the prefix of one range of queue *qid*; cached."""
        prefix = self._prefixes.get((qid, part))
        if prefix is None:
            if len(self._prefixes) > _PREFIX_CACHE_SIZE:
                self._prefixes.clear()
            packed = _pack(("q", qid, str(part)))  # a State packs as its plain tag
            prefix = self._prefixes[qid, part] = self.prefix + packed
        return prefix

    def sub(self, qid: str, part: str, *rest: Any) -> bytes:
        """The key ``(q, qid, part, *rest)``; *part* is a tag (``i``) or a State."""
        return self._prefix(qid, part) + _pack(rest) if rest else self._prefix(qid, part)

    def range(self, qid: str, part: str, *rest: Any) -> tuple[bytes, bytes]:
        """The ``[begin, end)`` range of every key that extends ``sub(qid, part, *rest)``."""
        key = self.sub(qid, part, *rest)
        return key + b"\x00", key + b"\xff"

    # The keys written for every job, packed without the generic loop.

    def item(self, qid: str, item_id: str) -> bytes:
        return self._prefix(qid, "i") + _str(item_id)

    def ready(self, qid: str, priority: int, vesting: int, item_id: str) -> bytes:
        return self._prefix(qid, State.PENDING) + _int(priority) + _int(vesting) + _str(item_id)

    def scheduled(self, qid: str, vesting: int, item_id: str) -> bytes:
        return self._prefix(qid, State.SCHEDULED) + _int(vesting) + _str(item_id)

    def leased(self, qid: str, expiry: int, item_id: str) -> bytes:
        return self._prefix(qid, State.RUNNING) + _int(expiry) + _str(item_id)

    def dead_letter(self, qid: str, item_id: str) -> bytes:
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

    def mark(self, qid: str) -> bytes:
        return self.marks + _str(qid)

    def marks_range(self) -> tuple[bytes, bytes]:
        return self.marks + b"\x00", self.marks + b"\xff"

    def parse_mark(self, key: bytes) -> str:
        (qid,) = _unpack(key[len(self.marks) :])
        return str(qid)

    def wake_key(self, qid: str) -> bytes:
        """The wake-up counter of *qid*'s shard (a hash stable across processes)."""
        return self.wake_keys[zlib.crc32(qid.encode()) % WAKE_SHARDS]

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

    # History (see quickq._core._history).

    def history(self, qid: str, minute: int, name: str) -> bytes:
        return self._prefix(qid, "h") + _int(minute) + _str(name)

    def history_range(self, qid: str, first: int, last: int) -> tuple[bytes, bytes]:
        """*qid*'s history keys of minutes *first* to *last*, both included."""
        prefix = self._prefix(qid, "h")
        return prefix + _int(first), prefix + _int(last + 1)

    def history_before(self, qid: str, minute: int) -> tuple[bytes, bytes]:
        """*qid*'s history keys of every minute before *minute*."""
        prefix = self._prefix(qid, "h")
        return prefix, prefix + _int(minute)

    def history_entry(self, minute: int, qid: str) -> bytes:
        return self.history_index + _int(minute) + _str(qid)

    def history_entries_before(self, minute: int) -> tuple[bytes, bytes]:
        return self.history_index, self.history_index + _int(minute)

    def history_total(self, minute: int, shard: int, name: str) -> bytes:
        return self.history_totals + _int(minute) + _int(shard) + _str(name)

    def history_totals_range(self, first: int, last: int) -> tuple[bytes, bytes]:
        return self.history_totals + _int(first), self.history_totals + _int(last + 1)

    def history_totals_before(self, minute: int) -> tuple[bytes, bytes]:
        return self.history_totals, self.history_totals + _int(minute)

    def parse_history_entry(self, key: bytes) -> tuple[int, str]:
        minute, qid = _unpack(key[len(self.history_index) :])
        return minute, qid

    def parse_history_total(self, key: bytes) -> tuple[int, str]:
        """The minute and name of a store-wide history key (its shard left out)."""
        minute, _, name = _unpack(key[len(self.history_totals) :])
        return minute, name

    def heartbeat(self, consumer: str) -> bytes:
        return self.heartbeats + _str(consumer)

    def heartbeat_range(self) -> tuple[bytes, bytes]:
        """Every consumer's heartbeat record."""
        return self.heartbeats + b"\x00", self.heartbeats + b"\xff"

    def parse_heartbeat(self, key: bytes) -> str:
        (consumer,) = _unpack(key[len(self.heartbeats) :])
        return str(consumer)

    def tail(self, qid: str, key: bytes, part: str) -> tuple[Any, ...]:
        """The elements of *key* after ``(q, qid, part)``."""
        return _unpack(key[len(self._prefix(qid, part)) :])
