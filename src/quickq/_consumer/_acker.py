"""The acker: where every finished attempt is recorded.

A runner hands a finished attempt over with ``acker.submit(settlement,
done)`` and goes on to its next job at once: the acker's own task commits the
settlements that arrive together, up to ``ACK_BATCH`` in one transaction,
and then calls each one's *done* with the outcome the queue recorded. With a
backlog, one commit records many jobs, and no job waits on an event of its
own for it.

What is not batched is committed by ``await acker.settle(settlement)``:

- a settlement carrying the handler's own writes (``Complete(writes=...)``)
  commits in a transaction of its own, since writes that fail must not take a
  batch down;
- when its caller is being cancelled, or the acker has stopped (``submit``
  then returns False), it commits at once from the caller's task, shielded
  and bounded by the cleanup timeout, so a job cancelled at shutdown still
  gives its lease back.

When the acker's task is cancelled, it commits what it still holds the same
way (shielded, bounded) before it ends. The acker owns its store, layout and
clock and knows nothing of the consumer. With telemetry on, each batch's
commit is a ``settle`` span, and the batch's counters are added once it is
reported.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Final, TypeAlias

import anyio
import attrs

from .. import _core
from .._core import Action, Layout, Outcome, Settlement
from .._exceptions import QuickqError, StoreError, TooLargeError
from .._limits import STORE_BACKOFF_MAX, STORE_BACKOFF_MIN
from ..stores._protocol import Store, Transaction
from ._otel import ConsumerTelemetry

log = logging.getLogger("quickq")

ACK_BATCH: Final = 256
"""The most settlements one batch commits."""

ACK_BACKLOG: Final = 2 * ACK_BATCH
"""The most settlements the acker holds before the intake waits for it
(``wait_room``): runners that outpace the commits must not leave the
settlements of a long drain to wait past their leases."""

Done: TypeAlias = Callable[[Outcome | None], None]
"""Called with a submitted settlement's outcome (None: it could not be recorded)."""


