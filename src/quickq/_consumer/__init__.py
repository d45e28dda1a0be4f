"""The consumer: one nursery tree per ``open_consumer``.

::

    serve_consumer
    +- acker: commits the settlements of finished attempts, many per transaction
    +- renewal schedule: lease/3 into a job, starts its extender in its nursery
    +- jobs: one task per leased job, each a nursery of
    |    +- the handler (under the job's timeout)
    |    +- the lease extender, once started (jobs that end sooner never need
    |       one): renews every lease/3; when a renewal proves the lease lost,
    |       it cancels the handler; the handler's end cancels it
    +- intake (the scanner): while a slot is free, snapshot-peek due queue
         pointers, pick a random subset, and per queue take the queue lease
         (own transaction), then lease a batch of ready items (own transaction,
         which also moves the pointer on and so releases the queue lease)

Shutdown is graceful: stop the intake, let running jobs finish within the grace
period, then cancel them; a cancelled job gives its lease back (shielded,
bounded). Correctness never depends on that cleanup: lease expiry is the
backstop. Store errors back the consumer off; they never crash it.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Unpack

import anyio
import anyio.abc
import attrs

from .. import _core
from .._codec import Codec
from .._core import Action, Item, Layout, Outcome, Settlement
from .._events import EventHook, EventKind, JobEvent
from .._exceptions import QuickqError, StoreError, TooLargeError
from .._jobs import JobMeta, JobRegistry
from .._limits import STORE_BACKOFF_MAX, STORE_BACKOFF_MIN
from .._time import Clock, ms_to_datetime, to_ms
from ..stores._protocol import Store, SupportsWatch, Transaction
from ._attempts import (
    SettlementMaker,
    call_handler,
    carries_cancellation,
    describe_failure,
    failure_settlement,
    outcome_settlement,
)
from ._config import ConsumerConfig as ConsumerConfig
from ._config import ConsumerOptions as ConsumerOptions
from ._config import check_options
from ._renewals import RenewalSchedule

log = logging.getLogger("quickq")

_EVENT_OF: dict[Outcome, EventKind] = {
    Outcome.COMPLETED: "completed",
    Outcome.RETRIED: "retried",
    Outcome.DEAD_LETTERED: "dead",
    Outcome.RELEASED: "released",
    Outcome.LOST: "lost",
}
_ACK_BATCH = 256


@attrs.frozen
class ConsumerStatistics:
    """A snapshot of what a consumer has done (see ``Consumer.statistics``)."""

    running: int
    leased: int
    completed: int
    retried: int
    dead_lettered: int
    released: int
    lost: int
    """Attempts whose lease was lost: their outcome was not recorded."""


@attrs.define
class _Counts:
    leased: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    lost: int = 0


@attrs.define
class _Ended:
    """How one attempt ended, filled in as soon as it is known."""

    settlement: Settlement | None = None
    result: Any = None
    lost: bool = False
    """The lease was lost: nothing may be recorded."""


class _Settler:
    """The acker: commits queued settlements in as few transactions as it can."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        send, receive = anyio.create_memory_object_stream[
            tuple[Settlement, list[Outcome], anyio.Event]
        ](math.inf)
        self._send, self._receive = send, receive

    async def settle(self, settlement: Settlement) -> Outcome | None:
        """Settle through the acker; None if it has stopped (the consumer is
        being cancelled: the caller settles on its own)."""
        box: list[Outcome] = []
        done = anyio.Event()
        try:
            self._send.send_nowait((settlement, box, done))
        except anyio.ClosedResourceError:
            return None
        await done.wait()
        return box[0]

    async def run(self) -> None:
        with self._send, self._receive:
            await self._run()

    async def _run(self) -> None:
        async for first in self._receive:
            batch = [first]
            while len(batch) < _ACK_BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            outcomes = await self.commit([settlement for settlement, _, _ in batch])
            for (_, box, done), outcome in zip(batch, outcomes, strict=True):
                box.append(outcome)
                done.set()

    async def commit(self, settlements: list[Settlement]) -> list[Outcome]:
        """Settle *settlements* in one transaction now, backing off while the store fails.

        A batch the store finds too large is split in halves, never retried
        whole. One settlement still too large (other than a completion with
        its own writes, whose failure the caller records) becomes a dead
        letter saying so: an attempt always ends recorded.
        """

        async def settle_all(tr: Transaction) -> list[Outcome]:
            return await self._consumer._settle_all(tr, settlements)

        backoff = STORE_BACKOFF_MIN
        while True:
            try:
                return await self._consumer._store.transact(settle_all)
            except TooLargeError as exc:
                if len(settlements) > 1:
                    half = len(settlements) // 2
                    return await self.commit(settlements[:half]) + await self.commit(
                        settlements[half:]
                    )
                (one,) = settlements
                if one.writes is not None:
                    raise  # the caller records the failed writes as a failed attempt
                if one.reason == "unrecordable":  # not even that fits: lease expiry retries it
                    log.error("quickq: job %s cannot be settled (%s)", one.item_id, exc)
                    return [Outcome.LOST]
                log.warning("quickq: job %s's outcome is too large (%s)", one.item_id, exc)
                error = f"the attempt's outcome could not be recorded: {exc}"
                unrecordable = attrs.evolve(
                    one, action=Action.DEAD_LETTER, reason="unrecordable", error=error, writes=None
                )
                return await self.commit([unrecordable])
            except StoreError as exc:
                log.warning("quickq: settling %d jobs failed (%s); retrying", len(settlements), exc)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, STORE_BACKOFF_MAX)


