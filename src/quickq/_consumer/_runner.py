"""Running leased jobs: long-lived runner tasks, one per busy handler slot,
each running one job at a time; every job gets its own cancel scope and, once
due, its own lease extender scope.

::

    runner task (at most ``concurrency``, started as work arrives)
    +- its jobs, one after another, each in a cancel scope of its own: the
    |  handler, under the job's timeout
    +- the lease extender of its current job, once due, in a cancel scope of
       that job's: renews every lease/3; when a renewal proves the lease
       lost, it cancels the job's scope; the handler's end cancels it, and
       the runner waits for it to end before the job's outcome is recorded

The intake queues each leased job for the runners; a free runner takes it.
Spawning a task and a task group per job, and an extender only to cancel it
unused, were most of the consumer's own cost per job. Most jobs end long
before a third of their lease has passed, so the extender starts late: one
:class:`RenewalSchedule` per consumer holds each job's first renewal time
and, when it comes, starts that job's extender in its runner's task group. A
job that ends first withdraws its entry, and never had an extender.
Cancelling a job's extender scope reliably stops its extension.

However the attempt ends, it ends in one settlement and one report: a plain
settlement goes to the acker's next batch and is reported when that batch
commits, while the runner goes on to its next job.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .. import _core
from .. import _telemetry as telemetry
from .._codec import Codec
from .._core import Action, Item, Layout, Outcome, Settlement
from .._exceptions import StoreError
from .._jobs import JobMeta, JobRegistry
from .._time import Clock, ms_to_datetime, to_ms
from ..stores._protocol import Store
from ._acker import Acker
from ._attempts import (
    JobScope,
    SettlementMaker,
    call_handler,
    carries_cancellation,
    describe_failure,
    failure_settlement,
    job_scopes,
    outcome_settlement,
)
from ._idle import IdleTracker, Wakeup
from ._otel import ConsumerTelemetry
from ._report import Reporter
from ._slots import Slots

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("quickq")

_MIN_RENEWAL_RETRY = 0.05
"""The shortest pause before renewing again after a renewal failed."""


class _Attempt:
    """One attempt of one leased job, from its start to its recorded end: what
    its runner, its extender, the renewal schedule and the acker share."""

    __slots__ = (
        "error_type",
        "exc",
        "extender_done",
        "extender_scope",
        "group",
        "item",
        "lost",
        "qid",
        "renew_at",
        "result",
        "runner",
        "scope",
        "settlement",
        "span",
        "started",
        "withdrawn",
    )

    def __init__(
        self, runner: JobRunner, group: anyio.abc.TaskGroup, qid: str, item: Item, started: float
    ) -> None:
        self.runner = runner
        self.group = group
        """The task group of the job's runner, where its extender runs."""
        self.qid = qid
        self.item = item
        self.started = started
        """When it started, on the wall clock, if events are sent (``Reporter.now``)."""
        self.renew_at = 0.0
        self.withdrawn = False
        """The handler has ended: the extender must not start."""
        self.scope: JobScope | None = None
        """The handler's scope: its deadline is the job's timeout; a lost lease cancels it."""
        self.extender_scope: anyio.CancelScope | None = None
        self.extender_done: anyio.Event | None = None
        self.settlement: Settlement | None = None
        self.result: Any = None
        self.lost = False
        """The lease was lost: nothing may be recorded."""
        self.span: Span | None = None
        """Its ``process`` span, when tracing."""
        self.error_type: str | None = None
        """Why it failed, for telemetry (``error.type``), when it did."""
        self.exc: BaseException | None = None
        """The handler's exception, when it raised one."""

    def settled(self, outcome: Outcome | None) -> None:
        """The acker recorded the settlement (None: it could not)."""
        self.runner.ended(self, outcome, batched=True)


class RenewalSchedule:
    """Starts extenders *delay* seconds after their jobs were scheduled.

    Every entry is due a fixed delay after it is added, so the schedule is a
    FIFO: one task sleeps until the oldest entry is due, then calls *start*
    with it unless it was withdrawn.
    """

    def __init__(self, delay: float, start: Callable[[_Attempt], None]) -> None:
        self._delay = delay
        self._start = start
        self._entries: deque[_Attempt] = deque()
        self._added: anyio.Event | None = None  # set by schedule() while run() waits

    def schedule(self, attempt: _Attempt) -> None:
        """Start *attempt*'s extender after the delay, unless it is withdrawn
        first (``attempt.withdrawn``, set before its job ends)."""
        attempt.renew_at = anyio.current_time() + self._delay
        self._entries.append(attempt)
        added = self._added
        if added is not None:
            self._added = None
            added.set()

    async def run(self) -> None:
        entries = self._entries
        while True:
            if not entries:
                self._added = added = anyio.Event()
                await added.wait()
                continue
            wait = entries[0].renew_at - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            attempt = entries.popleft()
            if not attempt.withdrawn:
                self._start(attempt)


