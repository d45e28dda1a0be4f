"""Defects the queue models found, each pinned by a small deterministic test.

Each test replays, with explicit times, a step sequence a model shrank to.
Tests of defects not yet fixed are marked ``xfail(strict=True)`` with the
reason, so they start failing the suite (as XPASS) the moment they are fixed.
"""

from __future__ import annotations

import attrs
import pytest

from quickq import CommitUnknownResultError, _core
from quickq._core import Action, Item, Layout, NewItem, Outcome, Settlement
from quickq.stores import CommitFault, MemoryStore, Transaction

from .support import enqueue_one

pytestmark = pytest.mark.anyio

T0 = 1_000_000
LEASE = 1_000
layout = Layout()


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def lease(store: MemoryStore, holder: str, now: int, *, qid: str = "q") -> list[Item]:
    token = f"{holder}-{now}"
    taken = await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, qid, holder, token, now, 300)
    )
    if not taken:
        return []
    batch = await store.transact(
        lambda tr: _core.lease_items(
            tr,
            layout,
            qid,
            holder=holder,
            token=token,
            batch_token=f"b-{token}",
            limit=10,
            now=now,
            lease_ms=LEASE,
            idle_gc_ms=2_000,
        )
    )
    return batch.items


async def settle(store: MemoryStore, item: Item, action: Action, now: int, **kw: object) -> Outcome:
    assert item.lease is not None
    s = Settlement(action, "q", item.item_id, item.lease.lease_id, **kw)  # type: ignore[arg-type]
    return await store.transact(lambda tr: _core.settle(tr, layout, s, lambda: now))


async def test_a_job_dead_lettered_by_lease_expiry_counts_that_attempt_as_an_error() -> None:
    """Found by the queue model. An expired lease counts as a failed attempt
    when the job is requeued (errors + 1), but when its attempts were spent it
    was dead-lettered with the error uncounted: a job with max_retries=0 died
    after one failed attempt with errors == 0. Fixed in ``_core._lease._promote``."""
    store = MemoryStore()
    await store.transact(
        lambda tr: enqueue_one(tr, layout, NewItem("q", "a", "t", b"{}", 0, T0, 0), T0)
    )
    assert len(await lease(store, "c1", T0)) == 1
    assert await lease(store, "c2", T0 + LEASE) == []  # expired: dead-lettered, not re-run
    (dead,) = await store.transact(lambda tr: _core.dead_letters(tr, layout, "q", 10))
    assert (dead.reason, dead.item.attempt, dead.item.errors) == ("failed", 1, 1)
    assert dead.item.last_error is not None and "lease expired" in dead.item.last_error


async def test_completing_after_the_job_was_dead_lettered_by_expiry_reports_lost() -> None:
    """Found by the queue model (1,500 examples of 100 steps), the same defect
    in another guise: c1's lease of a job with max_retries=0 expires, the next
    batch lease dead-letters it, and c1's late completion was reported
    COMPLETED for a job sitting in the dead letters. Completion receipts
    (d41ddc6) fixed both."""
    store = MemoryStore()
    await store.transact(
        lambda tr: enqueue_one(tr, layout, NewItem("q", "a", "t", b"{}", 0, T0, 0), T0)
    )
    (first,) = await lease(store, "c1", T0)
    assert await lease(store, "c2", T0 + LEASE) == []  # dead-lettered on expiry
    assert await settle(store, first, Action.COMPLETE, T0 + LEASE + 1) is Outcome.LOST


async def test_completing_after_the_lease_was_lost_and_the_job_rerun_reports_lost() -> None:
    """Found by the queue model. c1's lease expires, c2 re-runs the job and
    completes it; c1's late completion must be reported LOST (nothing it did
    was recorded), not COMPLETED, which the consumer counts in its statistics
    and emits as a "completed" event with the stale attempt's result."""
    store = MemoryStore()
    await store.transact(
        lambda tr: enqueue_one(tr, layout, NewItem("q", "a", "t", b"{}", 0, T0, 3), T0)
    )
    (first,) = await lease(store, "c1", T0)
    (second,) = await lease(store, "c2", T0 + LEASE)
    assert await settle(store, second, Action.COMPLETE, T0 + LEASE + 1) is Outcome.COMPLETED
    assert await settle(store, first, Action.COMPLETE, T0 + LEASE + 2) is Outcome.LOST


