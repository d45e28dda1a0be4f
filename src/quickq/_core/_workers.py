"""Live consumers: each consumer's heartbeat record, and reading them back.

One key per consumer, ``(hb, consumer_id)``, holds a small JSON record (well
under 1 kB: the topic list is cut to fit) that the consumer writes blind, in a
transaction of its own, every few seconds, and clears when it stops. A blind
write takes no read conflict and a consumer writes only its own key, so
heartbeats never conflict with each other or with the jobs. A record is
stale once its consumer has missed three beats, judged on the reader's
clock against the record's own interval (so clocks may disagree by up to two
intervals). Stale records are hidden from listings, and any consumer starting
up drops those stale for more than a day, with a compare-and-clear: a
consumer that came back meanwhile rewrote its record, and keeps it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any, Final, Literal

import attrs

from .._time import ms_to_datetime
from ..stores._protocol import Transaction
from ._keys import Layout

STALE_BEATS: Final = 3
"""A record is stale once this many of its intervals have passed since its last beat."""
PRUNE_AFTER_MS: Final = 24 * 3600 * 1000
"""Records stale for longer than this are dropped by the next consumer to start."""
PRUNE_LIMIT: Final = 1000
"""The most records one start-up prune reads (a bounded snapshot read)."""
MAX_WORKERS: Final = 10_000
"""The most records one listing reads."""
TOPICS_BYTES: Final = 384
"""The topics kept in a record, in the order served, take at most this much JSON."""
TEXT_BYTES: Final = 80
"""Host names, versions and metrics addresses are cut to this much JSON."""
RECORD_BYTES: Final = 1024
"""No record is larger (the caps above see to it; a test checks the worst case)."""


@attrs.frozen
class WorkerRecord:
    """A consumer's heartbeat as stored. Times are ms since the epoch."""

    consumer_id: str
    host: str
    pid: int
    started: int
    seen: int
    interval: int
    """Milliseconds between beats (at least 1)."""
    concurrency: int
    running: int = 0
    stopping: bool = False
    leased: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    lost: int = 0
    version: str = ""
    topics: tuple[str, ...] = ()
    topic_count: int = 0
    """How many topics the consumer serves: ``topics`` may hold only the first."""
    metrics: str | None = None
    """Where the consumer serves its metrics, if it says."""

    def to_bytes(self) -> bytes:
        """The stored form: compact JSON, with the field names below."""
        return json.dumps(
            {
                "id": self.consumer_id,
                "host": self.host,
                "pid": self.pid,
                "started": self.started,
                "seen": self.seen,
                "interval": self.interval,
                "concurrency": self.concurrency,
                "running": self.running,
                "stopping": self.stopping,
                "leased": self.leased,
                "completed": self.completed,
                "retried": self.retried,
                "dead": self.dead_lettered,
                "lost": self.lost,
                "version": self.version,
                "topics": list(self.topics),
                "topic_count": self.topic_count,
                "metrics": self.metrics,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkerRecord:
        """The record in *data*; fields it lacks take their defaults and fields
        it has beyond these are ignored (records of other versions read).
        ValueError when it is no heartbeat record."""
        try:
            h: dict[str, Any] = json.loads(data)
            record = cls(
                consumer_id=str(h["id"]),
                host=str(h["host"]),
                pid=int(h["pid"]),
                started=int(h["started"]),
                seen=int(h["seen"]),
                interval=max(1, int(h["interval"])),
                concurrency=int(h["concurrency"]),
                running=int(h.get("running", 0)),
                stopping=bool(h.get("stopping", False)),
                leased=int(h.get("leased", 0)),
                completed=int(h.get("completed", 0)),
                retried=int(h.get("retried", 0)),
                dead_lettered=int(h.get("dead", 0)),
                lost=int(h.get("lost", 0)),
                version=str(h.get("version", "")),
                topics=tuple(str(t) for t in h.get("topics", ())),
                topic_count=int(h.get("topic_count", len(h.get("topics", ())))),
                metrics=None if h.get("metrics") is None else str(h["metrics"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a heartbeat record: {exc!r}") from None
        return record

    def is_stale(self, now: int) -> bool:
        """Whether its consumer has missed :data:`STALE_BEATS` beats by *now*."""
        return now - self.seen > STALE_BEATS * self.interval


def fitting_text(text: str) -> str:
    """*text*, cut so that its JSON takes at most :data:`TEXT_BYTES`."""
    while len(json.dumps(text)) > TEXT_BYTES:
        text = text[: min(len(text) - 1, TEXT_BYTES - 2)]
    return text


def fitting_topics(topics: Iterable[str]) -> tuple[str, ...]:
    """The first of *topics* whose JSON takes at most :data:`TOPICS_BYTES`."""
    kept: list[str] = []
    size = 2
    for topic in topics:
        size += len(json.dumps(topic)) + 1
        if size > TOPICS_BYTES:
            break
        kept.append(topic)
    return tuple(kept)


def write_heartbeat(tr: Transaction, layout: Layout, record: WorkerRecord) -> None:
    """Write *record* blind (no read, so no conflict range)."""
    tr.set(layout.heartbeat(record.consumer_id), record.to_bytes())


def clear_heartbeat(tr: Transaction, layout: Layout, consumer_id: str) -> None:
    tr.clear(layout.heartbeat(consumer_id))


async def read_heartbeats(
    tr: Transaction, layout: Layout, *, limit: int = MAX_WORKERS
) -> list[WorkerRecord]:
    """The records of at most *limit* consumers (a snapshot read); records that
    do not parse are skipped, so one bad value never hides the others."""
    begin, end = layout.heartbeat_range()
    records = []
    for _, value in await tr.get_range(begin, end, limit=limit, snapshot=True):
        try:
            records.append(WorkerRecord.from_bytes(value))
        except ValueError:
            continue
    return records


async def prune_heartbeats(
    tr: Transaction, layout: Layout, now: int, *, keep: int = PRUNE_AFTER_MS
) -> int:
    """Drop the records stale for more than *keep* ms among the first
    :data:`PRUNE_LIMIT`; the number dropped.

    One snapshot read, then a compare-and-clear of each value read: a
    consumer that beat meanwhile changed its value, so its record stays, and
    neither side's transaction conflicts. Records that do not parse (another
    version's, perhaps) are left alone.
    """
    begin, end = layout.heartbeat_range()
    dropped = 0
    for key, value in await tr.get_range(begin, end, limit=PRUNE_LIMIT, snapshot=True):
        try:
            record = WorkerRecord.from_bytes(value)
        except ValueError:
            continue
        if record.is_stale(now - keep):
            tr.compare_and_clear(key, value)
            dropped += 1
    return dropped


@attrs.frozen
class WorkerInfo:
    """A consumer as its heartbeat record in the store shows it (see
    :meth:`JobQueue.workers`). Its counts are since it started."""

    consumer_id: str
    """Its name in the leases it holds (``Consumer.consumer_id``)."""
    host: str
    pid: int
    state: Literal["live", "stopping", "stale"]
    """``live``; ``stopping`` once ``stop()`` was called (it drains its
    running jobs); ``stale`` once it missed three beats (it crashed, or
    cannot reach the store)."""
    started: dt.datetime
    seen: dt.datetime
    """Its last beat, on its own clock."""
    interval: float
    """Seconds between its beats."""
    concurrency: int
    running: int
    """Jobs running at its last beat."""
    leased: int
    completed: int
    retried: int
    dead_lettered: int
    lost: int
    version: str
    """Its quickq version."""
    topics: tuple[str, ...]
    """The topics it serves (the first of them, if they are many: see ``topic_count``)."""
    topic_count: int
    metrics: str | None
    """Where it serves its metrics, if it says."""


def worker_info(record: WorkerRecord, now: int) -> WorkerInfo:
    """The public view of *record*, its state judged at *now* (ms)."""
    if record.is_stale(now):
        state: Literal["live", "stopping", "stale"] = "stale"
    else:
        state = "stopping" if record.stopping else "live"
    return WorkerInfo(
        consumer_id=record.consumer_id,
        host=record.host,
        pid=record.pid,
        state=state,
        started=ms_to_datetime(record.started),
        seen=ms_to_datetime(record.seen),
        interval=record.interval / 1000,
        concurrency=record.concurrency,
        running=record.running,
        leased=record.leased,
        completed=record.completed,
        retried=record.retried,
        dead_lettered=record.dead_lettered,
        lost=record.lost,
        version=record.version,
        topics=record.topics,
        topic_count=record.topic_count,
        metrics=record.metrics,
    )


async def list_workers(
    tr: Transaction, layout: Layout, now: int, *, include_stale: bool = False
) -> list[WorkerInfo]:
    """Every consumer's record (live and stopping ones, and stale ones with
    *include_stale*), by host, then start time."""
    infos = [worker_info(r, now) for r in await read_heartbeats(tr, layout)]
    shown = [w for w in infos if include_stale or w.state != "stale"]
    return sorted(shown, key=lambda w: (w.host, w.started, w.consumer_id))
