"""Counting and reporting attempts: ``Consumer.statistics()`` and ``on_event``.

Each attempt reports ``started`` once and exactly one end: how it was recorded,
or ``lost`` when nothing was (the lease was lost, or the store could not be
reached; the lease's expiry brings the job back).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from .._core import Item, Outcome
from .._events import EventHook, EventKind, JobEvent
from .._time import Clock

log = logging.getLogger("quickq")

_EVENT_OF: dict[Outcome, EventKind] = {
    Outcome.COMPLETED: "completed",
    Outcome.RETRIED: "retried",
    Outcome.DEAD_LETTERED: "dead",
    Outcome.RELEASED: "released",
    Outcome.LOST: "lost",
}


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


class Reporter:
    """Counts each attempt's end and sends its events to the ``on_event`` hook.

    Without a hook, nothing but the counts is kept: no clock is read and no
    event is made (``hooked`` tells callers whether a start time is needed).
    """

    def __init__(self, clock: Clock, on_event: EventHook | None) -> None:
        self.counts = Counts()
        self._clock = clock
        self._on_event = on_event
        self.hooked = on_event is not None
        """Whether events are sent: only then do attempts need their start time."""

    def now(self) -> float:
        """The wall clock when events are sent (else 0.0, unread)."""
        return self._clock() if self.hooked else 0.0

    def leased(self) -> None:
        self.counts.leased += 1

    def started(self, qid: str, item: Item, *, at: float) -> None:
        """Report an attempt's start at wall time *at* (from :meth:`now`)."""
        if self.hooked:
            self._emit("started", qid, item, wait=max(0.0, at - item.vesting / 1000))

    def ended(
        self,
        qid: str,
        item: Item,
        outcome: Outcome | None,
        *,
        started: float,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        """Count and report how one attempt ended (None: nothing was recorded);
        *started* is its start time, from :meth:`now`."""
        if outcome is None:
            outcome = Outcome.LOST
        self.counts.count(outcome)
        if not self.hooked:
            return
        duration = self._clock() - started
        if outcome is Outcome.LOST:
            self._emit("lost", qid, item, duration=duration)
            return
        self._emit(
            _EVENT_OF[outcome],
            qid,
            item,
            duration=duration,
            result=result if outcome is Outcome.COMPLETED else None,
            error=error,
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
