"""A stateful model of the queue's transactional operations (``quickq._core``).

Hypothesis drives the pure operations with an explicit time ``now`` (integer
milliseconds that a rule advances) against a small reference model: a dict of
jobs, each in one store index (its State: pending, scheduled or running) with
its attempts, errors and lease, plus dead letters and the fate of every job
ever created. Several consumers take queue leases, lease batches, extend,
complete, fail, snooze, discard, release, and crash (their leases simply
abandoned); producers enqueue with every option, custom ids repeated; an
operator cancels, replays and purges. The model predicts every answer
exactly: which items a batch leases and in which order, every settlement's
outcome, every extension.

After every step the whole store is read back and checked against the model:

- no job lost: every job created is live (in exactly one index, matching the
  model), dead, completed, cancelled or purged, and nothing else is stored;
- at most one live lease per job, and lease ids never reused;
- no job is leased before its vesting time (checked as each batch is leased);
- attempts and errors counted exactly; failures and snoozes dead-letter a job
  exactly after ``max_retries + 1`` attempts;
- the counters (and ``JobQueue.stats``) equal the model's counts;
- every non-empty queue is marked due, or has a pointer due no later than
  its earliest work (or, while a queue lease is held, at that lease's end):
  no job is ever stranded. Enqueues commit in the middle of batch leases
  (which no longer conflict with them), so a mark dropped, or cleared when a
  newer one replaced it, strands a job and fails this.

The same machine runs again with the memory store's fault injection on:
random conflicts and commit-unknown-result in both flavours (the write
applied, or not) on a seeded schedule, and scripted faults before chosen
steps. ``transact`` re-runs a body after commit-unknown-result, so this is the
proof that every operation (enqueue with an id chosen outside the retry loop,
through ``_core`` and through ``JobQueue``; queue lease, batch lease, extend,
complete, retry, snooze, dead letter, release, replay, purge, cancel) is
idempotent: the model, which knows nothing of faults, must still match the
store exactly, so nothing is lost, duplicated, miscounted or completed twice.
Every answer is exact under faults too: enqueue's receipts, and those of
cancel, replay and purge (run, as ``JobQueue`` runs them, through
``_core.run_once``), let a re-run report what the committed run did.

Hypothesis has no async stateful testing, so rules stay synchronous and call
the store through an anyio blocking portal running trio with a MockClock (so
the retry loop's backoff sleeps take no real time).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeVar

import anyio.from_thread
import attrs
import fdb.tuple as fdb_tuple
import hypothesis.strategies as st
import trio.testing
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import quickq
from quickq import CommitUnknownResultError, ConflictError, _core
from quickq._core import Action, Layout, NewItem, Outcome, Settlement, State
from quickq.stores import CommitFault, Faults, MemoryStore, Transaction

from .support import MODEL_TIME_LIMIT, StoreView, enqueue_one, model_settings

T = TypeVar("T")

T0 = 1_000_000
LEASE = 1_000
QLEASE = 300
IDLE_GC = 2_000
QUEUES = ("qa", "qb")
CONSUMERS = ("c1", "c2", "c3")
CUSTOM_IDS = ("x0", "x1", "x2")
MAX_LIVE = 40
"""Fewer than the 64 items a batch lease promotes at most, so promotion is total."""

layout = Layout()
_ENQUEUE_TOKENS = "token" in attrs.fields_dict(NewItem)
"""Whether enqueue takes a per-call token (for its receipts)."""


@attrs.define
class MJob:
    """The model of one live job."""

    uid: int
    qid: str
    item_id: str
    priority: int
    vesting: int
    max_retries: int
    state: State
    attempt: int = 0
    errors: int = 0
    lease: tuple[str, str, int] | None = None
    """(holder, lease id, expiry)."""

    @property
    def due(self) -> int:
        """When this job next needs a consumer's visit."""
        return self.lease[2] if self.lease is not None else self.vesting

    def ready_key(self) -> bytes:
        packed: bytes = fdb_tuple.pack((self.priority, self.vesting, self.item_id))
        return packed


@attrs.frozen
class Held:
    """A job lease a consumer believes it holds."""

    qid: str
    item_id: str
    lease_id: str