@pytest.mark.parametrize("fate", ["completed", "dead-lettered"])
async def test_enqueue_rerun_after_commit_unknown_does_not_recreate_a_finished_job(
    fate: str,
) -> None:
    """Issue 5 item 6: a body that runs twice must not create two jobs. The
    first commit applied but reported unknown; before the retry loop re-runs
    the body, a consumer leases the job and finishes it. Found by the queue
    model; fixed by enqueue receipts that outlive the item."""
    store = MemoryStore()
    new = NewItem("q", "generated-id-1", "t", b"{}", 0, T0, 0)

    async def body(tr: Transaction) -> tuple[Item, bool]:
        return await enqueue_one(tr, layout, new, T0)

    store.inject(CommitFault.UNKNOWN_APPLIED)
    tr = store.create_transaction()
    await body(tr)
    with pytest.raises(CommitUnknownResultError):
        await tr.commit()
    (item,) = await lease(store, "c1", T0)
    if fate == "completed":
        assert await settle(store, item, Action.COMPLETE, T0 + 1) is Outcome.COMPLETED
    else:
        assert await settle(store, item, Action.RETRY, T0 + 1, error="x") is Outcome.DEAD_LETTERED
    await store.transact(body)  # the retry loop's re-run of the same body
    counts = await store.transact(lambda tr: _core.counters(tr, layout, "q"))
    assert counts["pending"] == 0, "the job was enqueued a second time"


# Findings the queue model makes only in some runs (its step sequences are
# random): pinned here so that every run checks them.


async def test_a_lease_cannot_be_extended_at_exactly_its_expiry() -> None:
    """At its expiry a lease is lost (completion is fenced the same way), so
    extending it then must fail: another consumer may lease the job at that
    very millisecond."""
    store = MemoryStore()
    await store.transact(
        lambda tr: enqueue_one(tr, layout, NewItem("q", "a", "t", b"{}", 0, T0, 3), T0)
    )
    (item,) = await lease(store, "c1", T0)
    assert item.lease is not None
    lease_id = item.lease.lease_id

    async def extend(now: int) -> bool:
        return await store.transact(
            lambda tr: _core.extend_lease(tr, layout, "q", "a", lease_id, lambda: now, LEASE)
        )

    assert await extend(T0 + LEASE - 1)  # one millisecond before: still ours
    assert not await extend(T0 + 2 * LEASE - 1)  # exactly at the new expiry: lost
    (again,) = await lease(store, "c2", T0 + 2 * LEASE - 1)
    assert again.attempt == 2


async def test_a_lease_expiring_on_the_last_attempt_dead_letters_the_job() -> None:
    """max_retries=1: the first expired lease requeues the job, the second
    (its last attempt) dead-letters it, each counted as an error."""
    store = MemoryStore()
    await store.transact(
        lambda tr: enqueue_one(tr, layout, NewItem("q", "a", "t", b"{}", 0, T0, 1), T0)
    )
    (first,) = await lease(store, "c1", T0)
    (second,) = await lease(store, "c2", T0 + LEASE)  # the first lease expired
    assert (first.attempt, second.attempt, second.errors) == (1, 2, 1)
    assert await lease(store, "c3", T0 + 2 * LEASE) == []  # the last one expired
    (dead,) = await store.transact(lambda tr: _core.dead_letters(tr, layout, "q", 10))
    assert (dead.reason, dead.item.attempt, dead.item.errors) == ("failed", 2, 2)
    counts = await store.transact(lambda tr: _core.counters(tr, layout, "q"))
    assert counts == {"pending": 0, "scheduled": 0, "running": 0, "dead": 1}


async def test_re_enqueueing_the_custom_id_of_a_dead_letter_returns_it() -> None:
    """First enqueue wins, dead letters included: the dead job is returned,
    and nothing is enqueued or counted again."""
    store = MemoryStore()
    new = NewItem("q", "x", "t", b"{}", 0, T0, 0, custom_id=True)
    await store.transact(lambda tr: enqueue_one(tr, layout, new, T0))
    (item,) = await lease(store, "c1", T0)
    assert await settle(store, item, Action.RETRY, T0 + 1, error="boom") is Outcome.DEAD_LETTERED
    again = attrs.evolve(new, priority=7, token="another-call")
    found, created = await store.transact(lambda tr: enqueue_one(tr, layout, again, T0 + 2))
    assert not created
    assert (found.item_id, found.priority, found.attempt) == ("x", 0, 1)
    counts = await store.transact(lambda tr: _core.counters(tr, layout, "q"))
    assert counts == {"pending": 0, "scheduled": 0, "running": 0, "dead": 1}
    assert await lease(store, "c2", T0 + 3) == []
