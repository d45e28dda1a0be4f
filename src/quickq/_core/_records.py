"""The records stored as values: items, leases, dead letters and queue pointers.

An item, written and read for every job at every step, is a compact binary
header (fixed fields, then length-prefixed UTF-8 strings) followed by its
payload, unencoded. Its first byte names the format; records of the earlier
format (a JSON header with fixed field tags, a NUL, the payload) start with
``{`` and are read as well, so a store written before keeps working. The
rarer records stay JSON: a dead letter (a JSON header with why and when, a
NUL, the item's record) and a queue pointer. The stored formats never change
in place: a new one gets a new first byte. Errors are cut by bytes before
they are stored, and :func:`record_overhead` bounds what a record adds to its
payload, so the producer can refuse a payload that could not be stored at
every step of its life.

Flag bits from 16 up are extensions: each is a length and its bytes, after
the fixed optional fields, in bit order, and a reader skips the ones it does
not know, so a later field never makes a record unreadable again. The first
is the job's trace context (bit 16), kept opaque here: ``quickq._telemetry``
makes and reads it.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Final, Literal

import attrs

from .._limits import ERROR_BYTES, MIN_PRIORITY, TRACE_BYTES
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
    trace: bytes | None = None
    """The trace context of the job's creation (``quickq._telemetry``'s
    encoding, at most TRACE_BYTES), kept through retries, snoozes, dead
    letters and replays."""

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

    def leased(self, lease: Lease) -> Item:
        """This item running under *lease*, its attempt counted (``attrs.evolve``
        spelled out: leasing does it for every job)."""
        return Item(
            self.item_id,
            self.topic,
            self.payload,
            self.priority,
            self.vesting,
            self.max_retries,
            self.enqueued_at,
            State.RUNNING,
            self.attempt + 1,
            self.errors,
            self.timeout,
            lease,
            self.last_error,
            self.settled_by,
            self.trace,
        )

    def to_bytes(self) -> bytes:
        """The stored record: a binary header, then the payload as it is.

        The header is fixed fields (struct-packed, little-endian) then the
        strings, each UTF-8 after its length (see :data:`_HEAD`). A record
        with an integer outside the header's fields (never written since
        times and counts were bounded) is stored in the JSON format instead,
        which :meth:`from_bytes` reads as well.
        """
        item_id = self.item_id.encode("utf-8", "surrogatepass")
        topic = self.topic.encode("utf-8", "surrogatepass")
        parts = [b"", item_id, topic]
        flags = 0
        try:
            if self.timeout is not None:
                flags |= _TIMEOUT_SET
                parts.append(_TIMEOUT.pack(self.timeout))
            lease = self.lease
            if lease is not None:
                flags |= _LEASE_SET
                holder = lease.holder.encode("utf-8", "surrogatepass")
                lease_id = lease.lease_id.encode("utf-8", "surrogatepass")
                parts += (_LEASE.pack(lease.expiry, len(holder), len(lease_id)), holder, lease_id)
            if self.last_error is not None:
                flags |= _ERROR_SET
                error = self.last_error.encode("utf-8", "surrogatepass")
                parts += (_LENGTH.pack(len(error)), error)
            if self.settled_by is not None:
                flags |= _SETTLED_SET
                settled_by = self.settled_by.encode("utf-8", "surrogatepass")
                parts += (_LENGTH.pack(len(settled_by)), settled_by)
            if self.trace is not None:
                flags |= _TRACE_SET
                parts += (_LENGTH.pack(len(self.trace)), self.trace)
            parts[0] = _HEAD.pack(
                BINARY_FORMAT,
                _TAG_OF[self.state],
                flags,
                self.priority,
                self.vesting,
                self.enqueued_at,
                self.max_retries,
                self.attempt,
                self.errors,
                len(item_id),
                len(topic),
            )
        except struct.error:
            return self.to_json_bytes()
        parts.append(self.payload)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Item:
        """The item stored as *data*, in the binary format or the JSON one."""
        first = data[:1]
        if first != _BINARY_FIRST:
            if first == b"{":
                return cls._from_json_bytes(data)
            raise ValueError(f"not an item record of a known format (first byte {first!r})")
        (
            _,
            tag,
            flags,
            priority,
            vesting,
            enqueued_at,
            max_retries,
            attempt,
            errors,
            n_id,
            n_topic,
        ) = _HEAD.unpack_from(data)
        start = _HEAD_SIZE + n_id
        pos = start + n_topic
        item_id = data[_HEAD_SIZE:start].decode("utf-8", "surrogatepass")
        topic = data[start:pos].decode("utf-8", "surrogatepass")
        timeout = lease = last_error = settled_by = trace = None
        if flags:
            if flags & _TIMEOUT_SET:
                (timeout,) = _TIMEOUT.unpack_from(data, pos)
                pos += _TIMEOUT.size
            if flags & _LEASE_SET:
                expiry, n_holder, n_lease_id = _LEASE.unpack_from(data, pos)
                start = pos + _LEASE.size
                middle = start + n_holder
                pos = middle + n_lease_id
                lease = Lease(
                    data[start:middle].decode("utf-8", "surrogatepass"),
                    data[middle:pos].decode("utf-8", "surrogatepass"),
                    expiry,
                )
            if flags & _ERROR_SET:
                (n,) = _LENGTH.unpack_from(data, pos)
                pos += _LENGTH_SIZE + n
                last_error = data[pos - n : pos].decode("utf-8", "surrogatepass")
            if flags & _SETTLED_SET:
                (n,) = _LENGTH.unpack_from(data, pos)
                pos += _LENGTH_SIZE + n
                settled_by = data[pos - n : pos].decode("utf-8", "surrogatepass")
            if flags & _EXTENSIONS:
                bit = _TRACE_SET
                while bit <= flags:  # each a length then its bytes; unknown ones skipped
                    if flags & bit:
                        (n,) = _LENGTH.unpack_from(data, pos)
                        pos += _LENGTH_SIZE + n
                        if bit == _TRACE_SET:
                            trace = data[pos - n : pos]
                    bit <<= 1
        return cls(
            item_id,
            topic,
            data[pos:],
            priority,
            vesting,
            max_retries,
            enqueued_at,
            _STATE_OF[tag],
            attempt,
            errors,
            timeout,
            lease,
            last_error,
            settled_by,
            trace,
        )

    def to_json_bytes(self) -> bytes:
        """The record in the JSON format (the format before the binary one):
        a JSON header with fixed field tags, a NUL, then the payload."""
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
        if self.trace is not None:  # absent from records before the field
            header["tc"] = base64.b64encode(self.trace).decode()
        return json.dumps(header, separators=(",", ":")).encode() + b"\x00" + self.payload

    @classmethod
    def _from_json_bytes(cls, data: bytes) -> Item:
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
            trace=base64.b64decode(h["tc"]) if "tc" in h else None,
        )


# -- the binary item record ----------------------------------------------------------

BINARY_FORMAT: Final = 1
"""The first byte of a binary item record. A JSON header (the earlier format)
starts with ``{``, so the first byte tells the two apart."""
_BINARY_FIRST: Final = bytes([BINARY_FORMAT])
_HEAD: Final = struct.Struct("<BBBiqqiiiHH")
"""format, state tag, flags, priority, vesting, enqueued_at, max_retries,
attempt, errors, and the byte lengths of the id and the topic, which follow.
Then, each only when its flag is set: the timeout (a double), the lease
(expiry, the lengths of holder and lease id, then both), the last error and
settled_by (each a length, then its bytes); then the extensions (flags 16 and
up, each a length then its bytes, in bit order): the trace context. The
payload takes the rest."""
_HEAD_SIZE: Final = _HEAD.size
_TIMEOUT: Final = struct.Struct("<d")
_LEASE: Final = struct.Struct("<qHH")
_LENGTH: Final = struct.Struct("<H")
_LENGTH_SIZE: Final = _LENGTH.size
_TIMEOUT_SET: Final = 1
_LEASE_SET: Final = 2
_ERROR_SET: Final = 4
_SETTLED_SET: Final = 8
_TRACE_SET: Final = 16
_EXTENSIONS: Final = 0xF0
"""Flags 16 and up: fields that readers which do not know them skip."""
_TAG_OF: Final = {state: ord(state.value) for state in State}
_STATE_OF: Final = {tag: state for state, tag in _TAG_OF.items()}


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
    payload: every field at its longest (ids of characters of the longest
    UTF-8 encoding, times of 16 digits in the dead letter's JSON, a lease, an
    error of ERROR_BYTES as JSON, so of at most ERROR_BYTES - 2 in UTF-8, a
    trace context of TRACE_BYTES).

    The bound is the binary format's: the JSON format is written only for
    integers beyond the binary fields, which validated jobs never hold."""
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
        trace=b"\xff" * TRACE_BYTES,
    )
    dead = DeadLetterRecord(attrs.evolve(item, lease=None), "unrecordable", error, big)
    return max(len(item.to_bytes()), len(dead.to_bytes()))
