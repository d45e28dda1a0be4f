"""Enqueue: options, defaults, ids, transactions, and bad input (which writes nothing)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import quickq
from quickq.stores import Transaction

from ._stores import TestStore, dump, read

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def make_queue(store: TestStore, **topic_options: Any) -> quickq.JobQueue:
    jobs = quickq.JobRegistry()

    @jobs.job("email:send", **topic_options)
    async def send(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    return quickq.JobQueue(store, jobs, clock=lambda: NOW)


async def test_enqueue_makes_a_pending_job_with_the_topic_defaults(store: TestStore) -> None:
    queue = make_queue(store, priority=50, max_retries=7)
    job = await queue.enqueue("tenant_1", "email:send", {"to": "a@example.com"})
    assert (job.state, job.priority, job.max_retries, job.attempt) == ("pending", 50, 7, 0)
    assert job.payload == {"to": "a@example.com"}
    assert await queue.get_job("tenant_1", job.job_id) == job
    assert await queue.stats("tenant_1") == quickq.QueueStats("tenant_1", 1, 0, 0, 0)
    assert await queue.queues() == ["tenant_1"]


async def test_per_job_options_override_the_topic_defaults(store: TestStore) -> None:
    queue = make_queue(store, priority=50, max_retries=7)
    job = await queue.enqueue("t", "email:send", None, priority=0, max_retries=1, timeout=2.5)
    assert (job.priority, job.max_retries) == (0, 1)


async def test_delay_and_at_schedule_the_job(store: TestStore) -> None:
    queue = make_queue(store)
    later = await queue.enqueue("t", "email:send", 1, delay=dt.timedelta(hours=1))
    assert later.state == "scheduled"
    assert later.run_at.timestamp() == NOW + 3600
    at = dt.datetime(2030, 1, 15, 10, 0, tzinfo=dt.UTC)
    scheduled = await queue.enqueue("t", "email:send", 2, at=at)
    assert scheduled.run_at == at
    past = await queue.enqueue("t", "email:send", 3, at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert past.state == "pending"
    assert await queue.stats("t") == quickq.QueueStats("t", 1, 2, 0, 0)


async def test_same_custom_id_twice_makes_one_job_and_the_counters_stay_right(
    store: TestStore,
) -> None:
    """Regression (Elixir defect): a repeated custom id must not corrupt counters."""
    queue = make_queue(store)
    first = await queue.enqueue("t", "email:send", {"n": 1}, job_id="order-42")
    again = await queue.enqueue("t", "email:send", {"n": 2}, job_id="order-42", delay=60)
    assert again == first  # first enqueue wins
    assert await queue.stats("t") == quickq.QueueStats("t", 1, 0, 0, 0)
    assert len(await queue.list_jobs("t", "pending")) == 1


async def test_enqueue_inside_a_failing_transaction_does_not_exist(store: TestStore) -> None:
    """Regression: a job enqueued in a transaction that then fails does not exist;
    one enqueued in a transaction that commits does."""
    queue = make_queue(store)

    class Boom(Exception):
        pass

    async def place_order_then_fail(tr: Transaction) -> None:
        tr.set(b"app/order/1", b"placed")
        await queue.enqueue("t", "email:send", {"order": 1}, tr=tr)
        raise Boom

    with pytest.raises(Boom):
        await store.transact(place_order_then_fail)
    assert await dump(store) == []

    async def place_order(tr: Transaction) -> quickq.Job:
        tr.set(b"app/order/2", b"placed")
        return await queue.enqueue("t", "email:send", {"order": 2}, tr=tr)

    job = await store.transact(place_order)
    assert await read(store, b"app/order/2") == b"placed"
    assert (await queue.get_job("t", job.job_id)).payload == {"order": 2}


async def test_enqueue_many_writes_all_jobs_in_one_transaction(store: TestStore) -> None:
    queue = make_queue(store)
    jobs = [quickq.NewJob(f"shop-{i % 3}", "email:send", {"i": i}) for i in range(30)]
    made = await queue.enqueue_many(jobs)
    assert [j.payload["i"] for j in made] == list(range(30))
    assert sorted(await queue.queues()) == ["shop-0", "shop-1", "shop-2"]
    assert (await queue.stats("shop-1")).pending == 10


async def test_a_bad_job_in_a_batch_writes_nothing(store: TestStore) -> None:
    queue = make_queue(store)
    jobs = [quickq.NewJob("t", "email:send", i) for i in range(5)]
    jobs.append(quickq.NewJob("t", "email:send", {1, 2}))  # a set is not JSON
    with pytest.raises(quickq.InvalidJobError):
        await queue.enqueue_many(jobs)
    assert await dump(store) == []


async def test_a_bad_job_in_the_callers_transaction_leaves_its_other_writes_alone(
    store: TestStore,
) -> None:
    queue = make_queue(store)

    async def body(tr: Transaction) -> None:
        tr.set(b"app/x", b"1")
        with pytest.raises(quickq.InvalidJobError):
            await queue.enqueue("t", "email:send", float("nan"), tr=tr)

    await store.transact(body)
    assert await dump(store) == [(b"app/x", b"1")]


BAD_INPUT: list[tuple[str, dict[str, Any]]] = [
    ("unknown option", {"in_": 5}),
    ("at and delay together", {"at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "delay": 1}),
    ("naive datetime", {"at": dt.datetime(2030, 1, 1)}),
    ("negative delay", {"delay": -1}),
    ("negative timedelta", {"delay": dt.timedelta(seconds=-5)}),
    ("infinite delay", {"delay": float("inf")}),
    ("priority not an int", {"priority": "high"}),
    ("bool priority", {"priority": True}),
    ("negative max_retries", {"max_retries": -1}),
    ("zero timeout", {"timeout": 0}),
    ("empty job id", {"job_id": ""}),
    ("job id not a str", {"job_id": 42}),
    ("job id too long", {"job_id": "x" * 300}),
]


@pytest.mark.parametrize(("case", "options"), BAD_INPUT, ids=[c for c, _ in BAD_INPUT])
async def test_bad_options_raise_and_write_nothing(
    store: TestStore, case: str, options: dict[str, Any]
) -> None:
    queue = make_queue(store)
    with pytest.raises(quickq.InvalidJobError):
        await queue.enqueue("t", "email:send", {}, **options)
    assert await dump(store) == [], case


@pytest.mark.parametrize(
    ("queue_id", "topic", "payload"),
    [
        ("", "email:send", {}),
        (None, "email:send", {}),
        ("t\ud800", "email:send", {}),  # a lone surrogate cannot be encoded
        ("t", "no spaces allowed", {}),
        ("t", "unregistered:topic", {}),
        ("t", "email:send", object()),
        ("t", "email:send", {"big": "x" * 200_000}),
    ],
    ids=["empty queue", "None queue", "surrogate", "bad topic", "unknown topic", "object", "huge"],
)
async def test_bad_arguments_raise_and_write_nothing(
    store: TestStore, queue_id: Any, topic: Any, payload: Any
) -> None:
    queue = make_queue(store)
    with pytest.raises(quickq.InvalidJobError):
        await queue.enqueue(queue_id, topic, payload)
    assert await dump(store) == []


async def test_queue_ids_cannot_reach_into_other_queues(store: TestStore) -> None:
    """Tuple encoding escapes every byte: look-alike ids stay in their own ranges."""
    queue = make_queue(store)
    tricky = ["a", "a\x00", "a\x00\xff", "a\xff", "a/b", "\x00", "a\x00\x02q"]
    for qid in tricky:
        await queue.enqueue(qid, "email:send", qid)
    for qid in tricky:
        jobs = await queue.list_jobs(qid, "pending")
        assert [j.payload for j in jobs] == [qid]
        assert (await queue.stats(qid)).pending == 1


async def test_without_a_registry_any_well_formed_topic_is_accepted(store: TestStore) -> None:
    queue = quickq.JobQueue(store, clock=lambda: NOW)
    job = await queue.enqueue("t", "anything:goes", [1, 2])
    assert (job.priority, job.max_retries) == (100, 3)


async def test_cancel_removes_a_pending_job(store: TestStore) -> None:
    queue = make_queue(store)
    job = await queue.enqueue("t", "email:send", 1, delay=10)
    cancelled = await queue.cancel("t", job.job_id)
    assert cancelled.job_id == job.job_id
    assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 0)
    with pytest.raises(quickq.JobNotFoundError):
        await queue.cancel("t", job.job_id)
    with pytest.raises(quickq.JobNotFoundError):
        await queue.get_job("t", job.job_id)


@pytest.mark.parametrize("qid_chars", [1, 256])
async def test_keys_up_to_the_store_limit_are_taken_and_one_byte_more_is_refused(
    qid_chars: int,
) -> None:
    from quickq._core import Layout
    from quickq._queue import MAX_KEY_BYTES

    qid, job_id = "\U0001f600" * qid_chars, "\x00" * 100  # 4 bytes a char; 2 once escaped
    # The root whose longest job key is exactly the limit.
    key = quickq._core.NewItem(qid, job_id, "t", b"", -(2**31), 10**14, 0).longest_key(
        Layout(("",))
    )
    root = ("x" * (MAX_KEY_BYTES - key),)
    store = quickq.stores.MemoryStore()
    at = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # the longest vesting time
    queue = quickq.JobQueue(store, root=root, clock=lambda: NOW)
    await queue.enqueue(qid, "t", None, job_id=job_id, priority=-(2**31), at=at)
    longer = quickq.JobQueue(store, root=(root[0] + "x",), clock=lambda: NOW)
    with pytest.raises(quickq.InvalidJobError, match="make a key over 10000 bytes"):
        await longer.enqueue(qid, "t", None, job_id=job_id, priority=-(2**31), at=at)
    with pytest.raises(quickq.InvalidJobError, match="make a key over"):
        await quickq.JobQueue(store, root=("x" * MAX_KEY_BYTES,)).enqueue("q", "t")
