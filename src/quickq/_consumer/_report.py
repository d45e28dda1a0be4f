"""Counting and reporting attempts: the one store of a consumer's in-process
numbers, read by ``Consumer.statistics()``, ``on_event``, the ``quickq`` logger
and the metrics endpoints (``quickq.prometheus``).

Each attempt reports ``started`` once and exactly one end: how it was recorded,
or ``lost`` when nothing was (the lease was lost, or the store could not be
reached; the lease's expiry brings the job back). Each end is one log record
on the ``quickq`` logger, with its fields as ``extra``: completed and released
at DEBUG, retried at INFO, dead and lost at WARNING.

Per topic, the reporter keeps two fixed-bucket histograms, whose counts are
the attempts started and ended: wait (due to start, one value per attempt
started) and process duration (start to recorded outcome, one value per end,
by outcome); and dead letters by reason. The buckets are the OpenTelemetry
advisory ones, so either exporter shows the same series. A job costs two
clock reads, two ``bisect`` calls and a few dict lookups (about 1 us); nothing
is allocated per job but the first time a topic or an outcome is seen.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from typing import Any, Final

import attrs

from .._core import DeadReason, Item, Outcome
from .._events import EventHook, EventKind, JobEvent
from .._time import Clock

log = logging.getLogger("quickq")

PROCESS_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of ``messaging.process.duration``'s buckets: the
semantic conventions' ``explicit_bucket_boundaries_advisory``."""
WAIT_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
"""Upper bounds (seconds) of ``quickq.job.wait.duration``'s buckets: from a
few milliseconds (a queue that keeps up) to an hour (one that does not)."""

_EVENT_OF: dict[Outcome, EventKind] = {
    Outcome.COMPLETED: "completed",
    Outcome.RETRIED: "retried",
    Outcome.DEAD_LETTERED: "dead",
    Outcome.RELEASED: "released",
    Outcome.LOST: "lost",
}
_LEVEL_OF: Final[dict[Outcome, int]] = {
    Outcome.COMPLETED: logging.DEBUG,
    Outcome.RELEASED: logging.DEBUG,
    Outcome.RETRIED: logging.INFO,
    Outcome.DEAD_LETTERED: logging.WARNING,
    Outcome.LOST: logging.WARNING,
}
LOST_WHY: Final = {
    "lease_lost": "its lease was lost",
    "unrecorded": "its outcome could not be recorded",
}
"""A lost attempt's log line, by its error type."""


@attrs.define
class Counts:
    """What a consumer has done so far."""

    leased: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    lost: int = 0

    def count(self, outcome: Outcome) -> None:
        if outcome is Outcome.COMPLETED:
            self.completed += 1
        elif outcome is Outcome.RETRIED:
            self.retried += 1
        elif outcome is Outcome.DEAD_LETTERED:
            self.dead_lettered += 1
        elif outcome is Outcome.RELEASED:
            self.released += 1
        else:
            self.lost += 1


