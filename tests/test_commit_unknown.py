"""Maybe-committed outcomes stay exact.

A commit whose result is unknown may have landed. The caller's own
``store.transact(body)`` re-runs the body, and quickq's work joined to it
(``queue.enqueue(..., tr=tr)``) must then find its own earlier commit, not do
the work twice; and a store that gives up after such a commit (out of retries
or time) says the result is unknown, never "not done"."""

from __future__ import annotations

from typing import Any

import pytest

import quickq
from quickq.stores import CommitFault, MemoryStore, RetryState, Transaction
from quickq.stores.fdb import FoundationDBStore

from ._stores import TestStore
from .fdb_standin import StandinFDB

pytestmark = pytest.mark.anyio
FAULTS = [CommitFault.UNKNOWN_APPLIED, CommitFault.UNKNOWN_NOT_APPLIED]


def _inject(store: TestStore, *faults: CommitFault | None) -> None:
    """Script the next commits' faults, on the stand-in's own memory store too."""
    if isinstance(store, FoundationDBStore):
        bindings = store._fdb
        if not isinstance(bindings, StandinFDB):
            pytest.skip("a real cluster fails when it fails: faults cannot be injected")
        bindings.store.inject(*faults)
    elif hasattr(store, "inject"):
        store.inject(*faults)
    else:
        pytest.skip("this store cannot inject faults")


@pytest.mark.parametrize("fault", FAULTS)
async def test_transactional_enqueue_is_exactly_one_job_under_unknown_results(
    store: TestStore, fault: CommitFault
) -> None:
    queue = quickq.JobQueue(store)
    runs = 0

    async def body(tr: Transaction) -> quickq.Job:
        nonlocal runs
        runs += 1
        tr.set(b"app/order/1", b"paid")  # the application's own write
        return await queue.enqueue("shop", "email:send", {"order": 1}, tr=tr)

    _inject(store, fault)
    job = await store.transact(body)
    assert runs == 2  # the unknown result made the body run again
    assert [j.job_id for j in await queue.list_jobs("shop", "pending")] == [job.job_id]
    assert (await queue.stats("shop")).pending == 1


async def test_a_re_run_finds_its_job_even_after_it_was_finished(store: TestStore) -> None:
    """The first commit landed, a consumer completed the job at once, then the
    body ran again: the receipt, not the job, proves the enqueue happened."""
    queue = quickq.JobQueue(store)
    jobs = quickq.JobRegistry()
    done: list[Any] = []

    @jobs.job("email:send")
    async def send(payload: Any, meta: quickq.JobMeta) -> None:
        done.append(payload)

    runs = 0

    async def body(tr: Transaction) -> quickq.Job:
        nonlocal runs
        runs += 1
        job = await queue.enqueue("shop", "email:send", {"order": 1}, tr=tr)
        if runs == 2:  # between the landed commit and the re-run: the job runs
            async with quickq.open_consumer(store, jobs) as consumer:
                await consumer.wait_idle()
        return job

    _inject(store, CommitFault.UNKNOWN_APPLIED)
    await store.transact(body)
    assert done == [{"order": 1}]
    assert await queue.stats("shop") == quickq.QueueStats("shop", 0, 0, 0, 0)


@pytest.mark.parametrize("fault", FAULTS)
async def test_transactional_enqueue_many_and_control_calls_are_exact(
    store: TestStore, fault: CommitFault
) -> None:
    queue = quickq.JobQueue(store)

    async def enqueue_two(tr: Transaction) -> list[quickq.Job]:
        return await queue.enqueue_many(
            [quickq.NewJob("shop", "a"), quickq.NewJob("shop", "b", job_id="b-1")], tr=tr
        )

    _inject(store, fault)
    a, b = await store.transact(enqueue_two)
    assert (await queue.stats("shop")).pending == 2

    async def cancel_a(tr: Transaction) -> quickq.Job:
        return await queue.cancel("shop", a.job_id, tr=tr)

    _inject(store, fault)
    cancelled = await store.transact(cancel_a)  # no JobNotFoundError on the re-run
    assert cancelled.job_id == a.job_id
    assert [j.job_id for j in await queue.list_jobs("shop", "pending")] == [b.job_id]


async def test_a_retry_state_repeats_draws_across_re_runs() -> None:
    store = MemoryStore()
    seen: list[tuple[int, int]] = []
    counter = iter(range(100))

    async def body(tr: Transaction) -> None:
        state = getattr(tr, "retry_state", None)
        assert isinstance(state, RetryState)
        seen.append((state.draw(lambda: next(counter)), state.draw(lambda: next(counter))))
        tr.set(b"k", b"v")

    store.inject(CommitFault.CONFLICT, CommitFault.UNKNOWN_NOT_APPLIED)
    await store.transact(body)
    assert seen == [(0, 1), (0, 1), (0, 1)]
    assert store.create_transaction().retry_state is None  # made by hand: none


async def test_giving_up_after_an_unknown_commit_reports_it_unknown() -> None:
    store = MemoryStore(retry_limit=1)

    async def body(tr: Transaction) -> None:
        tr.set(b"k", b"v")

    # The first commit may have landed, the second conflicted: out of retries.
    store.inject(CommitFault.UNKNOWN_NOT_APPLIED, CommitFault.CONFLICT)
    with pytest.raises(quickq.CommitUnknownResultError, match="earlier commit"):
        await store.transact(body)


async def test_a_commit_that_times_out_is_unknown_on_foundationdb() -> None:
    """FoundationDB's transaction_timed_out (1031) once the commit was sent:
    the commit may still land (developer-guide.rst), so it is not 'not done'."""
    standin = StandinFDB()
    store = await FoundationDBStore.open(bindings=standin, prefix=b"app/")
    try:

        async def body(tr: Transaction) -> None:
            tr.set(b"k", b"v")

        standin.inject("commit", 1031)
        with pytest.raises(quickq.CommitUnknownResultError, match="timed out after its commit"):
            await store.transact(body)
        # A timeout at a read, before any commit, stays a timeout.
        standin.inject("get", 1031)

        async def read(tr: Transaction) -> None:
            await tr.get(b"k")

        with pytest.raises(quickq.TransactionTimedOutError):
            await store.transact(read)
    finally:
        await store.aclose()


async def test_foundationdb_gives_up_after_an_unknown_commit_as_unknown() -> None:
    standin = StandinFDB()
    store = await FoundationDBStore.open(bindings=standin, prefix=b"app/")
    try:

        async def body(tr: Transaction) -> None:
            tr.set(b"k", b"v")

        standin.inject("commit", 1021)  # commit_unknown_result: retried
        standin.inject("get_read_version", 1031)  # then the retry times out
        standin.inject("commit", 1031)
        with pytest.raises(quickq.CommitUnknownResultError):
            await store.transact(body)
    finally:
        await store.aclose()