class Consumer:
    """A running consumer. Get one from ``open_consumer`` or ``serve_consumer``."""

    def __init__(
        self,
        store: Store,
        jobs: JobRegistry,
        settings: ConsumerConfig,
        *,
        root: tuple[Any, ...],
        clock: Clock,
        codec: Codec,
        on_event: EventHook | None = None,
    ) -> None:
        self._store = store
        self._on_event = on_event
        self._jobs = jobs
        self.settings = settings
        self._layout = Layout(root)
        self._clock = clock
        self._codec = codec
        self.consumer_id = secrets.token_hex(8)
        self._rng = random.Random()
        self._counts = _Counts()
        self._running = 0  # jobs not yet settled
        self._busy = 0  # jobs whose handler holds a slot (concurrency counts these)
        self._slot_freed = anyio.Event()
        self._poke = anyio.Event()
        self._stop = anyio.Event()
        self._scans_started = 0
        self._last_idle_scan = -1  # the number of the last scan that found nothing to do
        self._scanned = anyio.Event()  # set (and replaced) at the end of every scan
        self._idle_waiters = 0  # tasks in wait_idle(): the last job's end makes it look
        self._last_housekeeping = 0
        self._settler = _Settler(self)
        self._renewals = RenewalSchedule(settings.lease_duration / 3)
        self._jobs_group: anyio.abc.TaskGroup | None = None
        self._watch_after = -math.inf  # after a failed watch: poll until then
        self._watch_backoff = settings.scan_interval

    # -- public -------------------------------------------------------------------

    def statistics(self) -> ConsumerStatistics:
        """What this consumer has done so far."""
        return ConsumerStatistics(running=self._running, **attrs.asdict(self._counts))

    async def wait_idle(self) -> None:
        """Return once nothing is running and no job is due (scheduled ones may wait).

        Handy in scripts and tests: enqueue, then ``await consumer.wait_idle()``.
        """
        after = self._scans_started  # only a scan that starts from now on counts
        self._idle_waiters += 1
        try:
            while self._last_idle_scan <= after:
                scanned = self._scanned
                # With jobs running, the last one's end pokes the scanner: poking
                # now would only spin scans that cannot find the consumer idle.
                if self._running == 0:
                    self._poke.set()
                await scanned.wait()
        finally:
            self._idle_waiters -= 1

    def stop(self) -> None:
        """Begin a graceful shutdown: stop leasing, let running jobs finish
        within the grace period, then cancel them and give their leases back."""
        self._stop.set()

    # -- the tree -----------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[Consumer]) -> None:
        async with anyio.create_task_group() as service:
            service.start_soon(self._settler.run)
            service.start_soon(self._renewals.run)
            async with anyio.create_task_group() as jobs:
                self._jobs_group = jobs
                async with anyio.create_task_group() as intake:
                    intake.start_soon(self._scan_forever)
                    task_status.started(self)
                    await self._stop.wait()
                    intake.cancel_scope.cancel()
                jobs.cancel_scope.deadline = anyio.current_time() + self.settings.grace_period
            service.cancel_scope.cancel()

    def _now(self) -> int:
        return to_ms(self._clock())

    # -- intake -------------------------------------------------------------------

    async def _scan_forever(self) -> None:
        s = self.settings
        backoff = s.scan_interval
        # With a backlog, wait for half a batch of free slots before leasing
        # again: leasing one job per transaction as each slot frees would cost
        # three transactions a job.
        refill = max(1, min(s.batch_size, s.concurrency) // 2)
        need = 1
        while True:
            while s.concurrency - self._busy < need:
                self._slot_freed = anyio.Event()
                await self._slot_freed.wait()
            self._scans_started += 1
            number = self._scans_started
            try:
                await self._housekeeping()
                found, complete, next_due, seen = await self._scan_once()
                backoff = self.settings.scan_interval
            except StoreError as exc:
                log.warning("quickq: scan failed (%s); backing off %.2fs", exc, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, STORE_BACKOFF_MAX)
                need = 1
                continue
            need = refill if found else 1
            if not found and self._running == 0:
                self._last_idle_scan = number
            self._scanned.set()
            self._scanned = anyio.Event()
            if found and not complete:
                await anyio.lowlevel.checkpoint()
                continue
            await self._wait_for_work(next_due, seen)

    async def _housekeeping(self) -> None:
        """Once a minute, drop expired enqueue receipts (one blind range clear)."""
        now = self._now()
        if now - self._last_housekeeping < 60_000:
            return
        self._last_housekeeping = now

        async def forget(tr: Transaction) -> None:
            _core.forget_receipts(tr, self._layout, now)

        await self._store.transact(forget)

    async def _scan_once(self) -> tuple[bool, bool, int | None, bytes | None]:
        """One scan round: (leased anything, complete, next due time, wake counter).

        Complete: every due queue was leased from and left with nothing ready,
        so the next due time is known without another peek (under a trickle of
        jobs, that peek would cost as much as the leasing).
        """
        layout = self._layout
        now = self._now()
        s = self.settings

        async def peek(tr: Transaction) -> tuple[list[str], int | None, bytes | None]:
            due = await _core.due_queues(tr, layout, now, s.peek_limit)
            next_due = await _core.next_due_time(tr, layout, after=now)
            seen = await tr.get(layout.wake, snapshot=True)
            return due, next_due, seen

        due, next_due, seen = await self._store.transact(peek)
        if not due:
            return False, False, next_due, seen
        # QuiCK picks a random fraction of the due queues, so that consumers
        # spread out; take at least enough queues to fill the free slots.
        free = s.concurrency - self._busy
        # Each chosen queue may fill its share of the free slots, and at least
        # a batch: a queue due alone fills them all in one transaction.
        per_queue = max(s.batch_size, -(-free // len(due)))
        want = min(s.selection_max, math.ceil(len(due) * s.selection_fraction))
        want = max(want, -(-free // per_queue), 1)
        chosen = self._rng.sample(due, min(len(due), want))
        complete = len(chosen) == len(due) < s.peek_limit
        leased_any = False
        for qid in chosen:
            free = s.concurrency - self._busy
            if free <= 0:
                complete = False
                break
            batch: _core.LeaseBatch | None = None
            with anyio.CancelScope(shield=True):
                # Shielded so a stop never abandons a committed lease unused.
                with anyio.move_on_after(s.cleanup_timeout + s.queue_lease_duration):
                    batch = await self._lease_from(qid, min(free, per_queue))
            if batch is None or batch.more_ready or batch.next_due is None:
                complete = False
            elif next_due is None or batch.next_due < next_due:
                next_due = batch.next_due
            for item in batch.items if batch else ():
                self._start_job(qid, item)
                leased_any = True
        if not leased_any:  # due queues, all taken by others: look again shortly
            next_due = now + to_ms(s.scan_interval)
        return leased_any, complete and leased_any, next_due, seen

    async def _lease_from(self, qid: str, limit: int) -> _core.LeaseBatch | None:
        """Take the queue's lease, then lease up to *limit* items (None: taken by another)."""
        s = self.settings
        token = secrets.token_hex(6)
        now = self._now()
        taken = await self._store.transact(
            lambda tr: _core.take_queue_lease(
                tr, self._layout, qid, self.consumer_id, token, now, to_ms(s.queue_lease_duration)
            )
        )
        if not taken:
            return None
        batch_token = secrets.token_hex(6)

        async def lease(tr: Transaction) -> _core.LeaseBatch:
            return await _core.lease_items(
                tr,
                self._layout,
                qid,
                holder=self.consumer_id,
                token=token,
                batch_token=batch_token,
                limit=limit,
                now=self._now(),
                lease_ms=to_ms(s.lease_duration),
                idle_gc_ms=to_ms(s.idle_gc),
            )

        batch = await self._store.transact(lease)
        self._counts.leased += len(batch.items)
        return batch

    async def _wait_for_work(self, next_due: int | None, seen: bytes | None) -> None:
        s = self.settings
        # A store that can watch wakes us; after a failed watch, poll for a
        # while (backing off) before watching again.
        watch = isinstance(self._store, SupportsWatch) and anyio.current_time() >= self._watch_after
        delay = s.idle_poll if watch else s.scan_interval
        delay *= self._rng.uniform(0.8, 1.2)
        if next_due is not None:
            delay = max(0.0, min(delay, (next_due - self._now()) / 1000))
        self._poke = poke = anyio.Event()
        with anyio.move_on_after(delay):
            if not watch:
                await poke.wait()
                return
            async with anyio.create_task_group() as tg:

                async def watch_wake() -> None:
                    try:
                        await self._store.wait_for_change(self._layout.wake, seen)  # type: ignore[attr-defined]
                    except StoreError as exc:
                        self._watch_failed(exc)
                        await anyio.sleep(s.scan_interval)  # poll instead, this once
                    else:
                        self._watch_backoff = s.scan_interval
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_wake)
                await poke.wait()
                tg.cancel_scope.cancel()

    def _watch_failed(self, exc: StoreError) -> None:
        backoff = self._watch_backoff
        log.warning("quickq: watching for new jobs failed (%s); polling for %.2fs", exc, backoff)
        self._watch_after = anyio.current_time() + backoff
        self._watch_backoff = min(backoff * 2, STORE_BACKOFF_MAX)

    # -- jobs ---------------------------------------------------------------------

    def _start_job(self, qid: str, item: Item) -> None:
        assert self._jobs_group is not None
        self._running += 1
        self._busy += 1
        self._jobs_group.start_soon(self._run_job, qid, item, name=f"quickq job {item.item_id}")

    async def _run_job(self, qid: str, item: Item) -> None:
        assert item.lease is not None
        ended = _Ended()
        outcome: Outcome | None = None
        holds_slot = True
        started = self._clock()
        self._emit("started", qid, item, wait=max(0.0, started - item.vesting / 1000))
        try:
            await self._attempt(qid, item, ended)
            # The handler is done: its slot may take new work while this settles.
            holds_slot = False
            self._free_slot()
            if not ended.lost:
                settlement = ended.settlement
                assert settlement is not None
                if settlement.writes is not None:
                    outcome, settlement = await self._settle_with_writes(settlement, item)
                else:
                    outcome = await self._settler.settle(settlement)
                ended.settlement = settlement
        finally:
            if outcome is None and not ended.lost:
                # Cancelled, or the acker has stopped: record how the attempt
                # ended if it did, else give the job back.
                release = Settlement(Action.RELEASE, qid, item.item_id, item.lease.lease_id)
                ended.settlement = ended.settlement or release
                outcome = await self._settle_directly(ended.settlement)
            self._ended(qid, item, ended, outcome, duration=self._clock() - started)
            if holds_slot:
                self._free_slot()
            self._running -= 1
            if self._running == 0 and self._idle_waiters:
                self._poke.set()  # let the scanner look again, and notice idleness

    def _ended(
        self, qid: str, item: Item, ended: _Ended, outcome: Outcome | None, duration: float
    ) -> None:
        """Count and report the end of one attempt: exactly one event each."""
        if ended.lost or outcome is None or outcome is Outcome.LOST:
            # Nothing was recorded: the lease was lost, or could not be settled
            # (its expiry brings the job back).
            self._counts.lost += 1
            self._emit("lost", qid, item, duration=duration)
            return
        self._count(outcome)
        settlement = ended.settlement
        assert settlement is not None
        self._emit(
            _EVENT_OF[outcome],
            qid,
            item,
            duration=duration,
            result=ended.result if outcome is Outcome.COMPLETED else None,
            error=settlement.error,
        )

    def _free_slot(self) -> None:
        self._busy -= 1
        self._slot_freed.set()

    def _emit(self, kind: EventKind, qid: str, item: Item, **fields: Any) -> None:
        if self._on_event is None:
            return
        event = JobEvent(kind, qid, item.item_id, item.topic, item.attempt, self._clock(), **fields)
        try:
            self._on_event(event)
        except Exception:
            log.exception("quickq: the on_event hook raised")

    async def _settle_with_writes(
        self, settlement: Settlement, item: Item
    ) -> tuple[Outcome | None, Settlement]:
        """Complete with the handler's own writes, in a transaction of its own.

        If the writes raise, the attempt counts as failed and is retried.
        """
        try:
            (outcome,) = await self._settler.commit([settlement])
            return outcome, settlement
        except BaseException as exc:
            if carries_cancellation(exc):
                raise
            definition = self._jobs.get(item.topic)
            assert definition is not None  # it ran the handler
            make = SettlementMaker(settlement.queue_id, settlement.item_id, settlement.lease_id)
            failed = failure_settlement(
                make, definition, item, self._rng, f"completion writes failed: {exc!r}"
            )
            return await self._settler.settle(failed), failed

    async def _settle_directly(self, settlement: Settlement) -> Outcome | None:
        """Settle under a shield, bounded: used when the job is being cancelled.
        None when it could not be recorded (the lease's expiry is the backstop)."""
        with anyio.move_on_after(self.settings.cleanup_timeout, shield=True):
            try:
                (outcome,) = await self._store.transact(
                    lambda tr: self._settle_all(tr, [settlement])
                )
                return outcome
            except QuickqError as exc:
                log.warning("quickq: could not settle job %s (%s)", settlement.item_id, exc)
        return None

    async def _settle_all(self, tr: Transaction, batch: list[Settlement]) -> list[Outcome]:
        clock = self._now
        return [await _core.settle(tr, self._layout, s, clock) for s in batch]

    def _count(self, outcome: Outcome) -> None:
        """Count a recorded outcome (LOST is counted by ``_ended``)."""
        if outcome is Outcome.COMPLETED:
            self._counts.completed += 1
        elif outcome is Outcome.RETRIED:
            self._counts.retried += 1
            self._poke.set()
        elif outcome is Outcome.DEAD_LETTERED:
            self._counts.dead_lettered += 1
        elif outcome is Outcome.RELEASED:
            self._counts.released += 1
            self._poke.set()

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
            item_id=item.item_id,
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
                renewal = self._renewals.schedule(
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
        s = self.settings
        lease_ms = to_ms(s.lease_duration)
        expiry = item.lease.expiry
        lease_id = item.lease.lease_id
        while True:
            interval = s.lease_duration / 3
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
                    interval = max(0.05, min(interval, (expiry - self._now()) / 4000))
            else:
                if ok:
                    expiry = self._now() + lease_ms
            if not ok:
                lost.set()
                handler_scope.cancel()
                return
            await anyio.sleep(interval)


async def serve_consumer(
    store: Store,
    jobs: JobRegistry,
    *,
    task_status: anyio.abc.TaskStatus[Consumer] = anyio.TASK_STATUS_IGNORED,
    **options: Unpack[ConsumerOptions],
) -> None:
    """Run a consumer until it is stopped or cancelled (for callers that own a nursery).

    ``consumer = await nursery.start(serve_consumer, store, jobs)`` returns once
    the consumer runs; ``consumer.stop()`` drains it gracefully; cancelling the
    nursery cancels running jobs and gives their leases back. The options are
    those of :class:`ConsumerOptions`.
    """
    await _make_consumer(store, jobs, options).run(task_status=task_status)


def _make_consumer(store: Store, jobs: JobRegistry, options: ConsumerOptions) -> Consumer:
    """Check every argument (raising InvalidArgumentError at the call site,
    before anything starts) and build a consumer."""
    checked = check_options(store, jobs, options)
    return Consumer(
        store,
        jobs,
        checked.settings,
        root=checked.root,
        clock=checked.clock,
        codec=checked.codec,
        on_event=checked.on_event,
    )


@asynccontextmanager
async def open_consumer(
    store: Store, jobs: JobRegistry, **options: Unpack[ConsumerOptions]
) -> AsyncIterator[Consumer]:
    """Consume jobs from *store* with the handlers in *jobs* while the block runs.

    Options (:class:`ConsumerOptions`): ``concurrency``, ``batch_size``,
    ``lease_duration``, ``queue_lease_duration``, ``scan_interval``,
    ``idle_poll``, ``grace_period``, ``root``, ``clock``, ``codec``, ``on_event``.

    Works in trio and asyncio (anyio) programs. Leaving the block drains the
    consumer gracefully; cancelling it cancels running jobs.
    """
    consumer = _make_consumer(store, jobs, options)
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: consumer.run(task_status=task_status))
        try:
            yield consumer
        finally:
            consumer.stop()