new_jobs = st.tuples(
    st.sampled_from(QUEUES),
    st.one_of(st.none(), st.sampled_from(CUSTOM_IDS)),  # None: a generated id
    st.sampled_from([0, 1, 5]),  # priority
    st.sampled_from([-500, 0, 0, 1, 250, LEASE, 3 * LEASE]),  # vesting - now (at/delay)
    st.integers(0, 3),  # max_retries
)


class QueueMachine(RuleBasedStateMachine):
    """The queue's operations against a reference model (see the module docstring)."""

    faulty: ClassVar[bool] = False
    """Whether commits may fail with commit-unknown-result (see FaultyQueueMachine)."""

    def __init__(self) -> None:
        super().__init__()
        self._exit = contextlib.ExitStack()
        clock = trio.testing.MockClock(autojump_threshold=0)
        self.portal = self._exit.enter_context(
            anyio.from_thread.start_blocking_portal("trio", backend_options={"clock": clock})
        )
        self.store = MemoryStore()
        self.now = T0
        self.serial = 0
        self.live: dict[tuple[str, str], MJob] = {}
        self.dead: dict[tuple[str, str], tuple[MJob, str]] = {}
        self.fates: dict[int, str] = {}
        """uid -> live, dead, completed, cancelled or purged."""
        self.completions: collections.Counter[int] = collections.Counter()
        self.held: dict[str, list[Held]] = {c: [] for c in CONSUMERS}
        self.taken: dict[str, list[tuple[str, str]]] = {c: [] for c in CONSUMERS}
        """Queue leases (qid, token) each consumer believes it took."""
        self.queue_leases: dict[str, tuple[str, str, int]] = {}
        """qid -> (holder, token, expiry) of the queue lease the pointer holds."""
        self.lease_ids: set[str] = set()

    def teardown(self) -> None:
        self._exit.close()

    # -- plumbing -------------------------------------------------------------------

    def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        result: T = self.portal.call(self.store.transact, fn)
        return result

    def once(self, op: Callable[[Transaction], Awaitable[bytes | None]]) -> bytes | None:
        """Run control *op* as JobQueue does: under a receipt whose token is
        chosen outside the retry loop, so that a re-run after an applied
        commit-unknown-result reports what the first run did."""
        token, now = self.fresh("o"), self.now
        return self.transact(lambda tr: _core.run_once(tr, layout, token, now, lambda: op(tr)))

    def fresh(self, prefix: str) -> str:
        """A fresh name; fixed width, so no token is a prefix of another."""
        self.serial += 1
        return f"{prefix}{self.serial:06d}"

    def clock(self) -> Callable[[], int]:
        now = self.now
        return lambda: now

    def queue_jobs(self, qid: str) -> list[MJob]:
        return [job for job in self.live.values() if job.qid == qid]

    def lease_is_live(self, held: Held) -> bool:
        job = self.live.get((held.qid, held.item_id))
        return (
            job is not None
            and job.lease is not None
            and job.lease[1] == held.lease_id
            and job.lease[2] > self.now
        )

    @staticmethod
    def by_age(jobs: dict[tuple[str, str], MJob]) -> list[tuple[str, str]]:
        """Keys in creation order: generated ids are random, so sorting by id
        would make the draws of a replayed run differ (a flaky strategy)."""
        return sorted(jobs, key=lambda key: jobs[key].uid)

    def dead_letter(self, job: MJob, reason: str) -> None:
        del self.live[job.qid, job.item_id]
        job.lease = None
        self.dead[job.qid, job.item_id] = (job, reason)
        self.fates[job.uid] = "dead"

    # -- producers and operators ----------------------------------------------------

    @precondition(lambda self: len(self.live) < MAX_LIVE)
    @rule(batch=st.lists(new_jobs, min_size=1, max_size=3))
    def enqueue(self, batch: list[tuple[str, str | None, int, int, int]]) -> None:
        """Enqueue one to three jobs in one transaction (ids chosen outside it)."""
        now = self.now
        news = [
            NewItem(
                qid,
                custom if custom is not None else self.fresh("g"),
                "t",
                b"{}",
                priority,
                now + delay,
                retries,
                None,
                custom is not None,
            )
            for qid, custom, priority, delay, retries in batch
        ]
        if _ENQUEUE_TOKENS:  # a token per enqueue call, chosen outside the retry loop
            news = [attrs.evolve(new, token=self.fresh("e")) for new in news]

        async def body(tr: Transaction) -> list[tuple[quickq._core.Item, bool]]:
            return [await enqueue_one(tr, layout, new, now) for new in news]

        results = self.transact(body)
        for new, (item, created) in zip(news, results, strict=True):
            key = new.queue_id, new.item_id
            assert item.item_id == new.item_id
            if key in self.live:  # first enqueue wins
                assert not created
                old = self.live[key]
                assert (item.priority, item.max_retries) == (old.priority, old.max_retries)
                continue
            if new.custom_id and key in self.dead:
                assert not created
                assert item.priority == self.dead[key][0].priority
                continue
            assert created, key  # a re-run after commit-unknown-result too (receipts)
            self.serial += 1
            job = MJob(
                self.serial,
                new.queue_id,
                new.item_id,
                new.priority,
                new.vesting,
                new.max_retries,
                State.PENDING if new.vesting <= now else State.SCHEDULED,
            )
            self.live[key] = job
            self.fates[job.uid] = "live"
            assert (item.state, item.vesting, item.attempt) == (job.state, job.vesting, 0)

    @precondition(lambda self: len(self.live) < MAX_LIVE)
    @rule(
        qid=st.sampled_from(QUEUES),
        custom=st.one_of(st.none(), st.sampled_from(CUSTOM_IDS)),
        delay=st.sampled_from([0.0, 0.25, 3.0]),
    )
    def enqueue_public(self, qid: str, custom: str | None, delay: float) -> None:
        """JobQueue.enqueue: the public path, whose id is generated outside the
        retry loop (topic defaults: priority 100, max_retries 3)."""
        now = self.now
        queue = quickq.JobQueue(self.store, clock=lambda: now / 1000)
        enqueue = functools.partial(queue.enqueue, qid, "t", {"n": 1}, delay=delay)
        if custom is not None:
            enqueue = functools.partial(enqueue, job_id=custom)
        job = self.portal.call(enqueue)
        key = qid, job.job_id
        if key in self.live or key in self.dead:  # first enqueue wins
            assert custom is not None
            return
        assert custom is None or job.job_id == custom
        self.serial += 1
        vesting = now + round(delay * 1000)
        self.live[key] = MJob(
            self.serial,
            qid,
            job.job_id,
            100,
            vesting,
            3,
            State.PENDING if vesting <= now else State.SCHEDULED,
        )
        self.fates[self.serial] = "live"

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Cancel a job by id: only a job that is not leased can be cancelled."""
        key = data.draw(st.sampled_from(self.by_age(self.live)))
        qid, item_id = key

        async def cancel(tr: Transaction) -> bytes | None:
            item = await _core.cancel_item(tr, layout, qid, item_id)
            return None if item is None else item.item_id.encode()

        done = self.once(cancel)
        job = self.live[key]
        if job.state == State.RUNNING:
            assert done is None
            return
        assert done == item_id.encode()
        del self.live[key]
        self.fates[job.uid] = "cancelled"

    @precondition(lambda self: bool(self.dead))
    @rule(data=st.data(), purge=st.booleans())
    def replay_or_purge(self, data: st.DataObject, purge: bool) -> None:
        """Replay a dead letter (ready now, fresh attempts) or purge it."""
        key = data.draw(st.sampled_from(self.by_age({k: j for k, (j, _) in self.dead.items()})))
        qid, item_id = key
        now = self.now

        async def purge_it(tr: Transaction) -> bytes | None:
            return b"1" if await _core.purge_dead_letter(tr, layout, qid, item_id) else None

        async def replay_it(tr: Transaction) -> bytes | None:
            return b"1" if await _core.replay_dead_letter(tr, layout, qid, item_id, now) else None

        if purge:
            assert self.once(purge_it) == b"1"
            job, _ = self.dead.pop(key)
            self.fates[job.uid] = "purged"
            return
        assert self.once(replay_it) == b"1"
        job, _ = self.dead.pop(key)
        job.state, job.vesting, job.attempt, job.errors, job.lease = State.PENDING, now, 0, 0, None
        self.live[key] = job
        self.fates[job.uid] = "live"

    # -- consumers ------------------------------------------------------------------

    def has_due_work(self, qid: str) -> bool:
        return any(job.due <= self.now for job in self.queue_jobs(qid))

    @rule(consumer=st.sampled_from(CONSUMERS), qid=st.sampled_from(QUEUES))
    def take_queue_lease(self, consumer: str, qid: str) -> None:
        """Take a queue lease (its own transaction), as a scanner does before leasing."""
        token = self.fresh("t")
        now = self.now
        taken = self.transact(
            lambda tr: _core.take_queue_lease(tr, layout, qid, consumer, token, now, QLEASE)
        )
        current = self.queue_leases.get(qid)
        if current is not None and current[2] > now:
            assert not taken, "a queue lease was taken twice"
        elif self.has_due_work(qid):
            assert taken, "a queue with due work could not be leased"
        if taken:
            self.queue_leases[qid] = (consumer, token, now + QLEASE)
            self.taken[consumer].append((qid, token))

    def promote(self, qid: str) -> None:
        """What a batch lease does first: due scheduled items and expired leases
        become ready; an expired lease with its attempts spent is dead-lettered."""
        for job in self.queue_jobs(qid):
            if job.state == State.SCHEDULED and job.vesting <= self.now:
                job.state = State.PENDING
            elif job.state == State.RUNNING and job.due <= self.now:
                assert job.lease is not None
                job.errors += 1
                if job.attempt > job.max_retries:
                    self.dead_letter(job, "failed")
                else:
                    job.state, job.vesting, job.lease = State.PENDING, job.lease[2], None

    def draw_queue_lease(self, data: st.DataObject) -> tuple[str, str, str]:
        consumer = data.draw(st.sampled_from([c for c in CONSUMERS if self.taken[c]]))
        qid, token = data.draw(st.sampled_from(self.taken[consumer]))
        self.taken[consumer].remove((qid, token))
        return consumer, qid, token

    def leasing(
        self, consumer: str, qid: str, token: str, limit: int
    ) -> tuple[Callable[[Transaction], Awaitable[_core.LeaseBatch]], str]:
        batch_token = self.fresh("b")
        now = self.now
        return lambda tr: _core.lease_items(
            tr,
            layout,
            qid,
            holder=consumer,
            token=token,
            batch_token=batch_token,
            limit=limit,
            now=now,
            lease_ms=LEASE,
            idle_gc_ms=IDLE_GC,
        ), batch_token

    @precondition(lambda self: any(self.taken.values()))
    @rule(data=st.data(), limit=st.integers(1, 4))
    def lease_batch(self, data: st.DataObject, limit: int) -> None:
        """Lease up to *limit* ready items under a queue lease (which this ends)."""
        consumer, qid, token = self.draw_queue_lease(data)
        body, batch_token = self.leasing(consumer, qid, token, limit)
        batch = self.transact(body)
        assert self.got(batch) == self.apply_batch(consumer, qid, token, batch_token, limit, batch)

    @precondition(lambda self: any(self.taken.values()))
    @rule(
        data=st.data(),
        limit=st.integers(1, 4),
        meanwhile=st.lists(
            st.sampled_from(["enqueue", "settle", "extend", "cancel"]), min_size=1, max_size=3
        ),
        first=st.lists(st.sampled_from(["enqueue", "settle"]), max_size=2),
    )
    def lease_batch_while_others_commit(
        self, data: st.DataObject, limit: int, meanwhile: list[str], first: list[str]
    ) -> None:
        """Let *first* operations commit under the queue lease (their marks are
        there when the batch reads), open a batch lease's transaction and run
        its body; let other operations commit (marking the queue again); then
        commit it. It must conflict (and its re-run match the model then), or
        its result must be the one its reads saw, with nothing stranded
        (checked by the invariant: a mark it clears must be the one it read)."""
        consumer, qid, token = self.draw_queue_lease(data)
        for op in first:
            if op == "enqueue" and len(self.live) < MAX_LIVE:  # into the leased queue
                self.enqueue([(qid, *data.draw(new_jobs)[1:])])
            else:
                self.meanwhile(op, data)
        body, batch_token = self.leasing(consumer, qid, token, limit)
        tr = self.store.create_transaction()
        opened = self.portal.call(body, tr)
        before = self.save()
        for op in meanwhile:
            self.meanwhile(op, data)
        try:
            self.portal.call(tr.commit)
        except (ConflictError, CommitUnknownResultError) as exc:  # the retry loop re-runs it
            batch = self.transact(body)
            if isinstance(exc, CommitUnknownResultError) and self.got(batch) == self.got(opened):
                # The unknown commit may have applied, as it read: the re-run found
                # its batch marker and returns that batch (checked below), or it
                # did not, and the re-run leased afresh from the state now.
                after = self.save()
                if self.got(batch) == self.apply_batch(
                    consumer, qid, token, batch_token, limit, batch
                ):
                    return
                self.restore(after)
                self.committed_as_read(consumer, qid, token, batch_token, limit, opened, before)
                return
            expected = self.apply_batch(consumer, qid, token, batch_token, limit, batch)
            assert self.got(batch) == expected
            return
        self.committed_as_read(consumer, qid, token, batch_token, limit, opened, before)

    def committed_as_read(
        self,
        consumer: str,
        qid: str,
        token: str,
        batch_token: str,
        limit: int,
        opened: _core.LeaseBatch,
        before: tuple[object, ...],
    ) -> None:
        """Check a batch that committed with what it read before others committed."""
        # Committed as it read: equal to a batch run before the others committed.
        if self.queue_leases.get(qid, ("",))[:2] != (consumer, token):
            # Not ours when it read (a read-only body: its commit checks nothing).
            assert opened.items == [], "leased under a queue lease that was no longer ours"
            return
        after = self.save()
        self.restore(before)
        expected = self.apply_batch(consumer, qid, token, batch_token, limit, opened)
        assert self.got(opened) == expected
        self.restore(after)
        self.apply_leased(consumer, qid, token, opened)

    def meanwhile(self, op: str, data: st.DataObject) -> None:
        """Run one other operation to its commit (a rule, when it may run)."""
        if op == "enqueue" and len(self.live) < MAX_LIVE:
            self.enqueue(data.draw(st.lists(new_jobs, min_size=1, max_size=2)))
        elif op in ("settle", "extend") and any(self.held.values()):
            if op == "extend":
                self.extend(data)
            else:
                action = data.draw(st.sampled_from(["complete", "fail", "snooze", "release"]))
                self.settle(data, action, data.draw(st.sampled_from([0, 1, 500, 2 * LEASE])))
        elif op == "cancel" and self.live:
            self.cancel(data)

    def save(self) -> tuple[object, ...]:
        return copy.deepcopy(
            (self.live, self.dead, self.fates, self.held, self.queue_leases, self.lease_ids)
        )

    def restore(self, saved: tuple[object, ...]) -> None:
        state = copy.deepcopy(saved)
        self.live, self.dead, self.fates, self.held, self.queue_leases, self.lease_ids = state  # type: ignore[assignment]

    @staticmethod
    def got(batch: _core.LeaseBatch) -> list[tuple[str, int, tuple[str, str, int] | None]]:
        return [
            (
                i.item_id,
                i.attempt,
                (i.lease.holder, i.lease.lease_id, i.lease.expiry) if i.lease else None,
            )
            for i in batch.items
        ]

    def apply_batch(
        self,
        consumer: str,
        qid: str,
        token: str,
        batch_token: str,
        limit: int,
        batch: _core.LeaseBatch,
    ) -> list[tuple[str, int, tuple[str, str, int] | None]]:
        """Apply a batch lease to the model; return what it must have leased."""
        current = self.queue_leases.get(qid)
        if current is None or current[:2] != (consumer, token):
            assert batch.items == [], "leased under a queue lease that was no longer ours"
            return []
        del self.queue_leases[qid]
        self.promote(qid)
        ready = sorted(
            (j for j in self.queue_jobs(qid) if j.state == State.PENDING), key=MJob.ready_key
        )
        expected: list[tuple[str, int, tuple[str, str, int] | None]] = []
        for n, job in enumerate(ready[:limit]):
            assert job.vesting <= self.now, "a job was leased before its vesting time"
            self.lease_job(consumer, job, f"{batch_token}.{n}")
            expected.append((job.item_id, job.attempt, job.lease))
        return expected

    def apply_leased(self, consumer: str, qid: str, token: str, batch: _core.LeaseBatch) -> None:
        """Apply to the model exactly the jobs *batch* leased (all still ready)."""
        assert self.queue_leases.pop(qid)[:2] == (consumer, token)
        self.promote(qid)
        for item in batch.items:
            job = self.live[qid, item.item_id]
            assert job.state == State.PENDING, "leased a job that was no longer ready"
            assert item.lease is not None
            self.lease_job(consumer, job, item.lease.lease_id)

    def lease_job(self, consumer: str, job: MJob, lease_id: str) -> None:
        assert lease_id not in self.lease_ids
        self.lease_ids.add(lease_id)
        job.state, job.attempt = State.RUNNING, job.attempt + 1
        job.lease = (consumer, lease_id, self.now + LEASE)
        self.held[consumer].append(Held(job.qid, job.item_id, lease_id))

    def draw_held(self, data: st.DataObject) -> tuple[str, Held]:
        consumer = data.draw(st.sampled_from([c for c in CONSUMERS if self.held[c]]))
        held = data.draw(st.sampled_from(self.held[consumer]))
        return consumer, held

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        """Extend a job lease; refused (and given up) once it is not ours."""
        consumer, held = self.draw_held(data)
        clock = self.clock()
        ok = self.transact(
            lambda tr: _core.extend_lease(
                tr, layout, held.qid, held.item_id, held.lease_id, clock, LEASE
            )
        )
        if not self.lease_is_live(held):
            assert not ok
            self.held[consumer].remove(held)
            return
        assert ok
        job = self.live[held.qid, held.item_id]
        assert job.lease is not None
        job.lease = (consumer, held.lease_id, max(job.lease[2], self.now + LEASE))

    @precondition(lambda self: any(self.held.values()))
    @rule(
        data=st.data(),
        action=st.sampled_from(["complete", "fail", "snooze", "discard", "release"]),
        delay=st.sampled_from([0, 1, 500, 2 * LEASE]),
    )
    def settle(self, data: st.DataObject, action: str, delay: int) -> None:
        """End an attempt: only while its lease is live does anything change."""
        consumer, held = self.draw_held(data)
        self.held[consumer].remove(held)
        body = self.settling(held, action, delay)
        outcome = self.transact(body)
        assert outcome is self.expected_settlement(held, action, delay), outcome

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data(), count=st.integers(1, 4))
    def settle_batch(self, data: st.DataObject, count: int) -> None:
        """End several attempts in one transaction (``settle_many``, counters
        adjusted once): the same outcomes, in order, as one settle each."""
        picks: list[tuple[Held, str, int]] = []
        while len(picks) < count and any(self.held.values()):
            consumer, held = self.draw_held(data)
            self.held[consumer].remove(held)
            action = data.draw(
                st.sampled_from(["complete", "fail", "snooze", "discard", "release"])
            )
            picks.append((held, action, data.draw(st.sampled_from([0, 1, 500, 2 * LEASE]))))
        batch = [self.settlement(held, action, delay) for held, action, delay in picks]
        clock = self.clock()
        outcomes = self.transact(lambda tr: _core.settle_many(tr, layout, batch, clock))
        assert outcomes == [self.expected_settlement(*pick) for pick in picks], outcomes

    def settling(
        self, held: Held, action: str, delay: int
    ) -> Callable[[Transaction], Awaitable[Outcome]]:
        s = self.settlement(held, action, delay)
        clock = self.clock()
        return lambda tr: _core.settle(tr, layout, s, clock)

    def settlement(self, held: Held, action: str, delay: int) -> Settlement:
        return {
            "complete": Settlement(Action.COMPLETE, held.qid, held.item_id, held.lease_id),
            "fail": Settlement(
                Action.RETRY, held.qid, held.item_id, held.lease_id, delay, error="boom"
            ),
            "snooze": Settlement(Action.SNOOZE, held.qid, held.item_id, held.lease_id, delay),
            "discard": Settlement(
                Action.DEAD_LETTER,
                held.qid,
                held.item_id,
                held.lease_id,
                reason="discarded",
                error="no",
            ),
            "release": Settlement(Action.RELEASE, held.qid, held.item_id, held.lease_id),
        }[action]

    @precondition(lambda self: any(self.held.values()))
    @rule(
        data=st.data(),
        action=st.sampled_from(["complete", "fail", "snooze", "discard", "release"]),
        delay=st.sampled_from([0, 1, 500, 2 * LEASE]),
        meanwhile=st.lists(
            st.sampled_from(["enqueue", "settle", "extend", "cancel"]), min_size=1, max_size=3
        ),
    )
    def settle_while_others_commit(
        self, data: st.DataObject, action: str, delay: int, meanwhile: list[str]
    ) -> None:
        """Open a settlement's transaction and run its body; let other
        operations commit; then commit it. Everything it reads conflicts, so
        it must conflict (and its re-run match the model), or report what the
        model says at its commit."""
        consumer, held = self.draw_held(data)
        self.held[consumer].remove(held)
        body = self.settling(held, action, delay)
        tr = self.store.create_transaction()
        outcome = self.portal.call(body, tr)
        for op in meanwhile:
            self.meanwhile(op, data)
        try:
            self.portal.call(tr.commit)
        except (ConflictError, CommitUnknownResultError):  # the retry loop re-runs it
            outcome = self.transact(body)
        assert outcome is self.expected_settlement(held, action, delay), outcome

    def expected_settlement(self, held: Held, action: str, delay: int) -> Outcome:
        """Apply a settlement to the model; return the outcome it must report."""
        if not self.lease_is_live(held):
            return Outcome.LOST
        job = self.live[held.qid, held.item_id]
        now = self.now
        if action == "complete":
            del self.live[held.qid, held.item_id]
            self.fates[job.uid] = "completed"
            self.completions[job.uid] += 1
            return Outcome.COMPLETED
        if action == "release":
            job.state, job.vesting, job.attempt, job.lease = (
                State.PENDING,
                now,
                job.attempt - 1,
                None,
            )
            return Outcome.RELEASED
        if action != "snooze":
            job.errors += 1  # a failure, and (as the ops count it) a discard
        if action == "discard":
            self.dead_letter(job, "discarded")
            return Outcome.DEAD_LETTERED
        if job.attempt > job.max_retries:
            self.dead_letter(job, "failed" if action == "fail" else "snoozed_out")
            return Outcome.DEAD_LETTERED
        job.vesting, job.lease = now + delay, None
        job.state = State.SCHEDULED if delay > 0 else State.PENDING
        return Outcome.RETRIED

    @rule(consumer=st.sampled_from(CONSUMERS))
    def crash(self, consumer: str) -> None:
        """A consumer dies: its job and queue leases are abandoned, never released."""
        self.held[consumer].clear()
        self.taken[consumer].clear()

    @rule(dt=st.sampled_from([1, 100, QLEASE, LEASE - 1, LEASE, 2 * LEASE, IDLE_GC]))
    def advance(self, dt: int) -> None:
        self.now += dt

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        view = StoreView.read(self.store, layout)
        now = self.now

        # No job lost, none duplicated: the live items are exactly the model's.
        assert set(view.items) == set(self.live)
        for key, job in self.live.items():
            item = view.items[key]
            lease = item.lease and (item.lease.holder, item.lease.lease_id, item.lease.expiry)
            assert (item.state, item.attempt, item.errors, lease) == (
                job.state,
                job.attempt,
                job.errors,
                job.lease,
            ), key
            assert (item.priority, item.max_retries) == (job.priority, job.max_retries)
            if job.state != State.RUNNING:
                assert item.vesting == job.vesting, key
        # Each live item sits in exactly the index its state names, once.
        for qid in QUEUES:
            jobs = self.queue_jobs(qid)
            expected = {
                State.PENDING: sorted(
                    (j.priority, j.vesting, j.item_id) for j in jobs if j.state == State.PENDING
                ),
                State.SCHEDULED: sorted(
                    (j.vesting, j.item_id) for j in jobs if j.state == State.SCHEDULED
                ),
                State.RUNNING: sorted((j.due, j.item_id) for j in jobs if j.state == State.RUNNING),
            }
            for state, entries in expected.items():
                assert sorted(view.index.get((qid, state), [])) == entries, (qid, state)
        # Dead letters: the model's, with attempts spent exactly when they failed out.
        assert set(view.dead) == set(self.dead)
        for key, (job, reason) in self.dead.items():
            dead = view.dead[key]
            assert (dead.reason, dead.item.attempt, dead.item.errors) == (
                reason,
                job.attempt,
                job.errors,
            ), key
            assert dead.item.lease is None
            if reason in ("failed", "snoozed_out"):
                assert dead.item.attempt == dead.item.max_retries + 1, key
        # Every job ever created has exactly one fate, and was completed at most once.
        fates = collections.Counter(self.fates.values())
        assert fates["live"] == len(self.live)
        assert fates["dead"] == len(self.dead)
        assert fates["completed"] == sum(self.completions.values())
        assert all(n == 1 for n in self.completions.values())
        # Counters equal the model's counts.
        for qid in QUEUES:
            jobs = self.queue_jobs(qid)
            counts = {
                "pending": sum(j.state == State.PENDING for j in jobs),
                "scheduled": sum(j.state == State.SCHEDULED for j in jobs),
                "running": sum(j.state == State.RUNNING for j in jobs),
                "dead": sum(k[0] == qid for k in self.dead),
            }
            assert {name: view.count(qid, name) for name in counts} == counts, qid
        # At most one live lease per job, held by one consumer.
        live_holders = collections.Counter(
            (h.qid, h.item_id) for hs in self.held.values() for h in hs if self.lease_is_live(h)
        )
        assert all(n == 1 for n in live_holders.values())
        # Pointers: one per non-empty queue, due no later than its earliest work.
        rows = collections.Counter(qid for _, qid in view.pointer_rows)
        assert all(n == 1 for n in rows.values()), view.pointer_rows
        for time, qid in view.pointer_rows:
            assert view.pointer_records[qid].time == time, qid
        assert set(rows) == set(view.pointer_records)
        for qid in QUEUES:
            pointer = view.pointer_records.get(qid)
            held = self.queue_leases.get(qid)
            jobs = self.queue_jobs(qid)
            if held is not None:
                assert pointer is not None, qid
                assert (pointer.holder, pointer.token, pointer.time) == held, qid
                continue
            if not jobs:
                continue
            if qid in view.marks:
                continue  # marked due: the next scan leases from it
            assert pointer is not None, f"non-empty queue {qid} has no pointer and no mark"
            assert pointer.holder is None, qid
            earliest = min(j.due for j in jobs)
            assert pointer.time <= max(now, earliest), f"queue {qid}'s work is stranded"
        # A consumer's batch markers: only its latest.
        markers = collections.Counter(holder for holder, _ in view.batch_markers)
        assert all(n == 1 for n in markers.values())

    @rule()
    def stats_agree(self) -> None:
        """JobQueue.stats (the public view of the counters) agrees with the model.

        A rule rather than an invariant: the counters themselves are checked
        after every step (raw, without a transaction), and each call into the
        event loop costs a thread hand-off.
        """

        async def stats() -> list[quickq.QueueStats]:
            queue = quickq.JobQueue(self.store)
            return [await queue.stats(qid) for qid in QUEUES]

        for qid, got in zip(QUEUES, self.portal.call(stats), strict=True):
            jobs = self.queue_jobs(qid)
            assert (got.pending, got.scheduled, got.running, got.dead) == (
                sum(j.state == State.PENDING for j in jobs),
                sum(j.state == State.SCHEDULED for j in jobs),
                sum(j.state == State.RUNNING for j in jobs),
                sum(k[0] == qid for k in self.dead),
            )


class FaultyQueueMachine(QueueMachine):
    """The same machine with faults: random (seeded) and scripted before steps.

    Every transaction that writes may fail with a conflict or with
    commit-unknown-result, applied or not; ``transact`` re-runs the body. The
    model is unchanged: the operations must be idempotent for it to hold.
    """

    faulty = True

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        rates=st.sampled_from([(0.1, 0.1, 0.1), (0.0, 0.3, 0.0), (0.0, 0.0, 0.3), (0.2, 0.2, 0.2)]),
    )
    def faulty_store(self, seed: int, rates: tuple[float, float, float]) -> None:
        conflict, applied, not_applied = rates
        self.store = MemoryStore(
            faults=Faults(
                seed=seed,
                conflict=conflict,
                unknown_applied=applied,
                unknown_not_applied=not_applied,
            )
        )

    @rule(faults=st.lists(st.sampled_from([*CommitFault, None]), min_size=1, max_size=3))
    def inject(self, faults: list[CommitFault | None]) -> None:
        """Script the outcomes of the next commits that write."""
        self.store.inject(*faults)


QueueMachine.TestCase.settings = model_settings(examples=60, steps=35)
FaultyQueueMachine.TestCase.settings = model_settings(examples=60, steps=35)
TestQueueModel = QueueMachine.TestCase
TestQueueModelWithFaults = FaultyQueueMachine.TestCase
pytestmark = MODEL_TIME_LIMIT