class JobRunner:
    """Runs each leased job in a runner task of the task group given to ``use``."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        jobs: JobRegistry,
        *,
        concurrency: int,
        lease_duration: float,
        cleanup_timeout: float,
        clock: Clock,
        codec: Codec,
        rng: random.Random,
        acker: Acker,
        slots: Slots,
        idle: IdleTracker,
        wakeup: Wakeup,
        reporter: Reporter,
        telemetry: ConsumerTelemetry | None = None,
    ) -> None:
        self._store = store
        self._layout = layout
        self._jobs = jobs
        self._concurrency = concurrency
        self._lease_duration = lease_duration
        self._cleanup_timeout = cleanup_timeout
        self._clock = clock
        self._codec = codec
        self._rng = rng
        self._acker = acker
        self._slots = slots
        self._idle = idle
        self._wakeup = wakeup
        self._reporter = reporter
        self._telemetry = telemetry
        self.renewals = RenewalSchedule(lease_duration / 3, self._start_extender)
        self._group: anyio.abc.TaskGroup | None = None
        self._queued: deque[tuple[str, Item]] = deque()
        """Leased jobs waiting for a runner."""
        self._parked: deque[anyio.Event] = deque()
        """Runners waiting for work, each by the event that wakes it."""
        self._runners = 0
        self._waking = 0
        """Runners woken (or started) that have not yet looked for a job."""
        self._closed = False
        self._job_scope: Callable[[float], JobScope] = lambda deadline: anyio.CancelScope(
            deadline=deadline
        )

    def _now(self) -> int:
        return to_ms(self._clock())

    def use(self, group: anyio.abc.TaskGroup) -> None:
        """Run jobs in runner tasks of *group* from now on."""
        self._group = group
        self._job_scope = job_scopes()

    def start(self, qid: str, item: Item) -> None:
        """Queue leased *item* for a runner (it takes a slot now)."""
        self._reporter.leased()
        self._idle.job_started()
        self._slots.take()
        self._queued.append((qid, item))
        if self._waking == 0:
            self._wake_one()

    def _wake_one(self) -> None:
        """Wake a parked runner, or start one if none is parked and fewer
        than ``concurrency`` run: it takes the next queued job, and wakes the
        next runner only if jobs remain once it has taken its own. So one
        runner at a time is on its way, and a batch of jobs whose handlers
        never wait runs in one runner, without a task switch per job."""
        if self._parked:
            self._waking += 1
            self._parked.popleft().set()
        elif self._runners < self._concurrency:
            assert self._group is not None
            self._waking += 1
            self._runners += 1
            self._group.start_soon(self._serve, name=f"quickq runner {self._runners}")

    async def close(self) -> None:
        """No more jobs will come: runners end once the queued ones are done.
        When the caller is being cancelled, give the queued jobs back now."""
        self._closed = True
        while self._parked:
            self._waking += 1
            self._parked.popleft().set()
        if anyio.current_effective_deadline() == -math.inf:
            await self._give_back_queued()

    async def _serve(self) -> None:
        """One runner: take the next queued job and run it, until closed."""
        queued = self._queued
        async with anyio.create_task_group() as group:  # its jobs' extenders
            try:
                self._waking -= 1  # started by _wake_one
                while True:
                    if queued:
                        qid, item = queued.popleft()
                        if queued and self._waking == 0:
                            self._wake_one()
                        await self._run(group, qid, item)
                        continue
                    if self._closed:
                        return
                    parked = anyio.Event()
                    self._parked.append(parked)
                    try:
                        await parked.wait()
                    except BaseException:
                        if not parked.is_set():
                            self._parked.remove(parked)
                        raise
                    self._waking -= 1  # woken by _wake_one or close
            except BaseException:
                # Cancelled: give back the jobs that no runner will take now.
                await self._give_back_queued()
                raise

    async def _give_back_queued(self) -> None:
        """Release every job still waiting for a runner (each reports started,
        then released, as a job cancelled before its handler ran)."""
        while self._queued:
            qid, item = self._queued.popleft()
            assert self._group is not None
            attempt = _Attempt(self, self._group, qid, item, self._reporter.now())
            wait = self._reporter.started(qid, item, at=attempt.started)
            if self._telemetry is not None:
                attempt.span = self._telemetry.start(qid, item, wait)
            self._slots.release()
            await self._finish(attempt)

    async def _run(self, group: anyio.abc.TaskGroup, qid: str, item: Item) -> None:
        attempt = _Attempt(self, group, qid, item, self._reporter.now())
        wait = self._reporter.started(qid, item, at=attempt.started)
        if self._telemetry is not None:
            attempt.span = self._telemetry.start(qid, item, wait)
        try:
            await self._attempt(attempt)
        finally:
            # The handler is done: its slot may take new work while this settles.
            self._slots.release()
            await self._finish(attempt)

    async def _finish(self, attempt: _Attempt) -> None:
        """Record how *attempt* ended: a plain settlement joins the acker's
        next batch; one with the handler's writes commits alone (in a task of
        the runner's, unless the runner is being cancelled)."""
        if attempt.lost:
            self.ended(attempt, None)
            return
        item = attempt.item
        assert item.lease is not None
        settlement = attempt.settlement
        if settlement is None:
            # Cancelled before an outcome: give the job back.
            settlement = Settlement(Action.RELEASE, attempt.qid, item.item_id, item.lease.lease_id)
            attempt.settlement = settlement
        if settlement.writes is None and self._acker.submit(settlement, attempt.settled):
            return
        if settlement.writes is None or anyio.current_effective_deadline() == -math.inf:
            await self._settle_alone(attempt)
        else:
            attempt.group.start_soon(self._settle_alone, attempt)

    async def _settle_alone(self, attempt: _Attempt) -> None:
        """Commit *attempt*'s settlement in a transaction of its own, and report it."""
        outcome: Outcome | None = None
        try:
            outcome = await self._settle(attempt)
        except BaseException as exc:
            if carries_cancellation(exc):
                # Cancelled mid-commit: record it now (the acker commits it
                # shielded, bounded).
                assert attempt.settlement is not None
                outcome = await self._acker.settle(attempt.settlement)
            raise
        finally:
            self.ended(attempt, outcome)

    async def _settle(self, attempt: _Attempt) -> Outcome | None:
        """Record the finished attempt; if the handler's own writes fail, the
        attempt counts as failed and is retried."""
        settlement = attempt.settlement
        assert settlement is not None
        try:
            return await self._acker.settle(settlement)
        except BaseException as exc:
            if settlement.writes is None or carries_cancellation(exc):
                raise
            item = attempt.item
            definition = self._jobs.get(item.topic)
            assert definition is not None  # it ran the handler
            make = SettlementMaker(
                settlement.queue_id, settlement.item_id, settlement.lease_id, settlement.started
            )
            failed = failure_settlement(
                make, definition, item, self._rng, f"completion writes failed: {exc!r}"
            )
            attempt.settlement = failed
            attempt.error_type, attempt.exc = telemetry.error_type(exc), exc
            return await self._acker.settle(failed)

    def ended(self, attempt: _Attempt, outcome: Outcome | None, *, batched: bool = False) -> None:
        """Count and report how *attempt* ended, once its outcome is known
        (*batched*: as one of the acker's batch, which flushes the counters)."""
        # Lost: the renewer saw the lease go, or the commit found it gone
        # (LOST), or nothing could be recorded (None). What the handler did
        # was not recorded, so a lost attempt's error is its loss, the same
        # in the log, the span and the metrics.
        lease_lost = attempt.lost or outcome is Outcome.LOST
        if attempt.lost:
            outcome = None
        error_type = attempt.error_type
        if outcome is None or outcome is Outcome.LOST:
            error_type = "lease_lost" if lease_lost else "unrecorded"
        settlement = attempt.settlement
        error = reason = snooze = None
        if settlement is not None:
            error = settlement.error
            if outcome is Outcome.DEAD_LETTERED:
                reason = settlement.dead_reason
            elif outcome is Outcome.RETRIED and settlement.action is Action.SNOOZE:
                snooze = settlement.delay_ms / 1000
        duration = self._reporter.ended(
            attempt.qid,
            attempt.item,
            outcome,
            started=attempt.started,
            result=attempt.result,
            error=error,
            error_type=error_type,
            reason=reason,
            snooze=snooze,
        )
        if self._telemetry is not None:
            self._telemetry.end(
                attempt.item,
                attempt.span,
                duration,
                outcome,
                settlement,
                error_type=error_type,
                exc=attempt.exc,
                batched=batched,
            )
        if outcome is Outcome.RETRIED or outcome is Outcome.RELEASED:
            self._wakeup.set()  # it is ready again, perhaps at once: look
        self._idle.job_ended()

    async def _attempt(self, attempt: _Attempt) -> None:
        """Run one attempt, filling in *attempt* the moment its outcome is known.

        Whatever the handler does (any return value, any exception but the
        consumer's own cancellation) ends as a settlement: an outcome the queue
        cannot record is a failure of the attempt, retried then dead-lettered.
        """
        qid, item = attempt.qid, attempt.item
        assert item.lease is not None
        make = SettlementMaker(qid, item.item_id, item.lease.lease_id, to_ms(attempt.started))
        definition = self._jobs.get(item.topic)
        if definition is None:
            missing = f"no handler for topic {item.topic!r}"
            attempt.settlement = make(Action.DEAD_LETTER, reason="no_handler", error=missing)
            attempt.error_type = "no_handler"
            return
        try:
            payload = self._codec.decode(item.payload)
        except Exception as exc:
            error = f"payload cannot be decoded: {exc!r}"
            attempt.settlement = make(Action.DEAD_LETTER, error=error)
            attempt.error_type, attempt.exc = "payload_decode", exc
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
        deadline = anyio.current_time() + timeout if timeout else math.inf
        scope = attempt.scope = self._job_scope(deadline)
        self.renewals.schedule(attempt)
        span = attempt.span
        token = None if span is None else telemetry.attach(span)  # the handler's spans: children
        try:
            result, failure, raised = await call_handler(
                definition.handler, payload, meta, scope=scope, limit=timeout
            )
            # Known before anything else can happen, so a cancellation landing
            # now cannot turn a finished attempt into an unattempted one.
            attempt.settlement, attempt.result = outcome_settlement(
                make, definition, item, self._rng, result, failure
            )
            if failure is not None:
                attempt.error_type = "timeout" if raised is None else telemetry.error_type(raised)
                attempt.exc = raised
            elif attempt.settlement.action is Action.RETRY:
                attempt.error_type = "unrecordable"  # an outcome the queue cannot hold
        except BaseException as exc:
            if carries_cancellation(exc) or attempt.settlement is not None:
                raise
            attempt.settlement = failure_settlement(
                make, definition, item, self._rng, describe_failure(exc)
            )
            attempt.error_type, attempt.exc = telemetry.error_type(exc), exc
        finally:
            if token is not None:
                telemetry.detach(token)
            attempt.withdrawn = True  # the extender must not start now
            await self._stop_extender(attempt)
        if attempt.lost:
            attempt.error_type = "lease_lost"

    def _start_extender(self, attempt: _Attempt) -> None:
        """The job's first renewal is due: start its extender in its runner's group."""
        attempt.extender_scope = anyio.CancelScope()
        attempt.extender_done = anyio.Event()
        attempt.group.start_soon(
            self._extend_lease, attempt, name=f"quickq extender {attempt.item.item_id}"
        )

    async def _stop_extender(self, attempt: _Attempt) -> None:
        """Cancel the job's extender, if it started, and wait for it to end
        (shielded, bounded), so that no renewal runs once the job settles."""
        scope, done = attempt.extender_scope, attempt.extender_done
        if scope is None or done is None:
            return
        scope.cancel()
        # As a task group would, wait for it even while being cancelled; it
        # was cancelled, so it ends at its next await (bounded all the same).
        with anyio.move_on_after(self._cleanup_timeout + self._lease_duration, shield=True):
            await done.wait()

    async def _extend_lease(self, attempt: _Attempt) -> None:
        """Renew the lease now and every lease/3 until cancelled; cancel the
        handler once it is lost. Started by the renewal schedule, lease/3 after
        the job started."""
        scope, done = attempt.extender_scope, attempt.extender_done
        assert scope is not None and done is not None
        try:
            with scope:
                await self._renew(attempt)
        finally:
            done.set()

    async def _renew(self, attempt: _Attempt) -> None:
        qid, item = attempt.qid, attempt.item
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
                if not attempt.withdrawn:  # else its settlement, fenced, finds it lost
                    attempt.lost = True
                    assert attempt.scope is not None
                    attempt.scope.cancel()
                return
            await anyio.sleep(interval)
