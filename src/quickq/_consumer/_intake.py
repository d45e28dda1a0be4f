"""The intake (the scanner): finding due queues and leasing jobs from them.

While a handler slot is free (and the acker is not more than two batches
behind): snapshot-peek the pointers of due queues, pick a
random subset (QuiCK: ``min(selection_max, ceil(n * selection_fraction))``,
at least enough to fill the free slots), and per chosen queue take its queue
lease (own transaction), then lease a batch of ready items (own transaction,
which also moves the pointer on and so releases the queue lease). Each leased
item goes to the job runner. Between scans it sleeps until the next job is
due, a watch fires, or it is woken.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping

import anyio
import attrs

from .. import _core
from .._core import Item, Layout, LeaseBatch
from .._exceptions import StoreError
from .._limits import STORE_BACKOFF_MAX
from .._time import to_ms
from ..stores._protocol import Store, Transaction
from ..stores._watchers import any_change_waiter
from ._config import ConsumerConfig
from ._idle import IdleTracker, Wakeup
from ._slots import Slots

log = logging.getLogger("quickq")

_HOUSEKEEPING_MS = 60_000
_EXPIRY_ROUNDS = 10
"""The most history-expiry transactions one housekeeping runs (each takes
``EXPIRE_BATCH`` queue-minutes): what is left waits for the next minute."""


@attrs.frozen
class ScanRound:
    """What one scan found."""

    leased_any: bool
    complete: bool
    """Every due queue was leased from and left with nothing ready, so the
    next due time is known without another peek (under a trickle of jobs,
    that peek would cost as much as the leasing)."""
    next_due: int | None
    """When the next job is due (ms), if known."""
    seen: Mapping[bytes, bytes | None]
    """The wake-up counters as the peek read them, for the watch."""
    again: bool = False
    """Look again at once: a chosen queue had nothing ready (its mark only
    announced later work, and is gone now) while other due queues wait."""


@attrs.frozen
class _Peek:
    due: list[str]
    next_due: int | None
    seen: Mapping[bytes, bytes | None]


class Intake:
    """The scanner of one consumer; ``run()`` until cancelled."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        config: ConsumerConfig,
        *,
        clock: Callable[[], int],
        rng: random.Random,
        holder: str,
        slots: Slots,
        idle: IdleTracker,
        wakeup: Wakeup,
        start_job: Callable[[str, Item], None],
        wait_room: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._layout = layout
        self._config = config
        self._now = clock
        self._rng = rng
        self._holder = holder
        self._slots = slots
        self._idle = idle
        self._wakeup = wakeup
        self._start_job = start_job
        self._wait_room = wait_room
        self._last_housekeeping = 0
        self._wait_for_change = any_change_waiter(store)  # None: the store cannot watch
        self._watch_after = -math.inf  # after a failed watch: poll until then
        self._watch_backoff = config.scan_interval

    async def run(self) -> None:
        c = self._config
        backoff = c.scan_interval
        # With a backlog, wait for half a batch of free slots before leasing
        # again: leasing one job per transaction as each slot frees would cost
        # three transactions a job.
        refill = max(1, min(c.batch_size, c.concurrency) // 2)
        need = 1
        while True:
            await self._slots.wait_free(need)
            await self._wait_room()  # the acker keeps up with the handlers
            number = self._idle.scan_started()
            try:
                await self._housekeeping()
                scan = await self.scan_once()
                backoff = c.scan_interval
            except StoreError as exc:
                log.warning("quickq: scan failed (%s); backing off %.2fs", exc, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, STORE_BACKOFF_MAX)
                need = 1
                continue
            need = refill if scan.leased_any else 1
            self._idle.scan_ended(number, found=scan.leased_any)
            if (scan.leased_any and not scan.complete) or scan.again:
                await anyio.lowlevel.checkpoint()
                continue
            await self._wait_for_work(scan.next_due, scan.seen)

    async def _housekeeping(self) -> None:
        """Once a minute, drop expired enqueue receipts and history older than
        ``history_keep`` (blind range clears after snapshot reads: consumers
        doing it at once never conflict)."""
        now = self._now()
        if now - self._last_housekeeping < _HOUSEKEEPING_MS:
            return
        self._last_housekeeping = now
        keep = to_ms(self._config.history_keep)
        before = (now - keep) // _core.MINUTE_MS

        async def forget(tr: Transaction) -> bool:
            _core.forget_receipts(tr, self._layout, now)
            return keep > 0 and await _core.expire_history(tr, self._layout, before)

        more = await self._store.transact(forget)
        for _ in range(_EXPIRY_ROUNDS - 1):
            if not more:
                break
            more = await self._store.transact(
                lambda tr: _core.expire_history(tr, self._layout, before)
            )

    async def scan_once(self) -> ScanRound:
        """One scan: peek, pick, and lease from each chosen queue."""
        c = self._config
        now = self._now()
        peek = await self._store.transact(lambda tr: self._peek(tr, now))
        due, next_due = peek.due, peek.next_due
        if not due:
            return ScanRound(False, False, next_due, peek.seen)
        # QuiCK picks a random fraction of the due queues, so that consumers
        # spread out; take at least enough queues to fill the free slots.
        free = self._slots.free
        # Each chosen queue may fill its share of the free slots, and at least
        # a batch: a queue due alone fills them all in one transaction.
        per_queue = max(c.batch_size, -(-free // len(due)))
        want = min(c.selection_max, math.ceil(len(due) * c.selection_fraction))
        want = max(want, -(-free // per_queue), 1)
        chosen = self._rng.sample(due, min(len(due), want))
        complete = len(chosen) == len(due) < c.peek_limit
        leased_any = emptied = False
        for qid in chosen:
            free = self._slots.free
            if free <= 0:
                complete = False
                break
            batch: LeaseBatch | None = None
            with anyio.CancelScope(shield=True):
                # Shielded so a stop never abandons a committed lease unused.
                with anyio.move_on_after(c.cleanup_timeout + c.queue_lease_duration):
                    batch = await self._lease_from(qid, min(free, per_queue))
            emptied = emptied or (batch is not None and not batch.items)
            if batch is None or batch.more_ready or batch.next_due is None:
                complete = False
            elif next_due is None or batch.next_due < next_due:
                next_due = batch.next_due
            for item in batch.items if batch else ():
                self._start_job(qid, item)
                leased_any = True
        again = emptied and len(chosen) < len(due)
        if not leased_any:  # due queues, all taken by others: look again shortly
            next_due = now + to_ms(c.scan_interval)
        return ScanRound(leased_any, complete and leased_any, next_due, peek.seen, again)

    async def _peek(self, tr: Transaction, now: int) -> _Peek:
        layout = self._layout
        due = await _core.due_queues(tr, layout, now, self._config.peek_limit)
        next_due = await _core.next_due_time(tr, layout, after=now)
        seen = await _core.wake_counters(tr, layout)
        return _Peek(due, next_due, seen)

    async def _lease_from(self, qid: str, limit: int) -> LeaseBatch | None:
        """Take the queue's lease, then lease up to *limit* items (None: taken by another)."""
        c = self._config
        token = secrets.token_hex(6)
        now = self._now()
        taken = await self._store.transact(
            lambda tr: _core.take_queue_lease(
                tr, self._layout, qid, self._holder, token, now, to_ms(c.queue_lease_duration)
            )
        )
        if not taken:
            return None
        batch_token = secrets.token_hex(6)

        async def lease(tr: Transaction) -> LeaseBatch:
            return await _core.lease_items(
                tr,
                self._layout,
                qid,
                holder=self._holder,
                token=token,
                batch_token=batch_token,
                limit=limit,
                now=self._now(),
                lease_ms=to_ms(c.lease_duration),
                idle_gc_ms=to_ms(c.idle_gc),
                history=c.history_keep > 0,
            )

        return await self._store.transact(lease)

    async def _wait_for_work(
        self, next_due: int | None, seen: Mapping[bytes, bytes | None]
    ) -> None:
        c = self._config
        # A store that can watch wakes us (on a change of any shard's wake-up
        # counter); after a failed watch, poll for a while (backing off)
        # before watching again.
        wait_for_change = self._wait_for_change
        watch = wait_for_change is not None and anyio.current_time() >= self._watch_after
        delay = c.idle_poll if watch else c.scan_interval
        delay *= self._rng.uniform(0.8, 1.2)
        if next_due is not None:
            delay = max(0.0, min(delay, (next_due - self._now()) / 1000))
        woken = self._wakeup.arm()
        with anyio.move_on_after(delay):
            if wait_for_change is None or not watch:
                await woken.wait()
                return
            async with anyio.create_task_group() as tg:

                async def watch_wake() -> None:
                    assert wait_for_change is not None
                    try:
                        await wait_for_change(seen)
                    except StoreError as exc:
                        self._watch_failed(exc)
                        await anyio.sleep(c.scan_interval)  # poll instead, this once
                    else:
                        self._watch_backoff = c.scan_interval
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_wake)
                await woken.wait()
                tg.cancel_scope.cancel()

    def _watch_failed(self, exc: StoreError) -> None:
        backoff = self._watch_backoff
        log.warning("quickq: watching for new jobs failed (%s); polling for %.2fs", exc, backoff)
        self._watch_after = anyio.current_time() + backoff
        self._watch_backoff = min(backoff * 2, STORE_BACKOFF_MAX)
