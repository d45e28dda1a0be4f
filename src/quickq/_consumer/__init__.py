"""The consumer: one nursery tree per ``open_consumer``.

::

    serve_consumer
    +- heartbeat (_heartbeat): the consumer's record in the store, first
    |    written before the consumer counts as started, refreshed every
    |    heartbeat_interval, cleared last
    +- acker (_acker): commits the settlements of finished attempts, many per
    |    transaction
    +- renewal schedule (_runner): lease/3 into a job, starts its extender in
    |    its runner's nursery, in a cancel scope of the job's
    +- jobs (_runner): runner tasks (at most ``concurrency``), each running
    |  one leased job at a time, each job in a scope of its own:
    |    +- the handler (under the job's timeout)
    |    +- the lease extender, once started (jobs that end sooner never need
    |       one): renews every lease/3; when a renewal proves the lease lost,
    |       it cancels the handler; the handler's end cancels it
    +- intake (_intake, the scanner): while a slot is free, snapshot-peek due
         queue pointers, pick a random subset, and per queue take the queue
         lease (own transaction), then lease a batch of ready items (own
         transaction, which also moves the pointer on and so releases the
         queue lease)

Shutdown is graceful: stop the intake, let running jobs finish within the grace
period, then cancel them; a cancelled job gives its lease back (shielded,
bounded). Correctness never depends on that cleanup: lease expiry is the
backstop. Store errors back the consumer off; they never crash it.

:class:`Consumer` owns the parts and wires them together: the :class:`Slots`
the handlers hold, the :class:`IdleTracker` behind ``wait_idle``, the
:class:`Reporter` behind ``statistics()`` and ``on_event``. ``_attempts`` turns
what a handler did into a settlement; ``_config`` is the configuration.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Unpack

import anyio
import anyio.abc
import attrs

from .. import _telemetry
from .._core import Layout
from .._jobs import JobRegistry
from .._time import to_ms
from ..stores._protocol import Store
from ._acker import Acker
from ._config import ConsumerConfig as ConsumerConfig
from ._config import ConsumerOptions as ConsumerOptions
from ._config import configure
from ._heartbeat import Heartbeat
from ._idle import IdleTracker, Wakeup
from ._intake import Intake
from ._otel import ConsumerTelemetry
from ._report import Reporter
from ._runner import JobRunner
from ._slots import Slots


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


class Consumer:
    """A running consumer. Get one from ``open_consumer`` or ``serve_consumer``."""

    def __init__(self, store: Store, jobs: JobRegistry, config: ConsumerConfig) -> None:
        self.config: ConsumerConfig = config
        """The consumer's configuration."""
        self.consumer_id: str = secrets.token_hex(8)
        """This consumer's name in the leases it holds."""
        clock = config.clock
        self._rng = random.Random()  # one generator: a seeded run replays exactly
        self._stop = anyio.Event()
        layout = Layout(config.root)

        def now() -> int:
            return to_ms(clock())

        wakeup = Wakeup()
        self._idle = IdleTracker(wakeup)
        self._reporter = Reporter(clock, config.on_event, consumer_id=self.consumer_id)
        slots = Slots(config.concurrency)
        instruments = _telemetry.resolve(config.telemetry)
        self._telemetry = None
        if instruments is not None:
            self._telemetry = ConsumerTelemetry(
                instruments,
                consumer_id=self.consumer_id,
                clock=clock,
                running=lambda: self._idle.running,
                capacity=lambda: slots.concurrency,
                started=self._reporter.started_by_topic,
            )
        self._acker = Acker(
            store,
            layout,
            now,
            cleanup_timeout=config.cleanup_timeout,
            history=config.history_keep > 0,
            telemetry=self._telemetry,
        )
        self._runner = JobRunner(
            store,
            layout,
            jobs,
            concurrency=config.concurrency,
            lease_duration=config.lease_duration,
            cleanup_timeout=config.cleanup_timeout,
            clock=clock,
            codec=config.codec,
            rng=self._rng,
            acker=self._acker,
            slots=slots,
            idle=self._idle,
            wakeup=wakeup,
            reporter=self._reporter,
            telemetry=self._telemetry,
        )
        self._heartbeat = Heartbeat(
            store,
            layout,
            self.consumer_id,
            interval=config.heartbeat_interval,
            cleanup_timeout=config.cleanup_timeout,
            clock=clock,
            concurrency=config.concurrency,
            topics=[definition.topic for definition in jobs],
            statistics=self.statistics,
            rng=self._rng,
        )
        self._intake = Intake(
            store,
            layout,
            config,
            clock=now,
            rng=self._rng,
            holder=self.consumer_id,
            slots=slots,
            idle=self._idle,
            wakeup=wakeup,
            start_job=self._runner.start,
            wait_room=self._acker.wait_room,
        )

    @property
    def settings(self) -> ConsumerConfig:
        """The consumer's configuration: an alias of :attr:`config`, its
        earlier name."""
        return self.config

    @property
    def metrics_address(self) -> str | None:
        """Where this consumer's metrics are served, as its heartbeat record
        tells ``JobQueue.workers`` (None: not said). Setting it writes a beat
        at once."""
        return self._heartbeat.metrics

    @metrics_address.setter
    def metrics_address(self, address: str | None) -> None:
        self._heartbeat.metrics = address

    def statistics(self) -> ConsumerStatistics:
        """What this consumer has done so far."""
        counts = attrs.asdict(self._reporter.counts)
        return ConsumerStatistics(running=self._idle.running, **counts)

    async def wait_idle(self) -> None:
        """Return once nothing is running and no job is due (scheduled ones may wait).

        Handy in scripts and tests: enqueue, then ``await consumer.wait_idle()``.
        """
        await self._idle.wait_idle()

    def stop(self) -> None:
        """Begin a graceful shutdown: stop leasing, let running jobs finish
        within the grace period, then cancel them and give their leases back."""
        self._stop.set()
        self._heartbeat.stopping()

    async def run(self, *, task_status: anyio.abc.TaskStatus[Consumer]) -> None:
        """Run the tree until stopped (see the module docstring)."""
        try:
            await self._run(task_status)
        finally:
            if self._telemetry is not None:
                self._telemetry.close()

    async def _run(self, task_status: anyio.abc.TaskStatus[Consumer]) -> None:
        async with anyio.create_task_group() as service:
            await service.start(self._heartbeat.run)
            service.start_soon(self._acker.run)
            service.start_soon(self._runner.renewals.run)
            async with anyio.create_task_group() as jobs:
                self._runner.use(jobs)
                try:
                    async with anyio.create_task_group() as intake:
                        intake.start_soon(self._intake.run)
                        task_status.started(self)
                        await self._stop.wait()
                        intake.cancel_scope.cancel()
                finally:
                    await self._runner.close()  # the runners end once the queued jobs are done
                jobs.cancel_scope.deadline = anyio.current_time() + self.config.grace_period
            await self._acker.wait_drained()
            await self._heartbeat.close()
            service.cancel_scope.cancel()


