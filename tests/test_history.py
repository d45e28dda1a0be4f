"""Per-queue history: each recorded attempt counted once, per queue and minute,
in the transaction that records it; expired leases counted as lost attempts;
expiry by range clears; the same on every store."""

from __future__ import annotations

import datetime as dt
import math
from functools import partial
from typing import Any

import attrs
import pytest
import trio

import quickq
from quickq import _core
from quickq._core import Action, Item, Layout, NewItem, Settlement
from quickq._core import _history as history_module
from quickq.stores import CommitFault, MemoryStore, Store, Transaction
from quickq.stores.sqlite import SQLiteStore

from ._stores import EPOCH, TestStore, dump, run_virtual, virtual_clock
from .test_commit_unknown import FAULTS, _inject

layout = Layout()
MINUTE = 60_000
T0 = 30_000_000 * MINUTE  # the start of a minute
LEASE = 30_000


def new(item_id: str, *, qid: str = "q", vesting: int = T0, retries: int = 3) -> NewItem:
    return NewItem(qid, item_id, "t", b"{}", 100, vesting, retries, token="tok-" + item_id)


async def enqueue(store: Store, news: list[NewItem], now: int = T0) -> None:
    await store.transact(
        lambda tr: _core.enqueue_many(tr, layout, news, now, token=f"e{now}{news[0].item_id}")
    )


async def lease(
    store: Store, qid: str, now: int, limit: int = 10, lease_ms: int = LEASE, **kw: Any
) -> list[Item]:
    token, batch = f"t{qid}{now}", f"b{qid}{now}"
    assert await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, qid, "c1", token, now, 5_000)
    )

    async def body(tr: Transaction) -> _core.LeaseBatch:
        return await _core.lease_items(
            tr, layout, qid, holder="c1", token=token, batch_token=batch, limit=limit,
            now=now, lease_ms=lease_ms, idle_gc_ms=60_000, **kw,
        )  # fmt: skip

    return (await store.transact(body)).items


def ending(item: Item, action: Action, qid: str = "q", **kw: Any) -> Settlement:
    assert item.lease is not None
    return Settlement(action, qid, item.item_id, item.lease.lease_id, **kw)


async def settle(store: Store, settlements: list[Settlement], now: int, **kw: Any) -> None:
    await store.transact(lambda tr: _core.settle_many(tr, layout, settlements, lambda: now, **kw))


async def history(store: Store, qid: str = "q") -> list[quickq.QueueMinute]:
    return await quickq.JobQueue(store).history(qid)


async def totals(store: Store) -> list[quickq.TotalsMinute]:
    return await quickq.JobQueue(store).history_totals()


def at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def history_keys(pairs: list[tuple[bytes, bytes]]) -> list[tuple[Any, ...]]:
    """The history keys among *pairs*, as tuples after the root."""
    import fdb.tuple as fdb_tuple

    out = []
    for key, _ in pairs:
        if key.startswith(layout.prefix):
            t = fdb_tuple.unpack(key[len(layout.prefix) :])
            if t[0] in ("hq", "ht") or (t[0] == "q" and t[2] == "h"):
                out.append(t)
    return out


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_a_batch_counts_each_queue_per_minute_with_waits_and_run_times() -> None:
    store = MemoryStore()
    await enqueue(store, [new(n) for n in "abcde"] + [new("z", qid="q2", retries=0)])
    a, b, c, d, e = await lease(store, "q", T0 + 1_000)
    (z,) = await lease(store, "q2", T0 + 1_000)
    started = T0 + 2_000  # each waited 2 s from due to start
    await settle(
        store,
        [
            ending(a, Action.COMPLETE, started=started),
            ending(b, Action.COMPLETE, started=started),
            ending(c, Action.RETRY, delay_ms=1_000, error="boom", started=started),
            ending(d, Action.SNOOZE, delay_ms=1_000, started=started),
            ending(e, Action.COMPLETE),  # no start time: counted, not timed
            ending(z, Action.RETRY, qid="q2", error="last", started=started),  # spent: dead
        ],
        T0 + 5_000,  # each ran 3 s
    )
    assert await history(store) == [quickq.QueueMinute("q", at(T0), 3, 1, 1, 0, 0, 4, 8.0, 12.0)]
    (q2,) = await history(store, "q2")
    assert (q2.dead_lettered, q2.runs, q2.mean_wait, q2.mean_run) == (1, 1, 2.0, 3.0)
    (total,) = await totals(store)
    assert (total.completed, total.failed, total.snoozed, total.dead_lettered) == (3, 1, 1, 1)
    assert (total.timed, total.wait_seconds, total.run_seconds) == (5, 10.0, 15.0)
    # 2,000 ms is in bucket 11 (1,024 to 2,047 ms), 3,000 ms in bucket 12.
    assert total.wait_buckets[11] == total.run_buckets[12] == 5 == sum(total.wait_buckets)
    assert total.wait_quantile(0.99) == 2.048 and total.run_quantile(0.5) == 4.096


