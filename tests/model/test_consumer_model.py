"""A stateful model of the whole consumer tree, in virtual time.

Hypothesis enqueues jobs whose handlers succeed, fail for their first *k*
attempts, snooze for their first *k* attempts, discard, run for many lease
durations, or have no handler at all; it starts consumers (each with its own
concurrency and batch size), stops them gracefully, cancels them hard, or
kills them (cut off from the store, then cancelled: no cleanup reaches the
store, so their leases only expire), and advances virtual time.

The consumers run under trio's MockClock inside an anyio blocking portal.
Between steps the clock stands still (autojump off), so the store can be
read back without a transaction while nothing moves; a time advance turns
autojump on, so the consumers' sleeps fire in order, as in real time.

Every handler call is logged (job, attempt, start, end, what it did). Checked
after every step:

- no handler runs twice at once for one job, and every leased item's lease
  belongs to a running consumer or was abandoned by a killed one;
- counters equal the store's own indexes;
- attempts are counted exactly: each call's attempt is the previous one's
  plus one, or the same when the previous call was cancelled by a shutdown
  (its lease given back);
- no call starts before its job's vesting time (enqueue delay, snooze delay,
  backoff);
- no job is lost: every job is in the store (live or dead) or was completed
  by its last call;
- each queue's history counts every job completed and every dead letter,
  exactly once, in the transaction that ended it.

At the end, a fresh consumer drains everything and each job must have ended
exactly as its handler's behaviour dictates: completed, or dead-lettered as
failed / snoozed_out exactly after max_retries + 1 attempts, discarded, or
no_handler; the consumers' statistics agree with the store; and each queue's
history counts exactly the attempts its jobs' attempt counts say ran.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import math
import random
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
import attrs
import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import quickq
from quickq._core import Layout
from quickq.stores import MemoryStore

from .._stores import EPOCH, Partition
from .support import MODEL_TIME_LIMIT, StoreView, model_settings

T = TypeVar("T")

LEASE = 10.0
GRACE = 3.0
BACKOFF = quickq.Backoff(base=1.0, factor=2.0, cap=8.0, jitter=0.0)
MAX_JOBS = 12
QUEUES = ("qa", "qb", "qc")
MAX_CONSUMERS = 3

layout = Layout()
_TRIO_SCHEDULER_RANDOM: random.Random = trio._core._run._r
"""The random trio's scheduler shuffles with under Hypothesis (private: tests only)."""


def virtual_clock() -> float:
    return EPOCH + trio.current_time()


@attrs.define
class Call:
    """One handler call, as the handler saw it."""

    job_id: str
    attempt: int
    start: float
    end: float | None = None
    did: str = "running"
    """ok, failed, snoozed, discarded, cancelled, or running."""


@attrs.frozen
class Spec:
    """What a job's handler does."""

    kind: str
    """ok, fail (first k attempts), snooze (first k attempts), discard, long, orphan."""
    k: int
    max_retries: int
    delay: float
    queue_id: str
    seconds: float = 0.0
    """The snooze delay, or how long a long job runs."""


@attrs.define
class Runner:
    """A consumer started by the machine."""

    name: str
    consumer: quickq.Consumer
    scope: anyio.CancelScope
    done: anyio.Event
    partition: Partition


specs = st.builds(
    Spec,
    kind=st.sampled_from(["ok", "fail", "snooze", "discard", "long", "orphan"]),
    k=st.integers(0, 4),
    max_retries=st.integers(0, 3),
    delay=st.sampled_from([0.0, 0.0, 0.5, 5.0]),
    queue_id=st.sampled_from(QUEUES),
    seconds=st.sampled_from([0.5, 2.0, 3 * LEASE]),
)


async def _host(*, task_status: anyio.abc.TaskStatus[anyio.abc.TaskGroup]) -> None:
    """A task group in the loop for the consumers (started from inside steps)."""
    async with anyio.create_task_group() as tg:
        task_status.started(tg)
        await anyio.sleep_forever()


