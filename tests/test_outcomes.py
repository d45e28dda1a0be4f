"""One job can never crash a consumer: whatever a handler returns or raises,
the attempt ends as something the queue records (completed, retried, dead),
the consumer keeps serving other jobs, and every ended attempt is reported
exactly once. In virtual time, on the memory store."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import pytest
import trio

import quickq
from quickq import StoreError
from quickq.stores import MemoryStore

from ._stores import run_virtual, virtual_clock

Handler = Callable[[Any, quickq.JobMeta], Awaitable[Any]]


class Boom(BaseException):
    """A BaseException that is not a cancellation."""


def _bypassed(cls: type, **fields: Any) -> Any:
    """An instance of a frozen outcome class with *fields* set past its validators
    (as a subclass or a careless copy could make one)."""
    obj: Any = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


async def _drain(
    outcomes: dict[str, Callable[[], Any]], *, backoff: quickq.Backoff | None = None
) -> tuple[MemoryStore, quickq.JobQueue, list[quickq.JobEvent], quickq.ConsumerStatistics]:
    """Run one job per entry of *outcomes* (its handler returns what the entry
    makes, or raises it) plus a healthy job, until nothing is due."""
    jobs = quickq.JobRegistry()
    events: list[quickq.JobEvent] = []

    async def poison(payload: Any, meta: quickq.JobMeta) -> Any:
        made = outcomes[payload]()
        if isinstance(made, BaseException):
            raise made
        return made

    async def healthy(payload: Any, meta: quickq.JobMeta) -> str:
        return "fine"

    options: dict[str, Any] = {"max_retries": 1}
    if backoff is not None:
        options["backoff"] = backoff
    jobs.add(quickq.JobDefinition("poison", poison, **options))
    jobs.add(quickq.JobDefinition("healthy", healthy))
    store = MemoryStore()
    queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
    for name in outcomes:
        await queue.enqueue("t", "poison", name, job_id=name)
    await queue.enqueue("t", "healthy", None, job_id="healthy")
    async with quickq.open_consumer(
        store, jobs, clock=virtual_clock, on_event=events.append
    ) as consumer:
        with trio.fail_after(3600):
            await consumer.wait_idle()
            await trio.sleep(60)  # the retries' backoff (at most 2 s, jittered)
            await consumer.wait_idle()
        stats = consumer.statistics()
    return store, queue, events, stats


POISON: dict[str, Callable[[], Any]] = {
    "snooze-nan": lambda: quickq.Snooze(math.nan),
    "snooze-inf": lambda: quickq.Snooze(math.inf),
    "snooze-huge": lambda: quickq.Snooze(1e300),
    "snooze-str": lambda: quickq.Snooze("1"),  # type: ignore[arg-type]
    "discard-object": lambda: quickq.Discard(object()),  # type: ignore[arg-type]
    "snooze-bypassed-nan": lambda: _bypassed(quickq.Snooze, seconds=math.nan),
    "snooze-bypassed-huge": lambda: _bypassed(quickq.Snooze, seconds=1e300),
    "discard-bypassed-object": lambda: _bypassed(quickq.Discard, reason=object()),
    "base-exception": lambda: Boom("not a cancellation"),
    "system-exit": lambda: SystemExit(3),
    "keyboard-interrupt": lambda: KeyboardInterrupt(),
    "exception-group": lambda: ExceptionGroup("many", [ValueError("a"), KeyError("b")]),
    "unprintable": lambda: _Unprintable(),
}


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def test_no_outcome_or_exception_crashes_the_consumer() -> None:
    async def main() -> None:
        _, queue, events, stats = await _drain(POISON)
        dead = {d.job.job_id: d for d in await queue.dead_letters("t")}
        assert set(dead) == set(POISON)
        for name, letter in dead.items():
            # Counted as attempts: two attempts each (max_retries=1), both failures.
            assert letter.job.attempt == 2, name
            assert letter.job.errors == 2, name
            assert letter.reason == "failed", name
            assert letter.error, name
        assert "cannot be recorded" in (dead["snooze-bypassed-nan"].error or "")
        assert "Snooze seconds must be" in (dead["snooze-nan"].error or "")
        assert "Boom" in (dead["base-exception"].error or "")
        assert stats.completed == 1  # the healthy job ran despite its neighbours
        ends = Counter(e.kind for e in events if e.kind != "started")
        starts = sum(e.kind == "started" for e in events)
        assert starts == sum(ends.values()) == 2 * len(POISON) + 1
        assert ends == {"retried": len(POISON), "dead": len(POISON), "completed": 1}

    run_virtual(main)


def test_a_backoff_that_cannot_make_a_delay_falls_back_to_the_default() -> None:
    broken = _bypassed(quickq.Backoff, base=math.nan, factor=2.0, cap=math.inf, jitter=0.0)

    async def main() -> None:
        _, queue, _, _ = await _drain({"fails": lambda: ValueError("x")}, backoff=broken)
        (letter,) = await queue.dead_letters("t")
        assert letter.job.attempt == 2 and "ValueError" in (letter.error or "")

    run_virtual(main)


def test_a_handler_timeout_is_a_failure_not_a_crash() -> None:
    jobs = quickq.JobRegistry()

    @jobs.job("slow", max_retries=0, timeout=1)
    async def slow(payload: Any, meta: quickq.JobMeta) -> None:
        async with trio.open_nursery() as nursery:  # a nursery cancelled mid-flight
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        await queue.enqueue("t", "slow")
        async with quickq.open_consumer(store, jobs, clock=virtual_clock) as consumer:
            await consumer.wait_idle()
        (letter,) = await queue.dead_letters("t")
        assert letter.error == "timed out after 1.0s"

    run_virtual(main)


class _BrokenWatch(MemoryStore):
    """A store whose watches fail (FoundationDB: too many watches, 1032)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_watches = 0

    async def wait_for_change(self, key: bytes, seen: bytes | None) -> None:
        self.failed_watches += 1
        await trio.sleep(0.01)
        raise StoreError("watch failed (injected)")

    async def wait_for_any_change(self, seen: Mapping[bytes, bytes | None]) -> None:
        await self.wait_for_change(b"", None)  # the consumer watches every wake-up shard


