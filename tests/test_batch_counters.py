"""Batches adjust each counter once per queue: enqueue, leasing (with its
promotion) and settle_many, with the same results as one change per job."""

from __future__ import annotations

import functools
from typing import Any, cast

import attrs
import pytest

from quickq import _core
from quickq._core import Action, Item, Layout, NewItem, Outcome, Settlement
from quickq.stores import MemoryStore, Transaction, decode_counter

pytestmark = pytest.mark.anyio

T0 = 1_000_000
LEASE = 30_000
layout = Layout()


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


class CountingAdds:
    """A transaction that records its atomic adds and passes everything on."""

    def __init__(self, tr: Transaction) -> None:
        self._tr = tr
        self.adds: list[tuple[bytes, int]] = []

    def add(self, key: bytes, delta: int) -> None:
        self.adds.append((key, delta))
        self._tr.add(key, delta)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tr, name)


def counter_adds(spy: CountingAdds) -> list[tuple[str, str, int]]:
    """The counter adds *spy* saw, as (queue, counter, delta)."""
    out = []
    for key, delta in spy.adds:
        for qid in ("q", "q2"):
            for name in ("pending", "scheduled", "running", "dead"):
                if key == layout.counter(qid, name):
                    out.append((qid, name, delta))
    return out


async def counts(store: MemoryStore, qid: str = "q") -> dict[str, int]:
    return {
        name: decode_counter(store.raw_get(layout.counter(qid, name)))
        for name in ("pending", "scheduled", "running", "dead")
    }


def new(item_id: str, *, qid: str = "q", vesting: int = T0, retries: int = 3) -> NewItem:
    return NewItem(qid, item_id, "t", b"{}", 100, vesting, retries, token="tok-" + item_id)


async def enqueue(store: MemoryStore, news: list[NewItem], now: int = T0) -> CountingAdds:
    spies: list[CountingAdds] = []

    async def body(tr: Transaction) -> None:
        spies.append(spy := CountingAdds(tr))
        await _core.enqueue_many(cast(Transaction, spy), layout, news, now, token=f"e{now}")

    await store.transact(body)
    return spies[-1]


async def lease(store: MemoryStore, now: int, limit: int) -> tuple[list[Item], CountingAdds]:
    assert await store.transact(
        lambda tr: _core.take_queue_lease(tr, layout, "q", "c1", f"t{now}", now, 5_000)
    )
    spies: list[CountingAdds] = []

    async def body(tr: Transaction) -> _core.LeaseBatch:
        spies.append(spy := CountingAdds(tr))
        return await _core.lease_items(
            cast(Transaction, spy), layout, "q", holder="c1", token=f"t{now}",
            batch_token=f"b{now}", limit=limit, now=now, lease_ms=LEASE, idle_gc_ms=60_000,
        )  # fmt: skip

    batch = await store.transact(body)
    return batch.items, spies[-1]


async def test_enqueue_many_adds_each_counter_once_per_queue() -> None:
    store = MemoryStore()
    news = [new(f"a{n}") for n in range(50)] + [new(f"b{n}", vesting=T0 + 10) for n in range(50)]
    news += [new(f"c{n}", qid="q2") for n in range(10)]
    spy = await enqueue(store, news)
    assert sorted(counter_adds(spy)) == [
        ("q", "pending", 50),
        ("q", "scheduled", 50),
        ("q2", "pending", 10),
    ]
    assert await counts(store) == {"pending": 50, "scheduled": 50, "running": 0, "dead": 0}


async def test_a_lease_batch_and_its_promotion_add_each_counter_once() -> None:
    store = MemoryStore()
    await enqueue(store, [new(f"a{n}") for n in range(20)])
    await enqueue(store, [new(f"b{n}", vesting=T0 + 10) for n in range(20)], now=T0 + 1)
    leased, spy = await lease(store, T0 + 10, limit=30)
    assert len(leased) == 30
    assert sorted(counter_adds(spy)) == [
        ("q", "pending", -10),  # 20 promoted in, 30 leased out
        ("q", "running", 30),
        ("q", "scheduled", -20),
    ]
    assert await counts(store) == {"pending": 10, "scheduled": 0, "running": 30, "dead": 0}
    # Expired leases come back through the same tally: 30 out of running at once.
    _, spy = await lease(store, T0 + 10 + LEASE, limit=5)
    assert sorted(counter_adds(spy)) == [("q", "pending", 25), ("q", "running", -25)]