def step(fn: Callable[..., None]) -> Callable[..., None]:
    """Mark the machine unhealthy while *fn* runs (so teardown skips the drain)."""

    @functools.wraps(fn)
    def wrapper(self: ConsumerMachine, *args: Any, **kwargs: Any) -> None:
        self.healthy = False
        fn(self, *args, **kwargs)
        self.healthy = True

    return wrapper


class ConsumerMachine(RuleBasedStateMachine):
    """The consumer tree against the behaviour of its handlers."""

    dwell: ClassVar[float] = 0.0

    def __init__(self) -> None:
        super().__init__()
        self._exit = contextlib.ExitStack()
        self.clock = trio.testing.MockClock()  # autojump only inside advance()
        self.portal = self._exit.enter_context(
            anyio.from_thread.start_blocking_portal("trio", backend_options={"clock": self.clock})
        )
        _, self.host = self.portal.start_task(_host)
        self.store = MemoryStore()
        self.jobs = quickq.JobRegistry()
        self.jobs.add(quickq.JobDefinition("work", self.perform, backoff=BACKOFF))
        self.queue = quickq.JobQueue(self.store, clock=virtual_clock)
        self.specs: dict[str, Spec] = {}
        self.enqueued_at: dict[str, float] = {}
        self.calls: dict[str, list[Call]] = collections.defaultdict(list)
        self.running: collections.Counter[str] = collections.Counter()
        self.violations: list[str] = []
        self.runners: dict[str, Runner] = {}
        self.stopped: list[Runner] = []
        self.killed: set[str] = set()
        self.disturbed: set[str] = set()
        """Jobs a killed consumer held: their attempt may end without a trace."""
        self.healthy = True
        """False while a step runs: teardown drains only after a clean run."""
        self.serial = 0
        self.steps = 0

    # -- the handler ----------------------------------------------------------------

    async def perform(self, payload: Any, meta: quickq.JobMeta) -> Any:
        spec = self.specs[meta.item_id]
        call = Call(meta.item_id, meta.attempt, trio.current_time())
        self.calls[meta.item_id].append(call)
        self.running[meta.item_id] += 1
        if self.running[meta.item_id] > 1:
            self.violations.append(f"job {meta.item_id} ran twice at once")
        try:
            if spec.kind == "long":
                await trio.sleep(spec.seconds)
            elif spec.kind == "fail" and meta.attempt <= spec.k:
                call.did = "failed"
                raise RuntimeError(f"attempt {meta.attempt} fails")
            elif spec.kind == "snooze" and meta.attempt <= spec.k:
                call.did = "snoozed"
                return quickq.Snooze(spec.seconds)
            elif spec.kind == "discard":
                call.did = "discarded"
                return quickq.Discard("not wanted")
            call.did = "ok"
            return {"attempt": meta.attempt}
        except trio.Cancelled:
            call.did = "cancelled"
            raise
        finally:
            call.end = trio.current_time()
            self.running[meta.item_id] -= 1

    # -- plumbing -------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run *fn* in the event loop, and return once the loop is quiet again.

        Every task is then blocked (on the clock, which stands still, or on
        an event): nothing runs between steps, so each step sees a settled
        state and a run replays exactly.
        """

        self.steps += 1
        seed = self.steps

        async def quietly() -> Any:
            # Thread hand-offs vary how many tasks trio's scheduler shuffles
            # between calls; reseeding its (Hypothesis-registered) random at
            # each call, while every other task is blocked, makes the rest of
            # the call replay exactly.
            _TRIO_SCHEDULER_RANDOM.seed(seed)
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            await trio.testing.wait_all_tasks_blocked()
            return result

        return self.portal.call(quietly)

    async def _advance(self, seconds: float) -> None:
        self.clock.autojump_threshold = 0
        try:
            await trio.sleep(seconds)
        finally:
            self.clock.autojump_threshold = math.inf
        await trio.testing.wait_all_tasks_blocked()

    async def _until(self, event: anyio.Event, limit: float) -> None:
        self.clock.autojump_threshold = 0
        try:
            with trio.fail_after(limit):
                await event.wait()
        finally:
            self.clock.autojump_threshold = math.inf
        await trio.testing.wait_all_tasks_blocked()

    def teardown(self) -> None:
        try:
            if self.healthy and not self.violations:
                self.drain_and_check()
        finally:
            self.portal.call(self.host.cancel_scope.cancel)
            self._exit.close()

    # -- rules ----------------------------------------------------------------------

    @precondition(lambda self: len(self.specs) < MAX_JOBS)
    @rule(spec=specs)
    @step
    def enqueue(self, spec: Spec) -> None:
        """Enqueue a job while the consumers stand still."""
        self._enqueue(spec, after=0.0)

    @precondition(lambda self: len(self.specs) < MAX_JOBS)
    @rule(spec=specs, after=st.sampled_from([0.001, 0.2, 1.0, LEASE / 3]))
    @step
    def enqueue_while_running(self, spec: Spec, after: float) -> None:
        """Let time run for *after* seconds, then enqueue amid the consumers' work."""
        self._enqueue(spec, after=after)

    def _enqueue(self, spec: Spec, *, after: float) -> None:
        job_id = f"j{len(self.specs):03d}"  # generated ids are random: keep runs repeatable
        self.specs[job_id] = spec  # before the job exists: a consumer may run it at once
        enqueue = functools.partial(
            self.queue.enqueue,
            spec.queue_id,
            "nobody" if spec.kind == "orphan" else "work",
            None,
            delay=spec.delay,
            max_retries=spec.max_retries,
            job_id=job_id,
        )

        async def go() -> float:
            if after:
                self.clock.autojump_threshold = 0
            try:
                await trio.sleep(after)
                now = trio.current_time()
                self.enqueued_at[job_id] = now  # before a consumer can see the job
                await enqueue()
            finally:
                self.clock.autojump_threshold = math.inf
            return now

        self.call(go)

    @precondition(lambda self: len(self.runners) < MAX_CONSUMERS)
    @rule(concurrency=st.integers(1, 4), batch_size=st.integers(1, 3))
    @step
    def start_consumer(self, concurrency: int, batch_size: int) -> None:
        self.serial += 1
        name = f"c{self.serial}"
        partition = Partition(self.store)

        async def run(*, task_status: anyio.abc.TaskStatus[Runner]) -> None:
            done = anyio.Event()
            try:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:
                        consumer = await tg.start(
                            functools.partial(
                                quickq.serve_consumer,
                                partition,
                                self.jobs,
                                concurrency=concurrency,
                                batch_size=batch_size,
                                lease_duration=LEASE,
                                queue_lease_duration=2.0,
                                scan_interval=0.2,
                                grace_period=GRACE,
                                clock=virtual_clock,
                            )
                        )
                        # The consumer's jitter and sampling, seeded before its
                        # scanner first draws, so Hypothesis can replay a run
                        # (trio's scheduler is seeded by Hypothesis already).
                        consumer._rng.seed(self.serial)
                        task_status.started(Runner(name, consumer, scope, done, partition))
            finally:
                done.set()

        self.runners[name] = self.call(self.host.start, run)

    def pick(self, data: st.DataObject) -> Runner:
        name = data.draw(st.sampled_from(sorted(self.runners)))
        return self.runners.pop(name)

    @precondition(lambda self: bool(self.runners))
    @rule(data=st.data())
    @step
    def stop_gracefully(self, data: st.DataObject) -> None:
        """Stop leasing; running jobs get the grace period, then are cancelled and released."""
        runner = self.pick(data)
        self.call(runner.consumer.stop)
        self.call(self._until, runner.done, GRACE + 60)
        self.stopped.append(runner)

    @precondition(lambda self: bool(self.runners))
    @rule(data=st.data())
    @step
    def cancel_hard(self, data: st.DataObject) -> None:
        """Cancel the consumer's scope: jobs are cancelled and their leases given back."""
        runner = self.pick(data)
        self.call(runner.scope.cancel)
        self.call(self._until, runner.done, 60)
        self.stopped.append(runner)

    @precondition(lambda self: bool(self.runners))
    @rule(data=st.data())
    @step
    def kill(self, data: st.DataObject) -> None:
        """Cut the consumer off from the store, then cancel it: no cleanup lands."""
        runner = self.pick(data)
        runner.partition.cut()
        self.call(runner.scope.cancel)
        self.call(self._until, runner.done, 60)
        self.killed.add(runner.consumer.consumer_id)
        self.stopped.append(runner)
        view = StoreView.read(self.store, layout)
        for (_, item_id), item in view.items.items():
            if item.lease is not None and item.lease.holder == runner.consumer.consumer_id:
                self.disturbed.add(item_id)

    @rule(seconds=st.sampled_from([0.1, 1.0, 3.0, LEASE, 4 * LEASE]))
    @step
    def advance(self, seconds: float) -> None:
        self.call(self._advance, seconds)

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        self.healthy = False
        assert not self.violations, self.violations
        view = StoreView.read(self.store, layout)
        live_consumers = {r.consumer.consumer_id for r in self.runners.values()}
        # Every running consumer has its heartbeat record; one that stopped
        # cleared it, unless it was cut off from the store first.
        beating = set(view.heartbeats)
        assert live_consumers <= beating <= live_consumers | self.killed, beating
        for qid in QUEUES:
            for name, where in (("pending", "r"), ("scheduled", "s"), ("running", "l")):
                items = [i for (q, _), i in view.items.items() if q == qid and i.state == where]
                assert view.count(qid, name) == len(items) == len(view.index.get((qid, where), []))
            assert view.count(qid, "dead") == sum(q == qid for q, _ in view.dead)
            if any(q == qid for q, _ in view.items):
                findable = qid in view.pointer_records or qid in view.marks
                assert findable, f"queue {qid} has work and neither a pointer nor a mark"
        now = self.clock.current_time()
        for (_, item_id), item in view.items.items():
            if item.state == "l":
                assert item.lease is not None
                holder = item.lease.holder
                assert (
                    holder in live_consumers
                    or holder in self.killed
                    or (item.lease.expiry <= (EPOCH + now) * 1000)
                ), f"job {item_id} leased by a consumer that stopped without giving it back"
            elif self.running[item_id]:
                # Only a killed consumer's handler is gone without a trace; a
                # running call holds its job's lease.
                raise AssertionError(f"job {item_id} runs without holding its lease")
        for job_id, calls in self.calls.items():
            self.check_calls(job_id, calls)
        for job_id in self.specs:
            in_store = any(k[1] == job_id for k in view.items) or any(
                k[1] == job_id for k in view.dead
            )
            calls = self.calls.get(job_id, [])
            completed = bool(calls) and calls[-1].did == "ok" and calls[-1].end is not None
            assert in_store or completed, f"job {job_id} was lost"
        view.check_history()
        for qid in QUEUES:
            gone = [
                j
                for j, spec in self.specs.items()
                if spec.queue_id == qid and (qid, j) not in view.items and (qid, j) not in view.dead
            ]
            assert view.history_sum(qid, "c") == len(gone), (qid, gone)
            assert view.history_sum(qid, "d") == sum(q == qid for q, _ in view.dead), qid
        self.healthy = True

    def check_calls(self, job_id: str, calls: list[Call]) -> None:
        spec = self.specs[job_id]
        not_before = self.enqueued_at[job_id] + spec.delay
        previous: Call | None = None
        for call in calls:
            # Times are whole milliseconds in the store: allow for rounding.
            assert call.start >= not_before - 0.002, (job_id, call, not_before)
            if previous is None:
                assert call.attempt == 1, (job_id, calls)
            elif previous.did == "cancelled" or job_id in self.disturbed:
                # Given back by a shutdown (attempt not counted), or abandoned by
                # a killed consumer (the expired attempt counted).
                assert call.attempt in (previous.attempt, previous.attempt + 1), (job_id, calls)
            else:
                assert call.attempt == previous.attempt + 1, (job_id, calls)
            if call.end is None:
                break
            if job_id in self.disturbed:
                # Its outcome may never have reached the store (its consumer was
                # cut off): then the job runs again when the lease expires.
                not_before = call.end
            elif call.did == "snoozed":
                not_before = call.end + spec.seconds
            elif call.did == "failed":
                not_before = call.end + BACKOFF.delay(call.attempt)
            else:
                not_before = call.end
            previous = call

    # -- the end --------------------------------------------------------------------

    def drain_and_check(self) -> None:
        """Stop everything, drain with one fresh consumer, check every job's fate."""
        for name in list(self.runners):
            runner = self.runners.pop(name)
            self.call(runner.consumer.stop)
            self.call(self._until, runner.done, GRACE + 60)
            self.stopped.append(runner)
        self.start_consumer(concurrency=MAX_JOBS, batch_size=MAX_JOBS)
        # Until nothing is left: any backoff (8 s cap), snooze, expiry and long
        # job (3 leases) ends well within the bound.
        for _ in range(40):
            if not StoreView.read(self.store, layout).items:
                break
            self.call(self._advance, LEASE)
        self.consistent()
        view = StoreView.read(self.store, layout)
        assert not view.items, "jobs remain after draining"
        dead = {item_id: d for (_, item_id), d in view.dead.items()}
        for job_id, spec in self.specs.items():
            calls = self.calls.get(job_id, [])
            self.check_fate(job_id, spec, calls, dead.get(job_id))
        stats = [r.consumer.statistics() for r in [*self.stopped, *self.runners.values()]]
        completed = sum(job_id not in dead for job_id in self.specs)
        assert sum(s.completed for s in stats) == completed
        buried_by_consumers = sum(
            not (d.error or "").startswith("lease expired") for d in dead.values()
        )
        assert sum(s.dead_lettered for s in stats) == buried_by_consumers
        # Every attempt that counts was counted once, when recorded or when its
        # lease expired: as many as each job's attempt count says.
        for qid in QUEUES:
            attempts = sum(
                dead[job_id].item.attempt if job_id in dead else self.calls[job_id][-1].attempt
                for job_id, spec in self.specs.items()
                if spec.queue_id == qid
            )
            assert view.history_sum(qid, "c", "f", "s", "d") == attempts, qid

    def check_fate(self, job_id: str, spec: Spec, calls: list[Call], dead: Any) -> None:
        last = calls[-1] if calls else None
        if spec.kind == "orphan":
            assert not calls and dead is not None and dead.reason == "no_handler", job_id
            return
        assert last is not None and last.end is not None, (job_id, calls)
        interrupted = any(c.did == "cancelled" for c in calls) or job_id in self.disturbed
        if dead is None:
            assert last.did == "ok", (job_id, calls)
        elif dead.reason == "discarded":
            assert last.did == "discarded", (job_id, calls)
        elif dead.reason == "snoozed_out":
            assert last.did == "snoozed", (job_id, calls)
            assert dead.item.attempt == spec.max_retries + 1 == last.attempt, (job_id, calls)
        else:
            assert dead.reason == "failed", (job_id, dead)
            # Its lease expired with attempts spent, whatever its handler did.
            assert last.did in ("failed", "cancelled") or job_id in self.disturbed, (job_id, calls)
            assert dead.item.attempt == spec.max_retries + 1, (job_id, calls)
            if not interrupted:
                assert dead.item.errors == len(calls), (job_id, calls, dead)
        if interrupted:
            return
        # Never interrupted: the behaviour alone decides, attempt by attempt.
        expected = {
            "ok": ["ok"],
            "long": ["ok"],
            "discard": ["discarded"],
            "fail": ["failed"] * min(spec.k, spec.max_retries + 1),
            "snooze": ["snoozed"] * min(spec.k, spec.max_retries + 1),
        }[spec.kind]
        if spec.kind in ("fail", "snooze") and spec.k <= spec.max_retries:
            expected.append("ok")
        assert [c.did for c in calls] == expected, (job_id, spec, calls)
        assert [c.attempt for c in calls] == list(range(1, len(calls) + 1))


ConsumerMachine.TestCase.settings = model_settings(examples=50, steps=30)
TestConsumerModel = ConsumerMachine.TestCase
pytestmark = MODEL_TIME_LIMIT