@pytest.mark.anyio
async def test_a_release_and_a_lost_lease_count_nothing_when_settled() -> None:
    store = MemoryStore()
    await enqueue(store, [new("a"), new("b")])
    a, b = await lease(store, "q", T0)
    stale = attrs.evolve(ending(b, Action.COMPLETE), lease_id="someone else's")
    await settle(store, [ending(a, Action.RELEASE, started=T0), stale], T0 + 10)
    assert await history(store) == [] == await totals(store)
    assert history_keys(await dump(store)) == []


@pytest.mark.anyio
async def test_attempts_count_in_the_minute_they_were_recorded() -> None:
    store = MemoryStore()
    await enqueue(store, [new(n) for n in "abc"])
    a, b, c = await lease(store, "q", T0, lease_ms=10 * MINUTE)
    await settle(store, [ending(a, Action.COMPLETE, started=T0)], T0 + MINUTE - 1)
    await settle(store, [ending(b, Action.COMPLETE, started=T0)], T0 + MINUTE)
    await settle(store, [ending(c, Action.COMPLETE, started=T0)], T0 + 3 * MINUTE + 5)
    minutes = await history(store)
    assert [(m.minute, m.completed) for m in minutes] == [
        (at(T0), 1),
        (at(T0 + MINUTE), 1),
        (at(T0 + 3 * MINUTE), 1),
    ]
    queue = quickq.JobQueue(store)
    since, until = at(T0 + MINUTE + 30_000), at(T0 + 3 * MINUTE)
    assert [m.minute for m in await queue.history("q", since=since, until=until)] == [
        at(T0 + MINUTE),
        at(T0 + 3 * MINUTE),
    ]
    assert await queue.history("q", until=at(T0 - 1)) == []
    with pytest.raises(quickq.InvalidArgumentError, match="since must be an aware datetime"):
        await queue.history("q", since=dt.datetime(2030, 1, 1))
    for read in (queue.history_totals, partial(queue.history, "q")):
        with pytest.raises(quickq.InvalidArgumentError, match="since must be at or before until"):
            await read(since=until, until=since)


def test_a_consumer_counts_across_a_minute_boundary() -> None:
    """Jobs run in the first minute and the next, one failing once: per minute."""

    async def main() -> list[quickq.QueueMinute]:
        store = MemoryStore()
        jobs = quickq.JobRegistry()
        failed: set[str] = set()

        @jobs.job("work", backoff=quickq.Backoff(base=60.0, jitter=0.0))
        async def work(payload: Any, meta: quickq.JobMeta) -> Any:
            if payload == "fail" and meta.job_id not in failed:
                failed.add(meta.job_id)
                raise RuntimeError("once")
            if payload == "snooze" and meta.attempt == 1:
                return quickq.Snooze(55)
            if payload == "discard":
                return quickq.Discard("no")
            return None

        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        await trio.sleep(10)  # 10 s into minute 0
        for payload in ["ok", "ok", "fail", "snooze", "discard"]:
            await queue.enqueue("q", "work", payload)
        async with quickq.open_consumer(store, jobs, clock=virtual_clock) as consumer:
            await trio.sleep(100)  # the retry (60 s on) and the snooze (55 s) run in minute 1
            await consumer.wait_idle()
        return await queue.history("q")

    first, second = run_virtual(main)
    start = dt.datetime.fromtimestamp(EPOCH, dt.UTC)
    assert first.minute == start and second.minute == start + dt.timedelta(minutes=1)
    assert (first.completed, first.failed, first.snoozed, first.dead_lettered) == (2, 1, 1, 1)
    assert (second.completed, second.failed, second.snoozed, second.runs) == (2, 0, 0, 2)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULTS)
