"""The acker: where every finished attempt is recorded.

Every attempt ends in one call, ``await acker.settle(settlement)``, which
returns the outcome the queue recorded. Settlements that arrive together are
committed together, up to ``ACK_BATCH`` in one transaction, by the acker's own
task: with a backlog, one commit records many jobs. Which way a settlement goes
is the acker's business, not its callers':

- a plain settlement joins the next batch;
- one carrying the handler's own writes (``Complete(writes=...)``) commits in a
  transaction of its own, since writes that fail must not take a batch down;
- when its caller is being cancelled, or the acker has stopped, it commits at
  once from the caller's task, shielded and bounded by the cleanup timeout, so
  a job cancelled at shutdown still gives its lease back.

The acker owns its store, layout and clock and knows nothing of the consumer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Final

import anyio
import attrs

from .. import _core
from .._core import Action, Layout, Outcome, Settlement
from .._exceptions import QuickqError, StoreError, TooLargeError
from .._limits import STORE_BACKOFF_MAX, STORE_BACKOFF_MIN
from ..stores._protocol import Store, Transaction

log = logging.getLogger("quickq")

ACK_BATCH: Final = 256
"""The most settlements one batch commits."""


class _Pending:
    """A settlement waiting in the batch, and the outcome it is given."""

    __slots__ = ("_done", "_outcome", "settlement")

    def __init__(self, settlement: Settlement) -> None:
        self.settlement = settlement
        self._outcome = Outcome.LOST
        self._done = anyio.Event()

    def resolve(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._done.set()

    async def outcome(self) -> Outcome:
        await self._done.wait()
        return self._outcome


class Acker:
    """Records settlements, many per transaction (see the module docstring).

    Run ``await acker.run()`` in a task of its own; once it has stopped,
    ``settle`` commits from the caller's task.
    """

    def __init__(
        self, store: Store, layout: Layout, clock: Callable[[], int], *, cleanup_timeout: float
    ) -> None:
        self._store = store
        self._layout = layout
        self._clock = clock
        self._cleanup_timeout = cleanup_timeout
        self._send, self._receive = anyio.create_memory_object_stream[_Pending](math.inf)

    async def settle(self, settlement: Settlement) -> Outcome | None:
        """Record *settlement*; the outcome, or None when it could not be
        recorded while its caller was being cancelled (the lease's expiry is
        the backstop).

        A settlement with the handler's writes raises what committing them
        raised (nothing was recorded: the caller records a failed attempt).
        """
        if anyio.current_effective_deadline() == -math.inf:
            return await self._settle_now(settlement)
        if settlement.writes is not None:
            (outcome,) = await self._commit([settlement])
            return outcome
        pending = _Pending(settlement)
        try:
            self._send.send_nowait(pending)
        except anyio.ClosedResourceError:
            return await self._settle_now(settlement)
        return await pending.outcome()

    async def run(self) -> None:
        """Commit batches until cancelled; then ``settle`` commits directly."""
        with self._send, self._receive:
            async for first in self._receive:
                batch = [first]
                while len(batch) < ACK_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                outcomes = await self._commit([p.settlement for p in batch])
                for pending, outcome in zip(batch, outcomes, strict=True):
                    pending.resolve(outcome)

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
        return [await _core.settle(tr, self._layout, s, self._clock) for s in batch]