async def serve_consumer(
    store: Store,
    jobs: JobRegistry,
    *,
    config: ConsumerConfig | None = None,
    task_status: anyio.abc.TaskStatus[Consumer] = anyio.TASK_STATUS_IGNORED,
    **options: Unpack[ConsumerOptions],
) -> None:
    """Run a consumer until it is stopped or cancelled (for callers that own a nursery).

    ``consumer = await nursery.start(serve_consumer, store, jobs)`` returns once
    the consumer runs; ``consumer.stop()`` drains it gracefully; cancelling the
    nursery cancels running jobs and gives their leases back. The options are
    those of :func:`open_consumer`.
    """
    await _make_consumer(store, jobs, options, config=config).run(task_status=task_status)


def _make_consumer(
    store: Store,
    jobs: JobRegistry,
    options: ConsumerOptions,
    *,
    config: ConsumerConfig | None = None,
) -> Consumer:
    """Check every argument (raising InvalidArgumentError at the call site,
    before anything starts) and build a consumer."""
    return Consumer(store, jobs, configure(store, jobs, config, options))


@asynccontextmanager
async def open_consumer(
    store: Store,
    jobs: JobRegistry,
    *,
    config: ConsumerConfig | None = None,
    **options: Unpack[ConsumerOptions],
) -> AsyncIterator[Consumer]:
    """Consume jobs from *store* with the handlers in *jobs* while the block runs.

    The keyword options are exactly the fields of :class:`ConsumerConfig`
    (documented in :class:`ConsumerOptions`): ``concurrency``, ``batch_size``,
    ``lease_duration``, ``queue_lease_duration``, ``scan_interval``,
    ``idle_poll``, ``grace_period``, ``cleanup_timeout``, ``selection_fraction``,
    ``selection_max``, ``peek_limit``, ``idle_gc``, ``history_keep``,
    ``heartbeat_interval``, ``root``, ``clock``, ``codec``, ``on_event``,
    ``telemetry``. Pass a ready ``config=`` instead, or both: options
    given beside a config override its fields. An unknown name raises
    :class:`InvalidArgumentError` listing the valid ones.

    Works in trio and asyncio (anyio) programs. Leaving the block drains the
    consumer gracefully; cancelling it cancels running jobs.
    """
    consumer = _make_consumer(store, jobs, options, config=config)
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: consumer.run(task_status=task_status))
        try:
            yield consumer
        finally:
            consumer.stop()
