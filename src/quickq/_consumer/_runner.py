"""Running leased jobs: one task per job, each a task group of its handler and,
once due, its lease extender.

::

    job task
    +- the handler, under the job's timeout
    +- the lease extender, once started: renews every lease/3; when a renewal
       proves the lease lost, it cancels the handler; the handler's end
       cancels it

Every job gets its own extender in its own task group, so cancelling the job's
scope reliably stops its extension. But most jobs end long before a third of
their lease has passed, and spawning an extender only to cancel it unused was
a quarter of the consumer's cost per job. So the extender starts late: one
:class:`RenewalSchedule` per consumer holds each job's first renewal time and,
when it comes, starts that job's extender in that job's task group. A job that
ends first withdraws its entry, and never had an extender.

However the attempt ends, it ends in one ``acker.settle()`` and one report.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import attrs

from .. import _core
from .._codec import Codec
from .._core import Action, Item, Layout, Outcome, Settlement
from .._exceptions import StoreError
from .._jobs import JobMeta, JobRegistry
from .._time import Clock, ms_to_datetime, to_ms
from ..stores._protocol import Store
from ._acker import Acker
from ._attempts import (
    SettlementMaker,
    call_handler,
    carries_cancellation,
    describe_failure,
    failure_settlement,
    outcome_settlement,
)
from ._idle import IdleTracker, Wakeup
from ._report import Reporter
from ._slots import Slots

log = logging.getLogger("quickq")

_MIN_RENEWAL_RETRY = 0.05
"""The shortest pause before renewing again after a renewal failed."""


class Renewal:
    """One job's entry in the schedule: its extender's start, unless withdrawn."""

    __slots__ = ("due", "start")

    def __init__(self, due: float, start: Callable[[], object]) -> None:
        self.due = due
        self.start: Callable[[], object] | None = start

    def withdraw(self) -> None:
        """The job is ending: never start its extender (call before its scope closes)."""
        self.start = None


class RenewalSchedule:
    """Starts extenders *delay* seconds after their jobs were scheduled.

    Every entry is due a fixed delay after it is added, so the schedule is a
    FIFO: one task sleeps until the oldest entry is due.
    """

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._entries: deque[Renewal] = deque()
        self._added = anyio.Event()

    def schedule(self, start: Callable[[], object]) -> Renewal:
        """Call *start* (which starts the job's extender) after the delay."""
        entry = Renewal(anyio.current_time() + self._delay, start)
        self._entries.append(entry)
        self._added.set()
        return entry

    async def run(self) -> None:
        entries = self._entries
        while True:
            if not entries:
                self._added = anyio.Event()
                await self._added.wait()
                continue
            wait = entries[0].due - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            start = entries.popleft().start
            if start is not None:
                start()


@attrs.define
class _Ended:
    """How one attempt ended, filled in as soon as it is known."""

    settlement: Settlement | None = None
    result: Any = None
    lost: bool = False
    """The lease was lost: nothing may be recorded."""


class JobRunner:
    """Runs each leased job in the jobs task group given to ``use``."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        jobs: JobRegistry,
        *,
        lease_duration: float,
        clock: Clock,
        codec: Codec,
        rng: random.Random,
        acker: Acker,
        slots: Slots,
        idle: IdleTracker,
        wakeup: Wakeup,
        reporter: Reporter,
    ) -> None:
        self._store = store
        self._layout = layout
        self._jobs = jobs
        self._lease_duration = lease_duration
        self._clock = clock
        self._codec = codec
        self._rng = rng
        self._acker = acker
        self._slots = slots
        self._idle = idle
        self._wakeup = wakeup
        self._reporter = reporter
        self.renewals = RenewalSchedule(lease_duration / 3)
        self._group: anyio.abc.TaskGroup | None = None

    def _now(self) -> int:
        return to_ms(self._clock())

    def use(self, group: anyio.abc.TaskGroup) -> None:
        """Run jobs in *group* from now on."""
        self._group = group

    def start(self, qid: str, item: Item) -> None:
        """Run leased *item* in a task of its own (it takes a slot now)."""
        assert self._group is not None
        self._reporter.leased()
        self._idle.job_started()
        self._slots.take()
        self._group.start_soon(self._run, qid, item, name=f"quickq job {item.item_id}")

    async def _run(self, qid: str, item: Item) -> None:
        assert item.lease is not None
        ended = _Ended()
        outcome: Outcome | None = None
        settled = False
        holds_slot = True
        started = self._clock()
        self._reporter.started(qid, item, wait=max(0.0, started - item.vesting / 1000))
        try:
            await self._attempt(qid, item, ended)
            # The handler is done: its slot may take new work while this settles.
            holds_slot = False
            self._slots.release()
            if not ended.lost:
                outcome = await self._settle(item, ended)
                settled = True
        finally:
            if not settled and not ended.lost:
                # Cancelled: record how the attempt ended if it did, else give
                # the job back (the acker does it at once, shielded, bounded).
                release = Settlement(Action.RELEASE, qid, item.item_id, item.lease.lease_id)
                ended.settlement = ended.settlement or release
                outcome = await self._acker.settle(ended.settlement)
            self._report_end(qid, item, ended, outcome, duration=self._clock() - started)
            if holds_slot:
                self._slots.release()
            self._idle.job_ended()

    async def _settle(self, item: Item, ended: _Ended) -> Outcome | None:
        """Record the finished attempt; if the handler's own writes fail, the
        attempt counts as failed and is retried."""
        settlement = ended.settlement
        assert settlement is not None
        try:
            return await self._acker.settle(settlement)
        except BaseException as exc:
            if settlement.writes is None or carries_cancellation(exc):
                raise
            definition = self._jobs.get(item.topic)
            assert definition is not None  # it ran the handler
            make = SettlementMaker(settlement.queue_id, settlement.item_id, settlement.lease_id)
            failed = failure_settlement(
                make, definition, item, self._rng, f"completion writes failed: {exc!r}"
            )
            outcome = await self._acker.settle(failed)
            ended.settlement = failed
            return outcome

    def _report_end(
        self, qid: str, item: Item, ended: _Ended, outcome: Outcome | None, duration: float
    ) -> None:
        if ended.lost:
            outcome = None
        settlement = ended.settlement
        self._reporter.ended(
            qid,
            item,
            outcome,
            duration=duration,
            result=ended.result,
            error=settlement.error if settlement is not None else None,
        )
        if outcome is Outcome.RETRIED or outcome is Outcome.RELEASED:
            self._wakeup.set()  # it is ready again, perhaps at once: look

    async def _attempt(self, qid: str, item: Item, ended: _Ended) -> None:
        """Run one attempt, filling in *ended* the moment its outcome is known.

        Whatever the handler does (any return value, any exception but the
        consumer's own cancellation) ends as a settlement: an outcome the queue
        cannot record is a failure of the attempt, retried then dead-lettered.
        """
        assert item.lease is not None
        make = SettlementMaker(qid, item.item_id, item.lease.lease_id)
        definition = self._jobs.get(item.topic)
        if definition is None:
            missing = f"no handler for topic {item.topic!r}"
            ended.settlement = make(Action.DEAD_LETTER, reason="no_handler", error=missing)
            return
        try:
            payload = self._codec.decode(item.payload)
        except Exception as exc:
            error = f"payload cannot be decoded: {exc!r}"
            ended.settlement = make(Action.DEAD_LETTER, error=error)
            return
        meta = JobMeta(
            topic=item.topic,
            queue_id=qid,
            job_id=item.item_id,
            attempt=item.attempt,
            max_retries=item.max_retries,
            priority=item.priority,
            enqueued_at=ms_to_datetime(item.enqueued_at),
            errors=item.errors,
            last_error=item.last_error,
        )
        timeout = item.timeout or definition.timeout
        lost = anyio.Event()
        try:
            async with anyio.create_task_group() as job_scope:
                renewal = self.renewals.schedule(
                    lambda: job_scope.start_soon(
                        self._extend_lease, qid, item, job_scope.cancel_scope, lost
                    )
                )
                try:
                    result, failure = await call_handler(
                        definition.handler, payload, meta, limit=timeout
                    )
                    # Known before the scope closes, so a cancellation landing at its
                    # exit cannot turn a finished attempt into an unattempted one.
                    ended.settlement, ended.result = outcome_settlement(
                        make, definition, item, self._rng, result, failure
                    )
                finally:
                    renewal.withdraw()  # before the scope closes: nothing may start in it after
                job_scope.cancel_scope.cancel()  # the handler is done: stop extending
        except BaseException as exc:
            # What is left of a group once the scope has taken out its own
            # cancellation: the handler's nursery failed as the job was stopped.
            if carries_cancellation(exc) or ended.settlement is not None:
                raise
            ended.settlement = failure_settlement(
                make, definition, item, self._rng, describe_failure(exc)
            )
        if lost.is_set():
            log.warning("quickq: lease of job %s lost; its outcome is not recorded", item.item_id)
            ended.lost = True

    async def _extend_lease(
        self, qid: str, item: Item, handler_scope: anyio.CancelScope, lost: anyio.Event
    ) -> None:
        """Renew the lease now and every lease/3 until cancelled; cancel the
        handler once it is lost. Started by the renewal schedule, lease/3 after
        the job started."""
        assert item.lease is not None
        lease_ms = to_ms(self._lease_duration)
        expiry = item.lease.expiry
        lease_id = item.lease.lease_id
        while True:
            interval = self._lease_duration / 3
            try:
                ok = await self._store.transact(
                    lambda tr: _core.extend_lease(
                        tr, self._layout, qid, item.item_id, lease_id, self._now, lease_ms
                    )
                )
            except StoreError as exc:
                if self._now() >= expiry:
                    ok = False
                else:
                    log.warning("quickq: extending job %s failed (%s)", item.item_id, exc)
                    ok = True  # not known lost: try again before the lease runs out
                    interval = max(_MIN_RENEWAL_RETRY, min(interval, (expiry - self._now()) / 4000))
            else:
                if ok:
                    expiry = self._now() + lease_ms
            if not ok:
                lost.set()
                handler_scope.cancel()
                return
            await anyio.sleep(interval)
