"""Per-queue history: what each queue's attempts did, minute by minute.

Settling a batch (``_settle``) and promoting expired leases (``_lease``)
gather their attempts in a :class:`HistoryTally` and add each counter once
per batch, by atomic adds: no read, so no conflict, and nothing counted
twice, since the tally is made afresh by each run of the transaction's body
and only the branches that write an outcome count it (never the ones that
find their own earlier commit). Per queue and minute::

    (q, qid, h, minute, name)   c completed, f failed (runs again after an error,
                                a lost attempt included), s snoozed, d dead-lettered,
                                l lost (lease expired; also in f or d), u untimed
                                (recorded without a start time), w waits and
                                r run times (sums of ms, over the timed attempts)
    (hq, minute, qid)           the minute index: which queues have history then
    (ht, minute, shard, name)   the same names store-wide, plus w0..w24 and r0..r24:
                                log-scale bucket counts of wait and run time

Expiry (:func:`expire_history`) clears whole ranges: the store-wide totals by
minute, and per queue every minute before the cutoff, for the queues the index
names; blind clears after snapshot reads, so consumers doing it at once never
conflict.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from typing import Final

import attrs

from .._time import ms_to_datetime
from ..stores._protocol import Transaction, decode_counter
from ._keys import HISTORY_SHARDS, Layout

MINUTE_MS: Final = 60_000
BUCKETS: Final = 25
"""Log-scale buckets: bucket 0 counts times of 0 ms, bucket *b* times of
``2**(b-1)`` to ``2**b - 1`` ms, the last (24) every time from ``2**23`` ms
(2.3 hours) on."""
EXPIRE_BATCH: Final = 1_000
"""Index rows one expiry transaction reads (and clears with their queues' history)."""

COMPLETED, FAILED, SNOOZED, DEAD, LOST, UNTIMED, WAIT, RUN = range(8)
_NAMES: Final = ("c", "f", "s", "d", "l", "u", "w", "r")
"""The stored names of the counters, by index: never change them."""
_BUCKET_NAMES: Final = tuple(f"w{b}" for b in range(BUCKETS)) + tuple(
    f"r{b}" for b in range(BUCKETS)
)
_BUCKET_INDEX: Final = {name: n for n, name in enumerate(_BUCKET_NAMES)}
_LAST: Final = BUCKETS - 1


class _Row:
    """One queue's counters of one minute, and its minute's bucket counts."""

    __slots__ = ("buckets", "counts")

    def __init__(self, buckets: list[int]) -> None:
        self.counts = [0] * len(_NAMES)
        self.buckets = buckets


class HistoryTally:
    """The history of one transaction's attempts, added once per queue,
    minute and counter by :meth:`flush` (zeros skipped).

    The store-wide counters go to the shard that the writing consumer's id
    (the lease holder of the first attempt counted) hashes to: all of one
    consumer's batches to one shard, so that a batch adds each store-wide
    counter once however many queues it holds, while no one key takes every
    batch of a cluster (the reason for WAKE_SHARDS).
    """

    __slots__ = ("_buckets", "_rows", "_writer")

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str], _Row] = {}
        self._buckets: dict[int, list[int]] = {}
        self._writer = ""

    def _row(self, qid: str, minute: int, writer: str) -> _Row:
        row = self._rows.get((minute, qid))
        if row is None:
            self._writer = self._writer or writer
            buckets = self._buckets.get(minute)
            if buckets is None:
                buckets = self._buckets[minute] = [0] * (2 * BUCKETS)
            row = self._rows[minute, qid] = _Row(buckets)
        return row

    def attempt(
        self, qid: str, now: int, kind: int, started: int | None, due: int, writer: str
    ) -> None:
        """Count an attempt recorded at *now* by consumer *writer* as *kind*
        (COMPLETED, FAILED, SNOOZED or DEAD), which started at *started*
        (None: not known) and was due at *due* (ms)."""
        # Once per job: the constants are spelled out (UNTIMED 5, WAIT 6,
        # RUN 7, BUCKETS 25, _LAST 24), which halves its cost.
        row = self._rows.get((now // 60_000, qid)) or self._row(qid, now // 60_000, writer)
        counts = row.counts
        counts[kind] += 1
        if started is None:
            counts[5] += 1
            return
        wait = started - due if started > due else 0
        run = now - started if now > started else 0
        counts[6] += wait
        counts[7] += run
        buckets = row.buckets
        b = wait.bit_length()
        buckets[b if b < 24 else 24] += 1
        b = run.bit_length()
        buckets[25 + (b if b < 24 else 24)] += 1

    def lost(self, qid: str, now: int, kind: int, writer: str) -> None:
        """Count an attempt whose lease consumer *writer* found expired at
        *now*, as FAILED (it runs again) or DEAD: the guide counts a lost
        attempt then."""
        counts = self._row(qid, now // MINUTE_MS, writer).counts
        counts[kind] += 1
        counts[LOST] += 1

    def flush(self, tr: Transaction, layout: Layout) -> None:
        """Add what was gathered, and start over."""
        if not self._rows:
            return
        totals: dict[int, list[int]] = {}
        for (minute, qid), row in self._rows.items():
            tr.set(layout.history_entry(minute, qid), b"")
            total = totals.get(minute)
            if total is None:
                total = totals[minute] = [0] * len(_NAMES)
            for n, value in enumerate(row.counts):
                if value:
                    tr.add(layout.history(qid, minute, _NAMES[n]), value)
                    total[n] += value
        shard = zlib.crc32(self._writer.encode()) % HISTORY_SHARDS
        for minute, total in totals.items():
            for n, value in enumerate(total):
                if value:
                    tr.add(layout.history_total(minute, shard, _NAMES[n]), value)
            for n, value in enumerate(self._buckets[minute]):
                if value:
                    tr.add(layout.history_total(minute, shard, _BUCKET_NAMES[n]), value)
        self._rows.clear()
        self._buckets.clear()


async def expire_history(tr: Transaction, layout: Layout, before: int) -> bool:
    """Clear the history of every minute before minute *before*: True when
    more may be left (the index had more rows than one transaction takes).

    Snapshot reads and blind clears: consumers expiring at once never
    conflict, and the duplicate work is harmless. Index rows are cleared one
    by one, as read, so that one written meanwhile (a consumer whose clock is
    far behind) stays, and its queue's history is expired with it later.
    """
    tr.clear_range(*layout.history_totals_before(before))
    begin, end = layout.history_entries_before(before)
    rows = await tr.get_range(begin, end, limit=EXPIRE_BATCH, snapshot=True)
    cleared: set[str] = set()
    for key, _ in rows:
        _, qid = layout.parse_history_entry(key)
        if qid not in cleared:
            cleared.add(qid)
            tr.clear_range(*layout.history_before(qid, before))
        tr.clear(key)
    return len(rows) == EXPIRE_BATCH


class _Means:
    """What a minute's counts tell (shared by :class:`QueueMinute` and
    :class:`TotalsMinute`)."""

    __slots__ = ()
    completed: int
    failed: int
    snoozed: int
    dead_lettered: int
    timed: int
    wait_seconds: float
    run_seconds: float

    @property
    def runs(self) -> int:
        """Every attempt counted: completed, failed, snoozed and dead-lettered."""
        return self.completed + self.failed + self.snoozed + self.dead_lettered

    @property
    def mean_wait(self) -> float | None:
        """Seconds from due to start, on average (None: no timed attempt)."""
        return self.wait_seconds / self.timed if self.timed else None

    @property
    def mean_run(self) -> float | None:
        """Seconds from start to recorded outcome, on average (None: no timed attempt)."""
        return self.run_seconds / self.timed if self.timed else None


@attrs.frozen
class QueueMinute(_Means):
    """What one queue's attempts did in one minute (``JobQueue.history``).

    Attempts are counted in the minute their outcome was recorded: a lost
    attempt in the minute its expired lease was found. Waits (from when the
    job was due to its start) and run times (from its start to its outcome's
    commit) are summed over the ``timed`` attempts: those recorded by a
    consumer, lost ones left out.
    """

    queue_id: str
    minute: dt.datetime
    """The start of the minute (UTC)."""
    completed: int
    failed: int
    """Attempts that failed and run again (after their backoff), lost ones included."""
    snoozed: int
    dead_lettered: int
    """Attempts that ended in a dead letter: failed for the last time,
    discarded, no handler, snoozed out (lost ones included)."""
    lost: int
    """Attempts whose lease expired unrecorded (counted in ``failed`` or ``dead_lettered``)."""
    timed: int
    """The attempts whose wait and run time are in the sums."""
    wait_seconds: float
    run_seconds: float


@attrs.frozen
class TotalsMinute(_Means):
    """What every queue's attempts did in one minute (``JobQueue.history_totals``):
    the sums of the queues' :class:`QueueMinute` fields, and log-scale bucket
    counts of the timed attempts' waits and run times.

    Bucket 0 counts times under a millisecond, bucket *b* times from
    ``2**(b-1)`` ms to under ``2**b`` ms, and the last (24) everything from
    about 2.3 hours on. Buckets of several minutes add up element by element.
    """

    minute: dt.datetime
    """The start of the minute (UTC)."""
    completed: int
    failed: int
    snoozed: int
    dead_lettered: int
    lost: int
    timed: int
    wait_seconds: float
    run_seconds: float
    wait_buckets: tuple[int, ...]
    run_buckets: tuple[int, ...]

    def wait_quantile(self, q: float) -> float | None:
        """The *q*-quantile (0 to 1) of the waits, in seconds, as the upper
        bound of its bucket (at most twice the true value, or 1 ms); None without data."""
        return bucket_quantile(self.wait_buckets, q)

    def run_quantile(self, q: float) -> float | None:
        """The *q*-quantile (0 to 1) of the run times, as :meth:`wait_quantile`."""
        return bucket_quantile(self.run_buckets, q)


def bucket_quantile(buckets: tuple[int, ...], q: float) -> float | None:
    """The upper bound (seconds) of the bucket holding the *q*-quantile of
    *buckets* (``inf`` for the last bucket); None when they are all empty."""
    total = sum(buckets)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return math.inf if b == _LAST else (1 << b) / 1000
    return math.inf


_Counts = tuple[int, int, int, int, int, int, float, float]


def _counts(values: dict[str, int]) -> _Counts:
    """The counting fields, ``completed`` to ``run_seconds``, of the counters
    *values* (by stored name)."""
    c, f, s, d, lost = (values.get(name, 0) for name in ("c", "f", "s", "d", "l"))
    timed = max(0, c + f + s + d - lost - values.get("u", 0))
    return c, f, s, d, lost, timed, values.get("w", 0) / 1000, values.get("r", 0) / 1000


async def queue_history(
    tr: Transaction, layout: Layout, qid: str, first: int, last: int
) -> list[QueueMinute]:
    """*qid*'s minutes from *first* to *last* (both included) that have
    history, in order (one snapshot range read)."""
    rows = await tr.get_range(*layout.history_range(qid, first, last), snapshot=True)
    minutes: dict[int, dict[str, int]] = {}
    for key, value in rows:
        minute, name = layout.tail(qid, key, "h")
        minutes.setdefault(minute, {})[name] = decode_counter(value)
    return [
        QueueMinute(qid, ms_to_datetime(minute * MINUTE_MS), *_counts(values))
        for minute, values in minutes.items()
    ]


async def history_totals(
    tr: Transaction, layout: Layout, first: int, last: int
) -> list[TotalsMinute]:
    """The store-wide minutes from *first* to *last* (both included) that have
    history, in order, their shards summed (one snapshot range read)."""
    rows = await tr.get_range(*layout.history_totals_range(first, last), snapshot=True)
    minutes: dict[int, dict[str, int]] = {}
    for key, value in rows:
        minute, name = layout.parse_history_total(key)
        values = minutes.setdefault(minute, {})
        values[name] = values.get(name, 0) + decode_counter(value)
    out = []
    for minute, values in minutes.items():
        buckets = [0] * (2 * BUCKETS)
        for name, n in values.items():
            b = _BUCKET_INDEX.get(name)
            if b is not None:
                buckets[b] = n
        out.append(
            TotalsMinute(
                ms_to_datetime(minute * MINUTE_MS),
                *_counts(values),
                tuple(buckets[:BUCKETS]),
                tuple(buckets[BUCKETS:]),
            )
        )
    return out
