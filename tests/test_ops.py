"""The transactional operations, driven directly with explicit times."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from quickq import ConflictError, _core
from quickq._core import Action, Item, Layout, NewItem, Outcome, Settlement
from quickq.stores import CommitFault, Transaction

from ._stores import TestStore, dump, read
from .model.support import enqueue_one

pytestmark = pytest.mark.anyio
T = TypeVar("T")

T0 = 1_000_000
LEASE = 30_000
layout = Layout()


def new(
    item_id: str, *, qid: str = "q", priority: int = 100, vesting: int = T0, retries: int = 3
) -> NewItem:
    return NewItem(qid, item_id, "t", b"{}", priority, vesting, retries)


async def put(store: TestStore, *items: NewItem, now: int = T0) -> None:
    async def body(tr: Transaction) -> None:
        for item in items:
            await enqueue_one(tr, layout, item, now)

    await store.transact(body)


async def lease(
    store: TestStore, qid: str = "q", *, now: int = T0, limit: int = 10, holder: str = "c1"
) -> list[Item]:
    """Take the queue lease, then lease up to *limit* items, as a consumer does."""
    taken = await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, qid, holder, "tok", now, 5_000)
    )
    if not taken:
        return []
    batch = await store.transact(
        lambda tr: _core.lease_items(
            tr,
            layout,
            qid,
            holder=holder,
            token="tok",
            batch_token=f"b{now}",
            limit=limit,
            now=now,
            lease_ms=LEASE,
            idle_gc_ms=60_000,
        )
    )
    return batch.items


async def settle(store: TestStore, s: Settlement, now: int) -> Outcome:
    return await store.transact(lambda tr: _core.settle(tr, layout, s, lambda: now))


async def counts(store: TestStore, qid: str = "q") -> dict[str, int]:
    return await store.transact(lambda tr: _core.counters(tr, layout, qid))


async def test_future_jobs_of_better_priority_do_not_hide_a_ready_job(store: TestStore) -> None:
    """Regression (Elixir defect): 100 future jobs at priority 0 do not hide a
    ready job at priority 100."""
    future = [new(f"f{i}", priority=0, vesting=T0 + 60_000 + i) for i in range(100)]
    await put(store, *future, new("ready", priority=100))
    leased = await lease(store, limit=1)
    assert [i.item_id for i in leased] == ["ready"]


async def test_ready_jobs_run_in_priority_then_vesting_order(store: TestStore) -> None:
    await put(
        store,
        new("late-urgent", priority=0, vesting=T0 - 10),
        new("early-normal", priority=100, vesting=T0 - 1000),
        new("early-urgent", priority=0, vesting=T0 - 500),
    )
    leased = await lease(store, limit=3)
    assert [i.item_id for i in leased] == ["early-urgent", "late-urgent", "early-normal"]


async def test_a_second_consumer_sees_the_queue_lease_and_stays_away(store: TestStore) -> None:
    """Regression (Elixir defect): the queue lease is committed on its own, so a
    second consumer sees it and does not dequeue that queue at the same time."""
    await put(store, new("a"), new("b"))
    assert await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", "x", T0, 5_000)
    )
    assert await store.transact(lambda tr: _core.due_queues(tr, layout, T0, 100)) == []
    assert not await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, "q", "c2", "y", T0, 5_000)
    )
    # Once the queue lease expires (its holder died), another consumer can take it.
    later = T0 + 5_000
    assert await store.transact(lambda tr: _core.due_queues(tr, layout, later, 100)) == ["q"]
    assert await lease(store, now=later, holder="c2") != []


async def test_dead_letters_never_sit_in_the_item_range_or_block_a_scan(store: TestStore) -> None:
    """Regression (Elixir defect): dead letters live in their own range."""
    await put(store, *(new(f"d{i}", retries=0) for i in range(20)))
    for item in await lease(store, limit=20):
        assert item.lease is not None
        s = Settlement(Action.RETRY, "q", item.item_id, item.lease.lease_id, error="boom")
        assert await settle(store, s, T0 + 1) is Outcome.DEAD_LETTERED
    assert (await counts(store))["dead"] == 20
    item_begin, item_end = layout.range("q", "i")
    ready_begin, ready_end = layout.range("q", "r")
    for key, _ in await dump(store):
        assert not item_begin <= key < item_end
        assert not ready_begin <= key < ready_end
    await put(store, new("fresh"), now=T0 + 2)
    assert [i.item_id for i in await lease(store, now=T0 + 2)] == ["fresh"]


async def test_completion_is_fenced_by_the_lease_id_and_expiry(store: TestStore) -> None:
    await put(store, new("a"))
    (item,) = await lease(store)
    assert item.lease is not None
    done = Settlement(Action.COMPLETE, "q", "a", item.lease.lease_id)
    assert await settle(store, done, T0 + LEASE) is Outcome.LOST  # expired at T0 + LEASE
    stolen = Settlement(Action.COMPLETE, "q", "a", "someone-else")
    assert await settle(store, stolen, T0 + 1) is Outcome.LOST
    assert await settle(store, done, T0 + 1) is Outcome.COMPLETED
    assert await counts(store) == {"pending": 0, "scheduled": 0, "running": 0, "dead": 0}


async def test_an_expired_lease_returns_the_job_with_its_attempt_counted(store: TestStore) -> None:
    await put(store, new("a"))
    (first,) = await lease(store, holder="c1")
    assert await lease(store, now=T0 + LEASE - 1, holder="c2") == []
    (second,) = await lease(store, now=T0 + LEASE, holder="c2")
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.last_error is not None and "lease expired" in second.last_error


@pytest.mark.parametrize("fault", [CommitFault.UNKNOWN_APPLIED, CommitFault.UNKNOWN_NOT_APPLIED])
async def test_every_operation_is_idempotent_under_commit_unknown_result(
    store: TestStore,
    fault: CommitFault,
) -> None:
    if not hasattr(store, "inject"):
        pytest.skip("this store cannot inject faults (a real cluster fails when it fails)")
    store.inject(fault)
    await put(store, new("a"), new("b"), new("c"))
    assert await counts(store) == {"pending": 3, "scheduled": 0, "running": 0, "dead": 0}
    await store.transact(lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", "tok", T0, 5_000))
    store.inject(fault)
    batch = await store.transact(
        lambda tr: _core.lease_items(
            tr, layout, "q", holder="c1", token="tok", batch_token="b1", limit=2,
            now=T0, lease_ms=LEASE, idle_gc_ms=60_000,
        )
    )  # fmt: skip
    assert sorted(i.item_id for i in batch.items) == ["a", "b"]
    assert await counts(store) == {"pending": 1, "scheduled": 0, "running": 2, "dead": 0}
    a, b = sorted(batch.items, key=lambda i: i.item_id)
    assert a.lease and b.lease
    for s, expected in [
        (Settlement(Action.COMPLETE, "q", "a", a.lease.lease_id), Outcome.COMPLETED),
        (Settlement(Action.RETRY, "q", "b", b.lease.lease_id, delay_ms=1000), Outcome.RETRIED),
    ]:
        store.inject(fault)
        assert await settle(store, s, T0 + 1) is expected
    assert await counts(store) == {"pending": 1, "scheduled": 1, "running": 0, "dead": 0}


async def test_an_idle_queue_pointer_is_collected_after_the_idle_time(store: TestStore) -> None:
    await put(store, new("a"))
    (item,) = await lease(store)
    assert item.lease is not None
    await settle(store, Settlement(Action.COMPLETE, "q", "a", item.lease.lease_id), T0 + 1)
    # The pointer still points at the (now gone) lease: the next visit finds the
    # queue empty and parks the pointer for the idle time, the one after removes it.
    assert await lease(store, now=T0 + LEASE) == []
    assert await read(store, layout.queue_pointer("q")) is not None
    assert await lease(store, now=T0 + LEASE + 60_000) == []
    assert await read(store, layout.queue_pointer("q")) is None
    assert await store.transact(lambda tr: _core.next_due_time(tr, layout)) is None
    # Enqueueing again brings the pointer back.
    await put(store, new("b"), now=T0 + 100_000)
    assert [i.item_id for i in await lease(store, now=T0 + 100_000)] == ["b"]


async def test_enqueue_receipts_expire_after_their_keeping_time(store: TestStore) -> None:
    await put(store, new("a"))
    receipts = layout.receipts_before(2**40)
    assert len(await store.transact(lambda tr: tr.get_range(*receipts))) == 1

    async def forget(tr: Transaction, now: int) -> None:
        _core.forget_receipts(tr, layout, now)

    await store.transact(lambda tr: forget(tr, T0 + _core.RECEIPT_KEEP_MS))
    assert len(await store.transact(lambda tr: tr.get_range(*receipts))) == 1  # still kept
    await store.transact(lambda tr: forget(tr, T0 + _core.RECEIPT_KEEP_MS + 60_000))
    assert await store.transact(lambda tr: tr.get_range(*receipts)) == []


async def test_a_lease_batch_stops_at_about_a_megabyte_of_payloads(store: TestStore) -> None:
    big = b"x" * 95_000
    for n in range(12):  # one transaction each: 12 x 95 kB would exceed a megabyte
        await put(store, NewItem("q", f"i{n:02}", "t", big, 100, T0, 3))
    first = await lease(store, limit=20)
    assert len(first) == 11  # the 11th takes the batch past _core.LEASE_BYTES
    # The queue stays due for the rest, at once.
    assert [i.item_id for i in await lease(store, now=T0 + 1, limit=20)] == ["i11"]


async def test_a_store_of_json_records_is_leased_settled_and_replayed(store: TestStore) -> None:
    """Records written before the binary format (JSON headers) keep working:
    leased, retried, completed, dead-lettered and replayed, and each one the
    queue rewrites is rewritten in the binary format."""
    await put(store, new("a"), new("b"), new("c", retries=0), new("later", vesting=T0 + 60_000))

    async def to_json(tr: Transaction) -> None:
        for item_id in ("a", "b", "c", "later"):
            raw = await tr.get(layout.item("q", item_id))
            assert raw is not None and raw[:1] == b"\x01"
            tr.set(layout.item("q", item_id), Item.from_bytes(raw).to_json_bytes())

    await store.transact(to_json)
    a, b, c = sorted(await lease(store, limit=3), key=lambda i: i.item_id)
    assert a.lease and b.lease and c.lease
    for item_id in ("a", "b", "c"):
        raw = await read(store, layout.item("q", item_id))
        assert raw is not None and raw[:1] == b"\x01"
    untouched = await read(store, layout.item("q", "later"))  # not due: not rewritten
    assert untouched is not None and untouched[:1] == b"{"
    now = T0 + 1
    done = Settlement(Action.COMPLETE, "q", "a", a.lease.lease_id)
    retry = Settlement(Action.RETRY, "q", "b", b.lease.lease_id, delay_ms=10, error="boom")
    dead = Settlement(Action.RETRY, "q", "c", c.lease.lease_id, error="gone")
    assert [await settle(store, s, now) for s in (done, retry, dead)] == [
        Outcome.COMPLETED,
        Outcome.RETRIED,
        Outcome.DEAD_LETTERED,
    ]

    async def dead_to_json(tr: Transaction) -> None:
        raw = await tr.get(layout.dead_letter("q", "c"))
        assert raw is not None
        head, _, record = raw.partition(b"\x00")
        tr.set(
            layout.dead_letter("q", "c"), head + b"\x00" + Item.from_bytes(record).to_json_bytes()
        )

    await store.transact(dead_to_json)
    (letter,) = await store.transact(lambda tr: _core.dead_letters(tr, layout, "q", 10))
    assert (letter.item.item_id, letter.error, letter.item.last_error) == ("c", "gone", "gone")
    assert await store.transact(lambda tr: _core.replay_dead_letter(tr, layout, "q", "c", now))
    later = T0 + 60_000
    leased = await lease(store, now=later, limit=10)
    assert sorted((i.item_id, i.attempt) for i in leased) == [("b", 2), ("c", 1), ("later", 1)]
    assert await counts(store) == {"pending": 0, "scheduled": 0, "running": 3, "dead": 0}


# -- interleavings: a transaction open while another commits ----------------------


async def interleave(
    store: TestStore,
    first: Callable[[Transaction], Awaitable[T]],
    meanwhile: Callable[[Transaction], Awaitable[object]],
) -> T:
    """Run *first* in a transaction, commit *meanwhile* whole before it commits,
    then commit *first*; on a conflict re-run it, as the retry loop would."""
    tr = store.create_transaction()
    result = await first(tr)
    await store.transact(meanwhile)
    try:
        await tr.commit()
    except ConflictError:
        return await store.transact(first)
    return result


def leasing(now: int = T0, limit: int = 10) -> Callable[[Transaction], Awaitable[_core.LeaseBatch]]:
    return lambda tr: _core.lease_items(
        tr, layout, "q", holder="c1", token="tok", batch_token="b1", limit=limit,
        now=now, lease_ms=LEASE, idle_gc_ms=60_000,
    )  # fmt: skip


def enqueuing(item: NewItem, now: int = T0) -> Callable[[Transaction], Awaitable[object]]:
    return lambda tr: enqueue_one(tr, layout, item, now)


async def due(store: TestStore, now: int) -> list[str]:
    return await store.transact(lambda tr: _core.due_queues(tr, layout, now, 10))


async def test_a_job_made_ready_while_a_batch_drains_the_queue_is_not_stranded(
    store: TestStore,
) -> None:
    """The batch peeks the ready range (snapshot) and drains it, so it moves
    the pointer to the next lease expiry; a job enqueued ready meanwhile (its
    enqueue leaves the leased pointer alone) must make the batch conflict, or
    it waits for that expiry with its queue not due."""
    await put(store, new("a"))
    await store.transact(lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", "tok", T0, 5_000))
    batch = await interleave(store, leasing(), enqueuing(new("b")))
    leased = [i.item_id for i in batch.items]
    assert leased == ["a", "b"] or (leased == ["a"] and await due(store, T0) == ["q"])


async def test_a_job_scheduled_before_the_next_due_time_while_a_batch_runs_is_not_stranded(
    store: TestStore,
) -> None:
    """Releasing the queue lease, the batch sets the pointer to the earliest
    scheduled or leased entry it sees (snapshot); one scheduled earlier
    meanwhile must make it conflict, or the pointer skips past it."""
    await put(store, new("a"), new("later", vesting=T0 + 5_000))
    await store.transact(lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", "tok", T0, 5_000))
    batch = await interleave(store, leasing(), enqueuing(new("soon", vesting=T0 + 1_000)))
    assert [i.item_id for i in batch.items] == ["a"]
    assert await due(store, T0 + 1_000) == ["q"], "the job scheduled meanwhile is stranded"
    assert [i.item_id for i in await lease(store, now=T0 + 1_000)] == ["soon"]


# -- due marks: producers and leasing never conflict --------------------------


async def committed_meanwhile(
    store: TestStore,
    first: Callable[[Transaction], Awaitable[T]],
    meanwhile: Callable[[Transaction], Awaitable[object]],
) -> T:
    """As :func:`interleave`, but *first* must commit without a conflict."""
    tr = store.create_transaction()
    result = await first(tr)
    await store.transact(meanwhile)
    await tr.commit()  # a ConflictError here fails the test
    return result


@pytest.mark.parametrize("marked_before", [False, True])
async def test_an_enqueue_during_a_batch_lease_conflicts_with_nothing_and_is_not_stranded(
    store: TestStore, marked_before: bool
) -> None:
    """An enqueue writes its queue's due mark blindly and the batch clears
    only the mark it read (compare-and-clear), so neither conflicts and the
    job enqueued meanwhile keeps its queue due. *marked_before*: a job
    enqueued under the queue lease left a mark that the batch reads."""
    await put(store, new("a"))
    await store.transact(lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", "tok", T0, 5_000))
    if marked_before:
        await put(store, new("b"))
    batch = await committed_meanwhile(store, leasing(), enqueuing(new("c")))
    leased = [i.item_id for i in batch.items]
    assert leased == (["a", "b"] if marked_before else ["a"])
    assert await due(store, T0) == ["q"], "the job enqueued meanwhile is stranded"
    assert [i.item_id for i in await lease(store, now=T0 + 1)] == ["c"]
    assert await due(store, T0 + 1) == []


async def test_taking_the_queue_lease_does_not_conflict_with_an_enqueue(store: TestStore) -> None:
    """The queue lease reads the mark as a snapshot: an enqueue committing
    meanwhile does not make it conflict, and its mark survives the lease."""
    await put(store, new("a"))

    def taking(tr: Transaction) -> Awaitable[bool]:
        return _core.take_queue_lease(tr, layout, "q", "c1", "tok", T0, 5_000)

    assert await committed_meanwhile(store, taking, enqueuing(new("b")))
    batch = await committed_meanwhile(store, leasing(), enqueuing(new("c")))
    assert [i.item_id for i in batch.items] == ["a", "b"]
    assert [i.item_id for i in await lease(store, now=T0 + 1)] == ["c"]


async def test_a_delayed_enqueue_moves_the_pointer_and_sends_no_consumer_now(
    store: TestStore,
) -> None:
    """A job enqueued for later into a queue nobody holds moves the queue's
    pointer to its time, with no due mark: 100,000 tenants with a reminder
    each must not each cost a consumer a visit now."""
    await put(store, new("later", vesting=T0 + 5_000))
    assert await store.transact(lambda tr: tr.get_range(*layout.marks_range())) == []
    assert await due(store, T0) == []
    assert await due(store, T0 + 5_000) == ["q"]
    assert [i.item_id for i in await lease(store, now=T0 + 5_000)] == ["later"]


async def test_a_delayed_enqueue_into_a_held_queue_marks_it(store: TestStore) -> None:
    """A queue whose lease a consumer holds keeps its pointer (the holder
    moves it on release); the delayed job marks the queue instead, and the
    job is leased at its time."""
    await put(store, new("a"))
    token = "t1"
    assert await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", token, T0, 1_000)
    )
    await put(store, new("later", vesting=T0 + 5_000))
    marks = await store.transact(lambda tr: tr.get_range(*layout.marks_range()))
    assert [layout.parse_mark(key) for key, _ in marks] == ["q"]
    leased = []
    for now in (T0 + 2_000, T0 + 5_000):
        leased += [i.item_id for i in await lease(store, now=now)]
    assert sorted(leased) == ["a", "later"]


async def test_a_queue_with_a_pointer_and_no_mark_is_served(store: TestStore) -> None:
    """Queues written before due marks existed have a pointer row and no
    mark: they are found and leased from as before."""
    await put(store, new("a"))
    assert await lease(store, now=T0, limit=0) == []  # clears the mark, leaves a due pointer
    assert await store.transact(lambda tr: tr.get_range(*layout.marks_range())) == []
    assert await due(store, T0) == ["q"]
    assert [i.item_id for i in await lease(store, now=T0 + 1)] == ["a"]


async def test_an_enqueue_bumps_only_its_queues_wake_shard(store: TestStore) -> None:
    """The wake-up signal is sharded by queue: an enqueue adds one to its
    queue's shard and writes no other wake-up key (the old single key
    ``(w,)`` included)."""
    await put(store, new("a"), new("b", qid="other"))
    counters = await store.transact(lambda tr: _core.wake_counters(tr, layout))
    bumped = {key for key, value in counters.items() if value is not None}
    assert bumped == {layout.wake_key("q"), layout.wake_key("other")}
    assert layout.wake not in bumped