class Histogram:
    """Counts of values per fixed bucket (``counts[i]``: at most ``bounds[i]``,
    and above the last bound in the last one), and their sum. The reporter
    records into it inline (``counts[bisect_left(bounds, v)] += 1``): a
    method call per value was a third of its cost per job."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        """How many values were recorded."""
        return sum(self.counts)


class TopicNumbers:
    """One topic's numbers: the wait histogram (one value per attempt
    started), the duration histograms by outcome (one value per attempt
    ended), and dead letters by reason (None: not told)."""

    __slots__ = ("dead", "durations", "wait")

    def __init__(self) -> None:
        self.wait = Histogram(WAIT_BUCKETS)
        """Due to start, seconds: its count is the attempts started."""
        self.durations: dict[Outcome, Histogram] = {}
        """Start to recorded outcome, seconds, by outcome: their counts are the ends."""
        self.dead: dict[DeadReason | None, int] = {}

    @property
    def started(self) -> int:
        """Attempts started."""
        return self.wait.count

    def ended(self, outcome: Outcome) -> int:
        """Attempts that ended with *outcome*."""
        histogram = self.durations.get(outcome)
        return 0 if histogram is None else histogram.count


class Reporter:
    """Counts each attempt's start and end, logs each end, and sends events to
    the ``on_event`` hook (see the module docstring)."""

    def __init__(self, clock: Clock, on_event: EventHook | None, *, consumer_id: str = "") -> None:
        self.counts = Counts()
        self.topics: dict[str, TopicNumbers] = {}
        """Per topic: read by the metrics endpoints, in the consumer's thread."""
        self.consumer_id = consumer_id
        self._clock = clock
        self._on_event = on_event
        self.hooked = on_event is not None
        """Whether events are sent."""

    def now(self) -> float:
        """The wall clock: an attempt's start time, for :meth:`started` and :meth:`ended`."""
        return self._clock()

    def started_by_topic(self) -> dict[str, int]:
        """Attempts started so far, per topic; safe from another thread (the
        OpenTelemetry metric reader's), which only reads."""
        return {topic: numbers.started for topic, numbers in list(self.topics.items())}

    def leased(self) -> None:
        self.counts.leased += 1

    def _topic(self, topic: str) -> TopicNumbers:
        numbers = self.topics.get(topic)
        if numbers is None:
            numbers = self.topics[topic] = TopicNumbers()
        return numbers

    def started(self, qid: str, item: Item, *, at: float) -> float:
        """Report an attempt's start at wall time *at* (from :meth:`now`); its
        wait, in seconds (for the telemetry: one measurement per fact)."""
        wait = max(0.0, at - item.vesting / 1000)
        histogram = self._topic(item.topic).wait
        histogram.counts[bisect_left(WAIT_BUCKETS, wait)] += 1
        histogram.sum += wait
        if self.hooked:
            self._emit("started", qid, item, wait=wait)
        return wait

    def ended(
        self,
        qid: str,
        item: Item,
        outcome: Outcome | None,
        *,
        started: float,
        result: Any = None,
        error: str | None = None,
        error_type: str | None = None,
        reason: DeadReason | None = None,
        snooze: float | None = None,
    ) -> float:
        """Count, log and report how one attempt ended (None: nothing was
        recorded), and return its duration; *started* is its start time, from
        :meth:`now`. *error_type*
        names the failure (an exception's class, or quickq's own: ``timeout``,
        ``no_handler``, ...; for a lost attempt ``lease_lost``, or
        ``unrecorded`` when the store could not record it); *reason* is a
        dead letter's; *snooze* a snooze's delay, in seconds."""
        if outcome is None:
            outcome = Outcome.LOST
        duration = max(0.0, self._clock() - started)  # the wall clock may step back
        self.counts.count(outcome)
        numbers = self._topic(item.topic)
        histogram = numbers.durations.get(outcome)
        if histogram is None:
            histogram = numbers.durations[outcome] = Histogram(PROCESS_BUCKETS)
        histogram.counts[bisect_left(PROCESS_BUCKETS, duration)] += 1
        histogram.sum += duration
        if outcome is Outcome.DEAD_LETTERED:
            numbers.dead[reason] = numbers.dead.get(reason, 0) + 1
        level = logging.DEBUG if snooze is not None else _LEVEL_OF[outcome]  # no failure
        if log.isEnabledFor(level):
            self._log(level, qid, item, outcome, duration, error, error_type, reason, snooze)
        if not self.hooked:
            return duration
        if outcome is Outcome.LOST:
            self._emit("lost", qid, item, duration=duration)
            return duration
        self._emit(
            _EVENT_OF[outcome],
            qid,
            item,
            duration=duration,
            result=result if outcome is Outcome.COMPLETED else None,
            error=error,
        )
        return duration

    def _log(
        self,
        level: int,
        qid: str,
        item: Item,
        outcome: Outcome,
        duration: float,
        error: str | None,
        error_type: str | None,
        reason: DeadReason | None,
        snooze: float | None,
    ) -> None:
        """One record per ended attempt: a readable line, its fields in ``extra``."""
        kind = _EVENT_OF[outcome]
        extra: dict[str, Any] = {
            "job_id": item.item_id,
            "queue_id": qid,
            "topic": item.topic,
            "attempt": item.attempt,
            "outcome": kind,
            "consumer_id": self.consumer_id,
            "duration": duration,
        }
        if error_type is not None:
            extra["error_type"] = error_type
        if outcome is Outcome.DEAD_LETTERED and reason is not None:
            extra["reason"] = reason
        if outcome is Outcome.LOST:
            extra["reason"] = error_type
            why = LOST_WHY.get(error_type or "", "its outcome could not be recorded")
        elif snooze is not None:
            extra["snooze_delay"] = snooze
            why = f"snoozed for {snooze:g}s"
        else:
            why = _last_line(error)
        log.log(
            level,
            "%s %s/%s %s attempt %d after %.2fs%s",
            kind,
            qid,
            item.item_id,
            item.topic,
            item.attempt,
            duration,
            f": {why}" if why else "",
            extra=extra,
        )

    def _emit(
        self,
        kind: EventKind,
        qid: str,
        item: Item,
        *,
        wait: float | None = None,
        duration: float | None = None,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        assert self._on_event is not None
        event = JobEvent(
            kind,
            qid,
            item.item_id,
            item.topic,
            item.attempt,
            self._clock(),
            wait=wait,
            duration=duration,
            result=result,
            error=error,
        )
        try:
            self._on_event(event)
        except Exception:
            log.exception("quickq: the on_event hook raised")


def _last_line(error: str | None) -> str:
    """The informative line of an error: a traceback's last line, else the text."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