async def test_a_settlement_re_run_after_an_unknown_result_counts_once(
    store: TestStore, fault: CommitFault
) -> None:
    await enqueue(store, [new(n) for n in "abcd"])
    a, b, c, d = await lease(store, "q", T0)
    settlements = [
        ending(a, Action.COMPLETE, started=T0),
        ending(b, Action.RETRY, delay_ms=5, error="x", started=T0),
        ending(c, Action.SNOOZE, delay_ms=5, started=T0),
        ending(d, Action.DEAD_LETTER, error="x", started=T0),
    ]
    runs = 0

    async def body(tr: Transaction) -> list[_core.Outcome]:
        nonlocal runs
        runs += 1
        return await _core.settle_many(tr, layout, settlements, lambda: T0 + 10)

    _inject(store, fault)
    await store.transact(body)
    assert runs == 2
    (minute,) = await history(store)
    assert (minute.completed, minute.failed, minute.snoozed, minute.dead_lettered) == (1, 1, 1, 1)
    assert (minute.timed, minute.run_seconds) == (4, 0.04)
    (total,) = await totals(store)
    assert (total.runs, sum(total.wait_buckets), sum(total.run_buckets)) == (4, 4, 4)
    # And one alone, as the consumer commits a settlement with its own writes.
    (e,) = [*await enqueue_and_lease(store, "e")]
    _inject(store, fault)
    await store.transact(
        lambda tr: _core.settle(tr, layout, ending(e, Action.COMPLETE), lambda: T0 + 20)
    )
    (minute,) = await history(store)
    assert minute.completed == 2


async def enqueue_and_lease(store: Store, item_id: str) -> list[Item]:
    await enqueue(store, [new(item_id)], now=T0 + 1)
    return await lease(store, "q", T0 + 2)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", [None, *FAULTS])
async def test_expired_leases_count_as_lost_attempts_once(
    store: TestStore, fault: CommitFault | None
) -> None:
    await enqueue(store, [new("again"), new("spent", retries=0)])
    await lease(store, "q", T0)
    later = T0 + LEASE + MINUTE
    if fault is not None:
        _inject(store, fault)
    await lease(store, "q", later)  # promotes both: one retried, one dead
    (minute,) = await history(store)
    assert minute.minute == at(later - later % MINUTE)
    assert (minute.failed, minute.dead_lettered, minute.lost, minute.timed) == (1, 1, 2, 0)
    assert minute.mean_wait is None
    (total,) = await totals(store)
    assert (total.lost, sum(total.wait_buckets), total.wait_quantile(0.5)) == (2, 0, None)


@pytest.mark.anyio
async def test_history_off_writes_nothing() -> None:
    store = MemoryStore()
    await enqueue(store, [new("a"), new("b", retries=0)])
    a, _ = await lease(store, "q", T0, history=False)
    await settle(store, [ending(a, Action.COMPLETE, started=T0)], T0 + 1, history=False)
    await lease(store, "q", T0 + 2 * LEASE, history=False)  # b's lease expired: dead
    assert (await quickq.JobQueue(store).stats("q")).dead == 1
    assert history_keys(await dump(store)) == []


async def write_minutes(store: Store, minutes: list[int], queues: list[str]) -> None:
    """One completed attempt per queue in each of *minutes* (offsets from T0)."""
    for n, offset in enumerate(minutes):
        now = T0 + offset * MINUTE
        for qid in queues:
            await enqueue(store, [new(f"{qid}{n}", qid=qid, vesting=now)], now=now)
            (item,) = await lease(store, qid, now)
            await settle(store, [ending(item, Action.COMPLETE, qid=qid, started=now)], now + 1)