class Acker:
    """Records settlements, many per transaction (see the module docstring).

    Run ``await acker.run()`` in a task of its own; once it has stopped,
    ``submit`` refuses and ``settle`` commits from the caller's task.
    """

    def __init__(
        self,
        store: Store,
        layout: Layout,
        clock: Callable[[], int],
        *,
        cleanup_timeout: float,
        history: bool = True,
        telemetry: ConsumerTelemetry | None = None,
    ) -> None:
        self._store = store
        self._history = history  # count attempts in the queues' history
        self._telemetry = telemetry
        self._layout = layout
        self._clock = clock
        self._cleanup_timeout = cleanup_timeout
        self._queue: deque[tuple[Settlement, Done]] = deque()
        self._batch: list[tuple[Settlement, Done]] = []  # being committed
        self._arrived: anyio.Event | None = None  # set by submit while run() waits
        self._drained: anyio.Event | None = None  # set by run() once nothing is left
        self._room: anyio.Event | None = None  # set by run() once the backlog is short
        self._stopped = False

    def submit(self, settlement: Settlement, done: Done) -> bool:
        """Queue a plain settlement (no writes) for the next batch; *done* gets
        its outcome. False when the acker has stopped: ``settle`` it instead."""
        if self._stopped:
            return False
        self._queue.append((settlement, done))
        arrived = self._arrived
        if arrived is not None:
            self._arrived = None
            arrived.set()
        return True

    async def settle(self, settlement: Settlement) -> Outcome | None:
        """Record *settlement* in a transaction of its own; the outcome, or
        None when it could not be recorded while its caller was being
        cancelled (the lease's expiry is the backstop).

        A settlement with the handler's writes raises what committing them
        raised (nothing was recorded: the caller records a failed attempt).
        """
        if anyio.current_effective_deadline() == -math.inf or self._stopped:
            return await self._settle_now(settlement)
        (outcome,) = await self._commit([settlement])
        return outcome

    async def wait_room(self) -> None:
        """Return once the acker holds at most ``ACK_BACKLOG`` settlements."""
        while len(self._queue) + len(self._batch) > ACK_BACKLOG and not self._stopped:
            self._room = self._room or anyio.Event()
            await self._room.wait()

    async def wait_drained(self) -> None:
        """Return once every submitted settlement has been committed."""
        while self._queue or self._batch:
            self._drained = self._drained or anyio.Event()
            await self._drained.wait()

    async def run(self) -> None:
        """Commit batches until cancelled; then commit what is left (shielded,
        bounded), and from then on ``submit`` refuses."""
        queue = self._queue
        try:
            while True:
                if not queue:
                    drained, self._drained = self._drained, None
                    if drained is not None:
                        drained.set()
                    self._arrived = arrived = anyio.Event()
                    await arrived.wait()
                    continue
                batch = self._batch = [queue.popleft() for _ in range(min(len(queue), ACK_BATCH))]
                outcomes = await self._commit_traced([settlement for settlement, _ in batch])
                self._batch = []
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    done(outcome)
                if self._telemetry is not None:
                    self._telemetry.flush()
                if self._room is not None and len(queue) <= ACK_BACKLOG:
                    self._room.set()
                    self._room = None
                await anyio.lowlevel.checkpoint()  # a backlog of batches lets others run between
        finally:
            self._stopped = True
            await self._settle_left()

    async def _settle_left(self) -> None:
        """The acker is stopping: commit what it holds, shielded and bounded."""
        left = self._batch + list(self._queue)
        self._batch = []
        self._queue.clear()
        outcomes: list[Outcome | None] = []
        with anyio.move_on_after(self._cleanup_timeout, shield=True):
            for start in range(0, len(left), ACK_BATCH):
                chunk = [settlement for settlement, _ in left[start : start + ACK_BATCH]]
                outcomes += await self._commit(chunk)
        outcomes += [None] * (len(left) - len(outcomes))
        for (settlement, done), outcome in zip(left, outcomes, strict=True):
            if outcome is None:
                log.warning("quickq: could not settle job %s at shutdown", settlement.item_id)
            done(outcome)
        if self._telemetry is not None:
            self._telemetry.flush()
        for waiting in (self._drained, self._room):
            if waiting is not None:
                waiting.set()
        self._drained = self._room = None

    async def _settle_now(self, settlement: Settlement) -> Outcome | None:
        """Settle under a shield, bounded: for callers being cancelled."""
        with anyio.move_on_after(self._cleanup_timeout, shield=True):
            try:
                (outcome,) = await self._store.transact(
                    lambda tr: self._settle_all(tr, [settlement])
                )
                return outcome
            except QuickqError as exc:
                log.warning("quickq: could not settle job %s (%s)", settlement.item_id, exc)
        return None

    async def _commit_traced(self, settlements: list[Settlement]) -> list[Outcome]:
        """:meth:`_commit`, in a ``settle`` span when telemetry is on."""
        telemetry = self._telemetry
        if telemetry is None:
            return await self._commit(settlements)
        span, started = telemetry.start_settle(len(settlements))
        error: BaseException | None = None
        try:
            return await self._commit(settlements)
        except BaseException as exc:
            error = exc
            raise
        finally:
            telemetry.end_settle(span, started, error)

    async def _commit(self, settlements: list[Settlement]) -> list[Outcome]:
        """Settle *settlements* in one transaction now, backing off while the store fails.

        A batch the store finds too large is split in halves, never retried
        whole. One settlement still too large (other than a completion with
        its own writes, whose failure the caller records) becomes a dead
        letter saying so: an attempt always ends recorded.
        """

        async def settle_all(tr: Transaction) -> list[Outcome]:
            return await self._settle_all(tr, settlements)

        backoff = STORE_BACKOFF_MIN
        while True:
            try:
                return await self._store.transact(settle_all)
            except TooLargeError as exc:
                if len(settlements) > 1:
                    half = len(settlements) // 2
                    return await self._commit(settlements[:half]) + await self._commit(
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
                return await self._commit([unrecordable])
            except StoreError as exc:
                log.warning("quickq: settling %d jobs failed (%s); retrying", len(settlements), exc)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, STORE_BACKOFF_MAX)

    async def _settle_all(self, tr: Transaction, batch: list[Settlement]) -> list[Outcome]:
        # One transaction, each queue's counters adjusted once for the batch.
        return await _core.settle_many(tr, self._layout, batch, self._clock, history=self._history)