async def test_settle_many_matches_one_settle_call_each() -> None:
    """The same outcomes and the same stored bytes, counters included."""
    news = [new(name) for name in "abcdef"] + [new("g", retries=0)]
    stores = [MemoryStore(), MemoryStore()]
    leased = []
    for store in stores:
        await enqueue(store, news)
        items, _ = await lease(store, T0, limit=10)
        leased.append(items)
    assert leased[0] == leased[1]
    by_id = {item.item_id: item for item in leased[0]}

    def ending(item_id: str, action: Action, **kw: Any) -> Settlement:
        lease = by_id[item_id].lease
        assert lease is not None
        return Settlement(action, "q", item_id, kw.pop("lease_id", lease.lease_id), **kw)

    settlements = [
        ending("a", Action.COMPLETE),
        ending("b", Action.RETRY, delay_ms=1_000, error="boom"),
        ending("c", Action.SNOOZE),
        ending("d", Action.DEAD_LETTER, error="bad", reason="discarded"),
        ending("e", Action.RELEASE),
        ending("f", Action.COMPLETE, lease_id="someone else's"),
        ending("g", Action.RETRY, error="last"),
    ]

    def clock() -> int:
        return T0 + 1

    async def one(tr: Transaction, s: Settlement) -> Outcome:
        return await _core.settle(tr, layout, s, clock)

    one_each = [await stores[0].transact(functools.partial(one, s=s)) for s in settlements]
    spies: list[CountingAdds] = []

    async def together(tr: Transaction) -> list[Outcome]:
        spies.append(spy := CountingAdds(tr))
        return await _core.settle_many(cast(Transaction, spy), layout, settlements, clock)

    assert (
        await stores[1].transact(together)
        == one_each
        == [
            Outcome.COMPLETED,
            Outcome.RETRIED,
            Outcome.RETRIED,
            Outcome.DEAD_LETTERED,
            Outcome.RELEASED,
            Outcome.LOST,
            Outcome.DEAD_LETTERED,
        ]
    )
    assert without_mark_tokens(stores[1]) == without_mark_tokens(stores[0])
    assert sorted(counter_adds(spies[-1])) == [
        ("q", "dead", 2),
        ("q", "pending", 2),  # snoozed for no time, released
        ("q", "running", -6),
        ("q", "scheduled", 1),
    ]


async def test_settle_many_brings_counters_up_to_date_before_a_handlers_writes() -> None:
    store = MemoryStore()
    await enqueue(store, [new("a"), new("b")])
    items, _ = await lease(store, T0, limit=2)
    seen: list[bytes | None] = []

    async def writes(tr: Transaction) -> None:
        seen.append(await tr.get(layout.counter("q", "running")))

    a, b = sorted(items, key=lambda i: i.item_id)
    assert a.lease and b.lease
    settlements = [
        Settlement(Action.COMPLETE, "q", "a", a.lease.lease_id),
        Settlement(Action.COMPLETE, "q", "b", b.lease.lease_id, writes=writes),
    ]
    outcomes = await store.transact(
        lambda tr: _core.settle_many(tr, layout, settlements, lambda: T0 + 1)
    )
    assert outcomes == [Outcome.COMPLETED, Outcome.COMPLETED]
    assert [decode_counter(v) for v in seen] == [1]  # a's completion counted already
    assert await counts(store) == {"pending": 0, "scheduled": 0, "running": 0, "dead": 0}


def without_mark_tokens(store: MemoryStore) -> list[tuple[bytes, bytes]]:
    """The store's pairs, each due mark's random token blanked (two runs that
    mark the same queues draw different tokens, by design)."""
    begin, end = layout.marks_range()
    return [(k, b"" if begin <= k < end else v) for k, v in store.raw_items()]


async def test_settle_many_reads_ahead_only_what_earlier_settlements_cannot_change() -> None:
    """Records are read together, yet each settlement sees what the earlier
    ones wrote: a job settled twice in one batch settles once, and a record a
    handler's writes change is read after them."""
    store = MemoryStore()
    await enqueue(store, [new("a"), new("b"), new("c")])
    items, _ = await lease(store, T0, limit=3)
    a, b, c = sorted(items, key=lambda i: i.item_id)
    assert a.lease and b.lease and c.lease

    async def steal_c(tr: Transaction) -> None:
        # As if another consumer had taken c: its lease is no longer ours.
        record = await tr.get(layout.item("q", "c"))
        assert record is not None and c.lease is not None
        stolen = Item.from_bytes(record).leased(attrs.evolve(c.lease, lease_id="other"))
        tr.set(layout.item("q", "c"), stolen.to_bytes())

    settlements = [
        Settlement(Action.COMPLETE, "q", "a", a.lease.lease_id),
        Settlement(Action.COMPLETE, "q", "a", a.lease.lease_id),
        Settlement(Action.COMPLETE, "q", "b", b.lease.lease_id, writes=steal_c),
        Settlement(Action.COMPLETE, "q", "c", c.lease.lease_id),
    ]
    outcomes = await store.transact(
        lambda tr: _core.settle_many(tr, layout, settlements, lambda: T0 + 1)
    )
    # The second "a" finds a's completion receipt: ours, completed once.
    assert outcomes == [Outcome.COMPLETED, Outcome.COMPLETED, Outcome.COMPLETED, Outcome.LOST]
    assert await counts(store) == {"pending": 0, "scheduled": 0, "running": 1, "dead": 0}