@pytest.mark.anyio
async def test_expiry_clears_old_minutes_their_index_rows_and_totals(store: TestStore) -> None:
    await write_minutes(store, [0, 1, 5], ["q", "q2"])
    before = history_keys(await dump(store))
    assert {t[1] for t in before if t[0] == "hq"} == {30_000_000, 30_000_001, 30_000_005}
    more = await store.transact(lambda tr: _core.expire_history(tr, layout, 30_000_002))
    assert more is False
    kept = history_keys(await dump(store))
    assert kept == [t for t in before if 30_000_005 in t]  # the minute sits at 1 or 3
    assert [m.minute for m in await history(store, "q2")] == [at(T0 + 5 * MINUTE)]
    assert [m.completed for m in await totals(store)] == [2]


@pytest.mark.anyio
async def test_expiry_goes_in_batches_of_index_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    monkeypatch.setattr(history_module, "EXPIRE_BATCH", 3)
    await write_minutes(store, [0, 1], ["q", "q2"])  # 4 index rows
    expire = lambda tr: _core.expire_history(tr, layout, 30_000_002)  # noqa: E731
    assert await store.transact(expire) is True
    assert len([t for t in history_keys(await dump(store)) if t[0] == "hq"]) == 1
    assert await store.transact(expire) is False
    assert history_keys(await dump(store)) == []


@pytest.mark.anyio
async def test_consumers_expiring_at_once_never_conflict() -> None:
    store = MemoryStore()
    await write_minutes(store, [0, 5], ["q", "q2"])
    first, second = store.create_transaction(), store.create_transaction()
    assert await _core.expire_history(first, layout, 30_000_002) is False
    assert await _core.expire_history(second, layout, 30_000_002) is False
    await first.commit()
    await second.commit()  # no ConflictError: snapshot reads, blind clears
    assert [m.minute for m in await history(store)] == [at(T0 + 5 * MINUTE)]


def test_a_consumer_keeps_history_for_history_keep() -> None:
    """Housekeeping (once a minute) clears what is older than history_keep."""

    async def main() -> tuple[list[dt.datetime], list[dt.datetime]]:
        store = MemoryStore()
        jobs = quickq.JobRegistry()

        @jobs.job("work")
        async def work(payload: Any, meta: quickq.JobMeta) -> None:
            pass

        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, history_keep=180
        ) as consumer:
            for _ in range(6):  # a job a minute, in minutes 0 to 5
                await queue.enqueue("q", "work", None)
                await trio.sleep(60)
            await trio.sleep(30)
            await consumer.wait_idle()
            kept = [m.minute for m in await queue.history("q")]
        async with quickq.open_consumer(store, jobs, clock=virtual_clock, history_keep=0):
            await trio.sleep(600)  # history_keep=0: this one expires nothing
        return kept, [m.minute for m in await queue.history("q")]

    kept, after = run_virtual(main)
    start = dt.datetime.fromtimestamp(EPOCH, dt.UTC)
    # Housekeeping ran last a little after 6 min (once a minute, from the
    # start): it cleared the minutes before 3 (6 - 3).
    assert kept == [start + dt.timedelta(minutes=m) for m in (3, 4, 5)]
    assert after == kept


def test_history_keep_is_checked() -> None:
    assert quickq.ConsumerConfig().history_keep == 86_400
    assert quickq.ConsumerConfig(history_keep=90 * 86_400).history_keep == 90 * 86_400
    for bad in (-1, 90 * 86_400 + 1, math.inf, True):
        with pytest.raises(quickq.InvalidArgumentError, match="history_keep must be"):
            quickq.ConsumerConfig(history_keep=bad)


