"""The consumer tree, in virtual time (trio's MockClock): outcomes, backoff,
scheduling, leases, fairness and shutdown, asserted exactly."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio

import quickq
from quickq import _core
from quickq._core import Item
from quickq.stores import CommitFault, MemoryStore, Transaction

from ._stores import EPOCH, Partition, run_virtual, virtual_clock

Handler = Callable[[Any, quickq.JobMeta], Awaitable[Any]]
NO_JITTER = quickq.Backoff(base=1.0, factor=2.0, cap=300.0, jitter=0.0)


class Recorder:
    """A registry whose handlers record (topic, payload, attempt, virtual time)."""

    def __init__(self) -> None:
        self.jobs = quickq.JobRegistry()
        self.calls: list[tuple[str, Any, int, float]] = []

    def job(self, topic: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            async def handler(payload: Any, meta: quickq.JobMeta) -> Any:
                self.calls.append((topic, payload, meta.attempt, trio.current_time()))
                return await fn(payload, meta)

            self.jobs.add(quickq.JobDefinition(topic, handler, **options))
            return fn

        return register

    def times(self, topic: str) -> list[float]:
        return [t for name, _, _, t in self.calls if name == topic]


def queue_for(store: Any, rec: Recorder) -> quickq.JobQueue:
    return quickq.JobQueue(store, rec.jobs, clock=virtual_clock)


def consumer(store: Any, rec: Recorder, **options: Any) -> Any:
    options.setdefault("clock", virtual_clock)
    return quickq.open_consumer(store, rec.jobs, **options)


async def wait_until(predicate: Any, *, step: float = 0.01, limit: float = 10_000) -> None:
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 (polling observes from outside)
            await trio.sleep(step)


def test_handler_return_values_complete_the_job() -> None:
    rec = Recorder()

    @rec.job("ok")
    async def ok(payload: Any, meta: quickq.JobMeta) -> Any:
        return payload

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "ok", None)
        await queue.enqueue("t", "ok", {"result": 1})
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().completed == 2)
        assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 0)
        for part in ("i", "r", "s", "l", "d"):  # items and index entries are gone
            begin, end = queue._layout.range("t", part)
            assert [k for k, _ in store.raw_items() if begin <= k < end] == []

    run_virtual(main)


def test_meta_carries_topic_queue_item_and_attempt() -> None:
    rec = Recorder()
    seen: list[quickq.JobMeta] = []

    @rec.job("meta")
    async def meta_job(payload: Any, meta: quickq.JobMeta) -> None:
        seen.append(meta)

    async def main() -> None:
        store = MemoryStore()
        job = await queue_for(store, rec).enqueue("shop-7", "meta", 1, priority=3)
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().completed == 1)
        (meta,) = seen
        assert (meta.topic, meta.queue_id, meta.item_id, meta.attempt) == (
            "meta",
            "shop-7",
            job.job_id,
            1,
        )
        assert meta.priority == 3
        assert meta.enqueued_at == job.enqueued_at
        assert meta.job_id == meta.item_id  # the seed's name stays an alias

    run_virtual(main)


def test_failures_retry_on_the_exact_backoff_schedule_then_dead_letter() -> None:
    rec = Recorder()

    @rec.job("flaky", max_retries=3, backoff=NO_JITTER)
    async def flaky(payload: Any, meta: quickq.JobMeta) -> None:
        raise RuntimeError(f"attempt {meta.attempt} failed")

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        job = await queue.enqueue("t", "flaky", None)
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
        times = rec.times("flaky")
        start = times[0]
        # max_retries=3: four attempts, 1 s, 2 s and 4 s apart.
        assert [round(t - start, 3) for t in times] == [0, 1, 3, 7]
        assert [a for _, _, a, _ in rec.calls] == [1, 2, 3, 4]
        (dead,) = await queue.dead_letters("t")
        assert dead.job.job_id == job.job_id
        assert dead.reason == "failed"
        assert dead.error is not None and "attempt 4 failed" in dead.error
        assert dead.job.errors == 4
        assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 1)

    run_virtual(main)


def test_backoff_is_capped_and_jittered_within_bounds() -> None:
    import random

    backoff = quickq.Backoff(base=1, factor=10, cap=50, jitter=0.2)
    rng = random.Random(7)
    for attempt in range(1, 8):
        raw = min(50, 10 ** (attempt - 1))
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert raw * 0.8 <= delay <= min(50, raw * 1.2)


def test_snooze_reschedules_after_exactly_that_delay_and_counts_an_attempt() -> None:
    rec = Recorder()

    @rec.job("snoozy", max_retries=2)
    async def snoozy(payload: Any, meta: quickq.JobMeta) -> Any:
        return quickq.Snooze(2.5)

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "snoozy", None)
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
        times = rec.times("snoozy")
        assert [round(t - times[0], 3) for t in times] == [0, 2.5, 5.0]
        (dead,) = await queue.dead_letters("t")
        assert (dead.reason, dead.job.attempt, dead.job.errors) == ("snoozed_out", 3, 0)

    run_virtual(main)


def test_discard_removes_the_job_without_retry_and_records_the_reason() -> None:
    rec = Recorder()

    @rec.job("discard")
    async def discard(payload: Any, meta: quickq.JobMeta) -> Any:
        return quickq.Discard("customer cancelled")

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "discard", None)
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
            await trio.sleep(100)
        assert len(rec.calls) == 1
        (dead,) = await queue.dead_letters("t")
        assert (dead.reason, dead.error) == ("discarded", "customer cancelled")

    run_virtual(main)


def test_a_timed_out_attempt_is_cancelled_and_retried() -> None:
    rec = Recorder()
    cancelled: list[float] = []

    @rec.job("slow", timeout=5, backoff=NO_JITTER, max_retries=1)
    async def slow(payload: Any, meta: quickq.JobMeta) -> None:
        try:
            await trio.sleep(3600)
        finally:
            cancelled.append(trio.current_time())

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "slow", None)
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
        times = rec.times("slow")
        assert [round(c - t, 3) for c, t in zip(cancelled, times, strict=True)] == [5, 5]
        assert round(times[1] - times[0], 3) == 6  # 5 s timeout + 1 s backoff
        (dead,) = await queue.dead_letters("t")
        assert dead.error is not None and "timed out after 5" in dead.error

    run_virtual(main)


def test_a_job_without_a_handler_is_dead_lettered_with_that_reason() -> None:
    rec = Recorder()

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock)  # a producer that knows more topics
        await queue.enqueue("t", "nobody:handles", {"x": 1})
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
        (dead,) = await queue.dead_letters("t")
        assert dead.reason == "no_handler"
        assert dead.error is not None and "nobody:handles" in dead.error

    run_virtual(main)


def test_delay_and_at_run_the_job_exactly_then() -> None:
    rec = Recorder()

    @rec.job("later")
    async def later(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        async with consumer(store, rec) as c:
            await queue.enqueue("t", "later", "delay", delay=90)
            at = dt.datetime.fromtimestamp(EPOCH + 3600, tz=dt.UTC)
            await queue.enqueue("u", "later", "at", at=at)
            await wait_until(lambda: c.statistics().completed == 2, step=60)
        by_payload = {p: t for _, p, _, t in rec.calls}
        assert round(by_payload["delay"], 3) == 90
        assert round(by_payload["at"], 3) == 3600

    run_virtual(main)


def test_a_scan_that_drains_every_due_queue_still_wakes_for_the_next_due_job() -> None:
    """After a scan leases everything due, the consumer waits without peeking
    again, until the earliest due time it learned: a job due later in another
    queue, or in the same one, still starts exactly then (while the first job
    runs on, so no job's end prompts a look, and with no idle poll to mask a
    wrong due time)."""
    rec = Recorder()

    @rec.job("j")
    async def j(payload: Any, meta: quickq.JobMeta) -> None:
        if payload == "now":
            await trio.sleep(20)

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "j", "now")
        await queue.enqueue("t", "j", "same-queue", delay=7)
        await queue.enqueue("u", "j", "other-queue", delay=11)
        async with consumer(store, rec, idle_poll=3600, lease_duration=3600) as c:
            await wait_until(lambda: c.statistics().completed == 3, step=30)
        by_payload = {p: round(t, 3) for _, p, _, t in rec.calls}
        assert by_payload == {"now": 0, "same-queue": 7, "other-queue": 11}

    run_virtual(main)


def test_priorities_order_the_work_of_one_queue() -> None:
    rec = Recorder()

    @rec.job("p")
    async def p(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        for prio in [50, 0, 100, 10]:
            await queue.enqueue("t", "p", prio, priority=prio)
        async with consumer(store, rec, concurrency=1, batch_size=1) as c:
            await wait_until(lambda: c.statistics().completed == 4)
        assert [payload for _, payload, _, _ in rec.calls] == [0, 10, 50, 100]

    run_virtual(main)


def test_a_hot_queue_does_not_starve_fifty_others() -> None:
    """Regression (Elixir defect): one hot queue with endless ready work does not
    starve 50 other queues: each is served within a bounded number of rounds."""
    rec = Recorder()

    @rec.job("work")
    async def work(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(0.01)

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue_many([quickq.NewJob("hot", "work", i) for i in range(2000)])
        await trio.sleep(1)
        await queue.enqueue_many([quickq.NewJob(f"cold-{i}", "work", -1) for i in range(50)])
        async with consumer(store, rec, concurrency=1, batch_size=5) as c:
            await wait_until(lambda: sum(1 for _, p, _, _ in rec.calls if p == -1) == 50)
            served = c.statistics().completed
        # 50 cold jobs, and at most a few hot batches between them.
        assert served <= 50 + 5 * 40, served

    run_virtual(main)


def test_a_job_whose_lease_is_lost_is_cancelled_and_its_completion_refused() -> None:
    """Regression (Elixir defect): a job whose lease is lost is cancelled within
    one extension interval, and its completion is refused."""
    rec = Recorder()
    ended: list[float] = []

    @rec.job("long")
    async def long(payload: Any, meta: quickq.JobMeta) -> None:
        try:
            await trio.sleep(1000)
        finally:
            ended.append(trio.current_time())

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        job = await queue.enqueue("t", "long", None)
        async with consumer(store, rec, lease_duration=30) as c:
            await wait_until(lambda: c.statistics().running == 1)
            await trio.sleep(12)
            stolen_at = trio.current_time()
            await steal_lease(store, queue, "t", job.job_id)
            await wait_until(lambda: c.statistics().lost == 1)
        assert ended[0] - stolen_at <= 10  # one extension interval (lease / 3)
        item = await store.transact(lambda tr: _core.read_item(tr, queue._layout, "t", job.job_id))
        assert item is not None and item.lease is not None
        assert item.lease.lease_id == "thief"  # the thief's lease stands; nothing completed
        assert c.statistics().completed == 0

    run_virtual(main)


async def steal_lease(store: MemoryStore, queue: quickq.JobQueue, qid: str, job_id: str) -> None:
    """Rewrite a running job's lease as another consumer's (as after a lease expiry)."""
    import attrs

    async def body(tr: Transaction) -> None:
        raw = await tr.get(queue._layout.item(qid, job_id))
        assert raw is not None
        item = Item.from_bytes(raw)
        assert item.lease is not None
        thief = attrs.evolve(item.lease, holder="other", lease_id="thief")
        tr.clear(item.index_key(queue._layout, qid))
        stolen = attrs.evolve(item, lease=thief)
        tr.set(queue._layout.item(qid, job_id), stolen.to_bytes())
        tr.set(stolen.index_key(queue._layout, qid), b"")

    await store.transact(body)


def test_a_job_running_ten_lease_durations_runs_once_with_its_lease_extended() -> None:
    """Regression: a job that runs for ten lease durations runs exactly once,
    its lease extended all along, while another consumer watches the queue."""
    rec = Recorder()
    expiries: list[float] = []

    @rec.job("marathon")
    async def marathon(payload: Any, meta: quickq.JobMeta) -> None:
        for _ in range(100):
            await trio.sleep(0.3)
            item = await store.transact(
                lambda tr: _core.read_item(tr, queue._layout, "t", meta.item_id)
            )
            assert item is not None and item.lease is not None
            expiries.append(item.lease.expiry / 1000 - virtual_clock())

    store = MemoryStore()
    queue = queue_for(store, rec)

    async def main() -> None:
        await queue.enqueue("t", "marathon", None)
        async with consumer(store, rec, lease_duration=3), consumer(store, rec, lease_duration=3):
            await wait_until(lambda: len(expiries) == 100)
            await trio.sleep(1)
        assert len(rec.calls) == 1
        assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 0)
        # Extended every second (lease/3): the lease never had less than 2 s left.
        assert min(expiries) >= 2 - 1e-6

    run_virtual(main)


def test_a_consumer_that_dies_without_cleanup_leaves_its_jobs_to_another() -> None:
    """Regression: a consumer torn down with no release leaves its jobs to another
    consumer after the lease expires, with the attempt counted."""
    rec = Recorder()

    @rec.job("stuck")
    async def stuck(payload: Any, meta: quickq.JobMeta) -> None:
        if meta.attempt == 1:
            await trio.sleep_forever()

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "stuck", None)
        partition = Partition(store)
        with trio.CancelScope() as doomed:
            async with consumer(partition, rec, lease_duration=30, grace_period=0) as dying:
                await wait_until(lambda: dying.statistics().running == 1)
                partition.cut()  # it can no longer extend or release anything
                doomed.cancel()
        died_at = trio.current_time()
        async with consumer(store, rec, lease_duration=30) as c:
            await wait_until(lambda: c.statistics().completed == 1)
        assert [a for _, _, a, _ in rec.calls] == [1, 2]
        assert rec.times("stuck")[1] - died_at <= 30 + 1
        assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 0)

    run_virtual(main)


def test_graceful_shutdown_finishes_short_jobs_and_releases_long_ones() -> None:
    rec = Recorder()

    @rec.job("short")
    async def short(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(2)

    @rec.job("endless")
    async def endless(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(3600)

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue("t", "short", None)
        job = await queue.enqueue("u", "endless", None)
        async with consumer(store, rec, grace_period=5) as c:
            await wait_until(lambda: c.statistics().running == 2)
        stats = c.statistics()
        assert (stats.completed, stats.released) == (1, 1)
        assert math.isclose(trio.current_time(), rec.times("endless")[0] + 5, abs_tol=0.2)
        released = await queue.get_job("u", job.job_id)
        assert (released.state, released.attempt) == ("pending", 0)  # not counted

    run_virtual(main)


def test_a_hard_cancel_gives_back_every_job_of_a_batch_the_runners_hold() -> None:
    """The consumer is cancelled as the first job of a leased batch ends: that
    job is recorded, and the rest of the batch, still queued for the runners
    or just started, is given back unattempted, at once."""
    rec = Recorder()
    doomed = trio.CancelScope()

    @rec.job("b")
    async def b(payload: Any, meta: quickq.JobMeta) -> None:
        if payload == 0:
            doomed.cancel()
            return
        await trio.sleep(3600)

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue_many([quickq.NewJob("t", "b", i) for i in range(4)])
        with doomed:
            async with consumer(store, rec, concurrency=4, batch_size=4) as c:
                await trio.sleep_forever()
        stats = c.statistics()
        assert (stats.leased, stats.completed, stats.released, stats.running) == (4, 1, 3, 0)
        assert await queue.stats("t") == quickq.QueueStats("t", 3, 0, 0, 0)
        pending = await queue.list_jobs("t", "pending")
        assert [(job.state, job.attempt) for job in pending] == [("pending", 0)] * 3

    run_virtual(main)


def test_waiting_handlers_run_concurrency_at_a_time_in_as_many_runner_tasks() -> None:
    """Handlers that wait fill every slot (20 one-second jobs at concurrency 5
    take 4 s), and the runner tasks never outnumber the concurrency."""
    rec = Recorder()
    most = [0, 0]  # runner tasks, handlers running
    running = [0]

    @rec.job("r")
    async def r(payload: Any, meta: quickq.JobMeta) -> None:
        names = [t.name for t in _all_tasks(trio.lowlevel.current_root_task())]
        most[0] = max(most[0], sum("quickq runner" in name for name in names))
        running[0] += 1
        most[1] = max(most[1], running[0])
        await trio.sleep(1)
        running[0] -= 1

    async def main() -> None:
        store = MemoryStore()
        await queue_for(store, rec).enqueue_many([quickq.NewJob("t", "r", i) for i in range(20)])
        begin = trio.current_time()
        async with consumer(store, rec, concurrency=5, batch_size=10) as c:
            await wait_until(lambda: c.statistics().completed == 20)
            assert math.isclose(trio.current_time() - begin, 4, abs_tol=0.1)
        assert most == [5, 5]

    run_virtual(main)


def test_the_settlements_waiting_for_the_acker_stay_bounded() -> None:
    """Handlers that end at once outpace the commits of their settlements: the
    intake waits for the acker, so jobs leased and not yet recorded stay a
    few batches, not half of a long drain (whose leases would run out)."""
    from quickq._consumer._acker import ACK_BACKLOG

    rec = Recorder()
    most = [0]
    live: list[Any] = []

    @rec.job("q")
    async def q(payload: Any, meta: quickq.JobMeta) -> None:
        most[0] = max(most[0], live[0].statistics().running)

    async def main() -> None:
        store = MemoryStore()
        jobs = [quickq.NewJob("t", "q", i) for i in range(4000)]
        for start in range(0, len(jobs), 500):
            await queue_for(store, rec).enqueue_many(jobs[start : start + 500])
        async with consumer(store, rec, concurrency=32, batch_size=32) as c:
            live.append(c)
            await wait_until(lambda: c.statistics().completed == 4000, limit=600)
        assert most[0] <= ACK_BACKLOG + 2 * 32

    run_virtual(main)


def _all_tasks(task: Any) -> list[Any]:
    found = [task]
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            found += _all_tasks(child)
    return found


def test_store_faults_slow_the_consumer_but_lose_nothing() -> None:
    from quickq.stores import Faults

    rec = Recorder()

    @rec.job("n")
    async def n(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    async def main() -> None:
        faults = Faults(seed=3, conflict=0.2, unknown_applied=0.1, unknown_not_applied=0.1)
        store = MemoryStore(faults=faults)
        queue = queue_for(store, rec)
        await queue.enqueue_many([quickq.NewJob(f"q{i % 5}", "n", i) for i in range(200)])
        async with consumer(store, rec, concurrency=8) as c:
            await wait_until(lambda: len({p for _, p, _, _ in rec.calls}) == 200)
            await wait_until(
                lambda: c.statistics().completed + c.statistics().lost >= 200, limit=600
            )
        for i in range(5):
            assert await queue.stats(f"q{i}") == quickq.QueueStats(f"q{i}", 0, 0, 0, 0)

    run_virtual(main)


def test_serve_consumer_runs_in_the_callers_nursery() -> None:
    rec = Recorder()

    @rec.job("x")
    async def x(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    async def main() -> None:
        store = MemoryStore()
        await queue_for(store, rec).enqueue("t", "x", None)
        async with trio.open_nursery() as nursery:
            c = await nursery.start(
                lambda task_status: quickq.serve_consumer(
                    store, rec.jobs, clock=virtual_clock, task_status=task_status
                )
            )
            await wait_until(lambda: c.statistics().completed == 1)
            c.stop()
        assert len(rec.calls) == 1

    run_virtual(main)


@pytest.mark.anyio
async def test_the_consumer_runs_on_asyncio_and_trio() -> None:
    jobs = quickq.JobRegistry()
    done: list[int] = []

    @jobs.job("add")
    async def add(payload: Any, meta: quickq.JobMeta) -> int:
        done.append(payload)
        return int(payload)

    store = MemoryStore()
    queue = quickq.JobQueue(store, jobs)
    await queue.enqueue_many([quickq.NewJob("t", "add", i) for i in range(50)])
    async with quickq.open_consumer(store, jobs, concurrency=4) as c:
        import anyio

        with anyio.fail_after(10):
            while c.statistics().completed < 50:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    assert sorted(done) == list(range(50))


def test_dead_letters_can_be_replayed_and_purged() -> None:
    rec = Recorder()
    fail = {"on": True}

    @rec.job("maybe", max_retries=0)
    async def maybe(payload: Any, meta: quickq.JobMeta) -> None:
        if fail["on"]:
            raise ValueError("nope")

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        jobs = [await queue.enqueue("t", "maybe", i) for i in range(3)]
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 3)
            assert (await queue.stats("t")).dead == 3
            fail["on"] = False
            await queue.replay("t", jobs[0].job_id)
            await wait_until(lambda: c.statistics().completed == 1)
            await queue.purge("t", jobs[1].job_id)
            assert await queue.replay_all("t") == 1
            await wait_until(lambda: c.statistics().completed == 2)
        assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 0)
        with pytest.raises(quickq.JobNotFoundError):
            await queue.replay("t", jobs[1].job_id)

    run_virtual(main)


@pytest.mark.parametrize("fault", [CommitFault.UNKNOWN_APPLIED, CommitFault.UNKNOWN_NOT_APPLIED])
def test_cancel_replay_and_purge_report_their_work_after_commit_unknown(
    fault: CommitFault,
) -> None:
    """Re-run after a commit whose result came back unknown, each control call
    reports what it did (finding its receipt), not that the job is gone."""
    rec = Recorder()

    @rec.job("doomed", max_retries=0)
    async def doomed(payload: Any, meta: quickq.JobMeta) -> None:
        raise ValueError("nope")

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        dead = [await queue.enqueue("t", "doomed", i) for i in range(2)]
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 2)
        waiting = await queue.enqueue("t", "doomed", "later", delay=60)
        store.inject(fault)
        assert (await queue.cancel("t", waiting.job_id)).job_id == waiting.job_id
        store.inject(fault)
        await queue.purge("t", dead[0].job_id)
        store.inject(fault)
        await queue.replay("t", dead[1].job_id)
        assert await queue.stats("t") == quickq.QueueStats("t", 1, 0, 0, 0)

    run_virtual(main)


def test_wait_idle_returns_once_enqueued_work_is_done() -> None:
    rec = Recorder()

    @rec.job("w")
    async def w(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(1)

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        async with consumer(store, rec, concurrency=2) as c:
            await c.wait_idle()
            await queue.enqueue_many([quickq.NewJob("t", "w", i) for i in range(6)])
            await c.wait_idle()
            assert c.statistics().completed == 6
            assert round(trio.current_time()) == 3  # three rounds of two 1 s jobs
            await queue.enqueue("t", "w", "later", delay=60)
            await c.wait_idle()  # a scheduled job is not due: idle at once
            assert c.statistics().completed == 6

    run_virtual(main)


def test_events_report_each_attempt_with_its_latency_and_result() -> None:
    rec = Recorder()
    events: list[quickq.JobEvent] = []

    @rec.job("e", backoff=NO_JITTER)
    async def e(payload: Any, meta: quickq.JobMeta) -> Any:
        await trio.sleep(2)
        if meta.attempt == 1:
            raise KeyError("first")
        return {"ok": payload}

    async def main() -> None:
        store = MemoryStore()
        await queue_for(store, rec).enqueue("t", "e", 5, delay=10)
        async with consumer(store, rec, on_event=events.append) as c:
            await wait_until(lambda: c.statistics().completed == 1)
        kinds = [(ev.kind, ev.attempt) for ev in events]
        assert kinds == [("started", 1), ("retried", 1), ("started", 2), ("completed", 2)]
        wait, duration = events[0].wait, events[1].duration
        assert wait is not None and round(wait, 3) == 0  # started when due (to the ms)
        assert duration is not None and round(duration, 3) == 2
        assert events[1].error is not None and "KeyError" in events[1].error
        assert events[3].result == {"ok": 5}

    run_virtual(main)


def test_complete_with_writes_commits_them_exactly_once_with_the_completion() -> None:
    rec = Recorder()

    async def credit(tr: Transaction) -> None:
        raw = await tr.get(b"app/balance")
        tr.set(b"app/balance", str(int(raw or b"0") + 10).encode())

    @rec.job("pay")
    async def pay(payload: Any, meta: quickq.JobMeta) -> Any:
        return quickq.Complete(result="paid", writes=credit)

    @rec.job("pay-late")
    async def pay_late(payload: Any, meta: quickq.JobMeta) -> Any:
        if meta.attempt == 1:
            await steal_lease(store, queue, "t", meta.item_id)  # our lease is gone
        return quickq.Complete(writes=credit)

    @rec.job("pay-broken", max_retries=1, backoff=NO_JITTER)
    async def pay_broken(payload: Any, meta: quickq.JobMeta) -> Any:
        async def broken(tr: Transaction) -> None:
            tr.set(b"app/broken", b"1")
            raise ValueError("ledger closed")

        return quickq.Complete(writes=broken)

    store = MemoryStore()
    queue = queue_for(store, rec)

    async def main() -> None:
        await queue.enqueue("t", "pay", None)
        await queue.enqueue("t", "pay-late", None)
        await queue.enqueue("u", "pay-broken", None)
        async with consumer(store, rec) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
            await wait_until(lambda: c.statistics().completed == 1)
            await wait_until(lambda: c.statistics().lost == 1)
        assert store.raw_get(b"app/balance") == b"10"  # the lost attempt wrote nothing
        assert store.raw_get(b"app/broken") is None
        (dead,) = await queue.dead_letters("u")
        assert dead.error is not None and "ledger closed" in dead.error

    run_virtual(main)


@pytest.mark.anyio
async def test_bad_consumer_options_raise_a_quickq_error() -> None:
    store = MemoryStore()
    with pytest.raises(quickq.InvalidArgumentError, match="unknown consumer option"):
        async with quickq.open_consumer(store, quickq.JobRegistry(), concurency=3):  # type: ignore[call-arg]
            pass
    with pytest.raises(quickq.InvalidArgumentError, match="concurrency"):
        async with quickq.open_consumer(store, quickq.JobRegistry(), concurrency=0):
            pass


def test_consumer_options_are_exactly_the_config_records_fields() -> None:
    fields = {a.name for a in attrs.fields(quickq.ConsumerConfig)}
    assert set(quickq.ConsumerOptions.__annotations__) == fields
    for a in attrs.fields(quickq.ConsumerConfig):
        if a.name not in {"root", "clock", "codec", "on_event"}:
            assert a.metadata["help"], a.name  # quickq worker's flags show it


@pytest.mark.anyio
async def test_a_config_record_configures_the_consumer_and_options_override_it() -> None:
    store = MemoryStore()
    config = quickq.ConsumerConfig(concurrency=3, batch_size=2, root=("app",))
    async with quickq.open_consumer(store, quickq.JobRegistry(), config=config) as consumer:
        assert consumer.config is config
        assert consumer.settings is config  # the earlier name
    async with quickq.open_consumer(
        store, quickq.JobRegistry(), config=config, concurrency=5
    ) as consumer:
        assert consumer.config == attrs.evolve(config, concurrency=5)
    with pytest.raises(quickq.InvalidArgumentError, match="did you mean 'batch_size'"):
        async with quickq.open_consumer(store, quickq.JobRegistry(), config=config, batchsize=1):  # type: ignore[call-arg]
            pass
    with pytest.raises(
        quickq.InvalidArgumentError, match=r"config must be a quickq\.ConsumerConfig"
    ):
        async with quickq.open_consumer(store, quickq.JobRegistry(), config={"concurrency": 3}):  # type: ignore[arg-type]
            pass
    with pytest.raises(quickq.InvalidArgumentError, match="root must be a tuple"):
        quickq.ConsumerConfig(root="app")  # type: ignore[arg-type]
    assert quickq.ConsumerConfig() == quickq.ConsumerConfig(codec=None)  # a record, not an identity
