"""The heartbeat: the consumer's record in the store, which ``JobQueue.workers``
and ``quickq workers`` list.

The first beat is written before the consumer counts as started; then one
every ``heartbeat_interval``, jittered by a tenth from the second wait on
(the consumer's generator may be seeded only once it started) so that a
fleet started together spreads its writes out, and one at once when
``stop()`` marks the consumer stopping or its metrics address is set. When
the consumer ends (drained or cancelled) the record is cleared, shielded and
bounded by ``cleanup_timeout``. Once started, it drops the records stale for
over a day.

Every write is a small transaction of its own, blind (no read, so no
conflict range), bounded by the interval: a store error is logged and the
next beat tries again; it never stops the consumer. A beat in flight is let
finish before the clear, so the clear is the record's last write.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import anyio
import anyio.abc
import attrs

from .._core import (
    Layout,
    WorkerRecord,
    clear_heartbeat,
    fitting_text,
    fitting_topics,
    prune_heartbeats,
    write_heartbeat,
)
from .._exceptions import StoreError
from .._time import Clock, to_ms
from ..stores._protocol import Store, Transaction

log = logging.getLogger("quickq")


class _Statistics(Protocol):
    @property
    def running(self) -> int: ...
    @property
    def leased(self) -> int: ...
    @property
    def completed(self) -> int: ...
    @property
    def retried(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def lost(self) -> int: ...


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quickq")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class Heartbeat:
    """Writes, refreshes and clears one consumer's heartbeat record."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        consumer_id: str,
        *,
        interval: float,
        cleanup_timeout: float,
        clock: Clock,
        concurrency: int,
        topics: Iterable[str],
        statistics: Callable[[], _Statistics],
        rng: random.Random,
    ) -> None:
        self._store = store
        self._layout = layout
        self._interval = interval
        self._cleanup_timeout = cleanup_timeout
        self._clock = clock
        self._statistics = statistics
        self._rng = rng
        topics = list(topics)
        self._base = WorkerRecord(
            consumer_id=consumer_id,
            host=fitting_text(socket.gethostname()),
            pid=os.getpid(),
            started=to_ms(clock()),
            seen=0,
            interval=max(1, to_ms(interval)),
            concurrency=concurrency,
            version=fitting_text(_version()),
            topics=fitting_topics(topics),
            topic_count=len(topics),
        )
        self._stopping = False
        self._metrics: str | None = None
        self._closing = False
        self._wake = anyio.Event()
        self._done = anyio.Event()

    @property
    def metrics(self) -> str | None:
        return self._metrics

    @metrics.setter
    def metrics(self, address: str | None) -> None:
        self._metrics = None if address is None else fitting_text(str(address))
        self._wake.set()

    def stopping(self) -> None:
        """Mark the record stopping, with a beat at once (the first call only)."""
        if not self._stopping:
            self._stopping = True
            self._wake.set()

    def record(self) -> WorkerRecord:
        """The record a beat writes now."""
        s = self._statistics()
        return attrs.evolve(
            self._base,
            seen=to_ms(self._clock()),
            running=s.running,
            stopping=self._stopping,
            leased=s.leased,
            completed=s.completed,
            retried=s.retried,
            dead_lettered=s.dead_lettered,
            lost=s.lost,
            metrics=self._metrics,
        )

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Beat, report started, prune, then beat until :meth:`close`; clear the
        record on the way out, however it ends."""
        try:
            await self._beat()
            task_status.started()
            await self._write("prune", self._prune)
            delay = self._interval
            while not self._closing:
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                delay = self._interval * self._rng.uniform(0.9, 1.1)
                self._wake = anyio.Event()
                if not self._closing:
                    await self._beat()
        finally:
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + self._cleanup_timeout
                await self._write("clear", self._clear)
            self._done.set()

    async def close(self) -> None:
        """End :meth:`run` (a beat in flight first finishes) and wait for the clear."""
        self._closing = True
        self._wake.set()
        await self._done.wait()

    async def _beat(self) -> None:
        record = self.record()

        async def beat(tr: Transaction) -> None:
            write_heartbeat(tr, self._layout, record)

        await self._write("beat", beat)

    async def _prune(self, tr: Transaction) -> None:
        dropped = await prune_heartbeats(tr, self._layout, to_ms(self._clock()))
        if dropped:
            log.info("dropped %d heartbeat records stale for over a day", dropped)

    async def _clear(self, tr: Transaction) -> None:
        clear_heartbeat(tr, self._layout, self._base.consumer_id)

    async def _write(self, what: str, fn: Callable[[Transaction], Awaitable[None]]) -> None:
        """Run *fn* in a transaction of its own, bounded by the interval; a store
        error is logged, never raised."""
        with anyio.move_on_after(self._interval) as scope:
            try:
                await self._store.transact(fn)
            except StoreError as exc:
                log.warning("heartbeat %s failed (the next beat tries again): %r", what, exc)
        if scope.cancelled_caught:
            log.warning("heartbeat %s took over %gs, given up", what, self._interval)