def test_a_failing_watch_falls_back_to_polling() -> None:
    jobs = quickq.JobRegistry()
    done: list[int] = []

    @jobs.job("ok")
    async def ok(payload: Any, meta: quickq.JobMeta) -> None:
        done.append(payload)

    async def main() -> None:
        store = _BrokenWatch()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        async with quickq.open_consumer(store, jobs, clock=virtual_clock) as consumer:
            for n in range(5):
                await trio.sleep(30)  # idle: the consumer waits on its (broken) watch
                await queue.enqueue("t", "ok", n)
            await consumer.wait_idle()
        assert done == [0, 1, 2, 3, 4]
        assert store.failed_watches >= 2
        # Backed off to one watch per 5 s, not one per second's idle poll.
        assert store.failed_watches < 150 / 5 + 10, store.failed_watches

    run_virtual(main)


def test_cancelled_jobs_report_released_once_each() -> None:
    jobs = quickq.JobRegistry()
    events: list[quickq.JobEvent] = []

    @jobs.job("forever")
    async def forever(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep_forever()

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        for n in range(3):
            await queue.enqueue("t", "forever", n)
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, grace_period=1, on_event=events.append
        ) as consumer:
            while consumer.statistics().running < 3:  # noqa: ASYNC110 (observed from outside)
                await trio.sleep(0.1)
        assert Counter(e.kind for e in events) == {"started": 3, "released": 3}
        assert consumer.statistics().released == 3
        assert (await queue.stats("t")).pending == 3

    run_virtual(main)


def test_stored_records_with_unrepresentable_times_stay_readable() -> None:
    """A record written before times were bounded (vesting far past year 9999)
    must not make the whole store unreadable."""
    from quickq._core import Layout

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock)
        job = await queue.enqueue("t", "ok", None, delay=10)
        layout = Layout()
        key = layout.item("t", job.job_id)
        raw = store.raw_get(key)
        assert raw is not None
        item = attrs.evolve(
            quickq._core.Item.from_bytes(raw), vesting=10**300, enqueued_at=-(10**300)
        )
        store.raw_set(key, item.to_bytes())
        got = await queue.get_job("t", job.job_id)
        assert got.run_at.year == 9999 and got.enqueued_at.year == 1
        assert [j.job_id for j in await queue.list_jobs("t", "scheduled")] == [job.job_id]

    run_virtual(main)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda q: q.enqueue("t", "ok", None, delay=1e300), "delay"),
        (lambda q: q.enqueue("t", "ok", None, delay=math.nan), "delay"),
        (lambda q: q.enqueue("t", "ok", None, timeout=math.inf), "timeout"),
        (lambda q: q.enqueue("t", "ok", None, priority=10**1000), "priority"),
        (lambda q: q.enqueue("t", "ok", None, max_retries=True), "max_retries"),
        (lambda q: q.list_jobs("t", "pending", limit=-1), "limit"),
        (lambda q: q.dead_letters("t", limit=1.5), "limit"),
        (lambda q: q.get_job("t", 7), "job_id"),
        (lambda q: q.enqueue("t", "ok", _nested(100_000)), "payload"),
    ],
)
def test_bad_arguments_raise_the_argument_error_before_writing(
    call: Callable[[quickq.JobQueue], Awaitable[Any]], argument: str
) -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock)
        with pytest.raises(quickq.InvalidArgumentError, match=argument) as info:
            await call(queue)
        assert len(str(info.value)) < 300  # the value is shown shortened
        assert store.raw_items() == []

    run_virtual(main)


def _nested(depth: int) -> Any:
    payload: Any = []
    for _ in range(depth):
        payload = [payload]
    return payload


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"concurrency": 1.5}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"lease_duration": math.nan}, "lease_duration"),
        ({"lease_duration": math.inf}, "lease_duration"),
        ({"grace_period": -1}, "grace_period"),
        ({"grace_period": math.nan}, "grace_period"),
        ({"selection_fraction": 0}, "selection_fraction"),
        ({"concurency": 3}, "did you mean 'concurrency'"),
        ({"on_event": "print"}, "on_event"),
        ({"root": "quickq"}, "root"),
    ],
)
def test_bad_consumer_options_are_refused_before_it_starts(
    options: dict[str, Any], argument: str
) -> None:
    async def main() -> None:
        store = MemoryStore()
        with pytest.raises(quickq.InvalidArgumentError, match=argument):
            async with quickq.open_consumer(store, quickq.JobRegistry(), **options):
                pytest.fail("the consumer started")
        assert store.raw_items() == []

    run_virtual(main)


def test_a_registry_refuses_what_could_never_run() -> None:
    registry = quickq.JobRegistry()

    def sync_handler(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    with pytest.raises(quickq.InvalidArgumentError, match="async function"):
        registry.job("sync")(sync_handler)  # type: ignore[arg-type]
    with pytest.raises(quickq.InvalidJobError, match="timeout"):
        registry.job("zero", timeout=0)
    with pytest.raises(quickq.InvalidArgumentError, match=r"jobs must be a quickq\.JobRegistry"):
        quickq._consumer._make_consumer(MemoryStore(), {}, {})  # type: ignore[arg-type]
    assert len(registry) == 0