@pytest.mark.anyio
async def test_memory_and_sqlite_keep_the_same_history(tmp_path: Any) -> None:
    async def steps(store: Store) -> tuple[Any, ...]:
        await write_minutes(store, [0, 2], ["q", "other"])
        await enqueue(store, [new("x", retries=0), new("y")], now=T0 + 3 * MINUTE)
        x, _ = await lease(store, "q", T0 + 3 * MINUTE, lease_ms=2 * MINUTE)
        await settle(store, [ending(x, Action.RETRY, error="e", started=T0)], T0 + 4 * MINUTE)
        await lease(store, "q", T0 + 9 * MINUTE)  # y's lease expired
        await store.transact(lambda tr: _core.expire_history(tr, layout, 30_000_001))
        return (
            await history(store),
            await history(store, "other"),
            await totals(store),
            history_keys(await dump(store)),
        )

    memory = await steps(MemoryStore())
    async with await SQLiteStore.open(tmp_path / "h.db", durability="normal") as sqlite:
        assert await steps(sqlite) == memory
    assert [m.minute for m in memory[0]] == [at(T0 + n * MINUTE) for n in (2, 4, 9)]


def test_the_history_command_shows_a_queue_and_the_totals(tmp_path: Any) -> None:
    from .test_cli import ok_run, quickq_cli, url

    path = tmp_path / "jobs.db"

    async def fill() -> None:
        jobs = quickq.JobRegistry()

        @jobs.job("work", max_retries=0)
        async def work(payload: Any, meta: quickq.JobMeta) -> None:
            if payload == "bad":
                raise ValueError("bad")

        async with await SQLiteStore.open(path) as store:
            queue = quickq.JobQueue(store, jobs)
            for payload in ("ok", "ok", "bad"):
                await queue.enqueue("shop-1", "work", payload)
            async with quickq.open_consumer(store, jobs) as consumer:
                await consumer.wait_idle()

    trio.run(fill)
    db = url(path)
    import json

    rows = json.loads(ok_run("history", "shop-1", "--json", "--store", db))
    assert sum(r["completed"] for r in rows) == 2 and sum(r["dead_lettered"] for r in rows) == 1
    assert {"minute", "runs", "mean_wait", "mean_run", "lost"} <= set(rows[0])
    totals = json.loads(ok_run("history", "--since", "2h", "--json", "--store", db))
    assert sum(r["runs"] for r in totals) == 3 and len(totals[0]["wait_buckets"]) == 25
    assert all(r["p99_run"] > 0 and r["p99_wait"] >= 0 for r in totals)
    assert (
        json.loads(ok_run("history", "--since", "2h", "--until", "1h", "--json", "--store", db))
        == []
    )
    table = ok_run("history", "--store", db)
    assert "history of all queues" in table and "p99 run" in table
    assert "no history for queue other" in ok_run("history", "other", "--store", db)
    bad = quickq_cli("history", "--since", "yesterday", "--store", db)
    assert bad.returncode == 2 and "neither a duration" in bad.stderr
    for args, says in (
        (["--since", "100000000d"], "before the year 1"),
        (["--since", "1h", "--until", "2h"], "is after --until"),
        (["--until", "soon"], "'--until'"),
    ):
        bad = quickq_cli("history", *args, "--store", db)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, bad


def test_an_attempts_settlements_carry_its_start_time() -> None:
    """What the runner builds from SettlementMaker(..., started) reaches settle."""
    import random

    from quickq._consumer._attempts import SettlementMaker, failure_settlement, outcome_settlement

    make = SettlementMaker("q", "j", "lease", started=T0 + 7)

    async def handler(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    definition = quickq.JobDefinition("t", handler)
    item = Item("j", "t", b"{}", 100, T0, 3, T0, _core.State.RUNNING, attempt=1)
    rng = random.Random(0)
    done, _ = outcome_settlement(make, definition, item, rng, None, None)
    snoozed, _ = outcome_settlement(make, definition, item, rng, quickq.Snooze(1), None)
    failed = failure_settlement(make, definition, item, rng, "boom")
    assert done.started == snoozed.started == failed.started == T0 + 7
    assert SettlementMaker("q", "j", "lease")(Action.COMPLETE).started is None
