"""Live consumers: each consumer's heartbeat record, and ``JobQueue.workers``,
in virtual time on the memory store (the command line's are in
tests/test_cli_workers.py, against real worker processes)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from importlib.metadata import version
from typing import Any

import fdb.tuple as fdb_tuple
import pytest
import trio

import quickq
from quickq import StoreUnavailableError, _core
from quickq._core import Layout, WorkerRecord
from quickq._core._workers import PRUNE_AFTER_MS, RECORD_BYTES, TEXT_BYTES
from quickq.stores import MemoryStore, Transaction

from ._stores import EPOCH, Partition, run_virtual, virtual_clock

LAYOUT = Layout()
jobs = quickq.JobRegistry()
gate = {"open": trio.Event()}


@jobs.job("work")
async def work(payload: Any, meta: quickq.JobMeta) -> None:
    if payload == "fail" and meta.attempt == 1:
        raise RuntimeError("once")
    if payload == "wait":
        await gate["open"].wait()


@jobs.job("other")
async def other(payload: Any, meta: quickq.JobMeta) -> None:
    pass


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(EPOCH + seconds, dt.UTC)


def consumer(store: Any, **options: Any) -> Any:
    return quickq.open_consumer(store, jobs, clock=virtual_clock, **options)


def queue_of(store: Any) -> quickq.JobQueue:
    return quickq.JobQueue(store, clock=virtual_clock)


def heartbeats(store: MemoryStore) -> list[bytes]:
    begin, end = LAYOUT.heartbeat_range()
    return [k for k, _ in store.raw_items() if begin <= k < end]


def test_the_record_is_written_before_open_consumer_yields() -> None:
    async def main() -> None:
        store = MemoryStore()
        async with consumer(store, concurrency=4) as c:
            assert heartbeats(store) == [LAYOUT.heartbeat(c.consumer_id)]  # no await yet
            (worker,) = await queue_of(store).workers()
        assert worker == quickq.WorkerInfo(
            consumer_id=c.consumer_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            state="live",
            started=at(0),
            seen=at(0),
            interval=10.0,
            concurrency=4,
            running=0,
            leased=0,
            completed=0,
            retried=0,
            dead_lettered=0,
            lost=0,
            version=version("quickq"),
            topics=("work", "other"),
            topic_count=2,
            metrics=None,
        )

    run_virtual(main)


def test_beats_refresh_the_record_with_what_the_consumer_did() -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = queue_of(store)
        gate["open"] = trio.Event()
        for payload in ("ok", "fail", "wait"):
            await queue.enqueue("t", "work", payload)
        async with consumer(store, heartbeat_interval=5) as c:
            await trio.sleep(20)  # a few beats: the retry's backoff has passed
            stats = c.statistics()
            assert (stats.running, stats.completed, stats.retried) == (1, 2, 1)
            await trio.sleep(6)  # at least one beat since
            (worker,) = await queue.workers()
            assert at(20) < worker.seen <= at(26)
            assert worker.started == at(0) and worker.interval == 5.0
            assert (worker.running, worker.leased, worker.completed, worker.retried) == (1, 4, 2, 1)
            assert (worker.dead_lettered, worker.lost, worker.state) == (0, 0, "live")
            c.metrics_address = "http://127.0.0.1:9100/metrics"  # a beat at once
            await trio.sleep(0.001)
            (worker,) = await queue.workers()
            assert worker.metrics == "http://127.0.0.1:9100/metrics"
            gate["open"].set()

    run_virtual(main)


def test_the_beats_are_jittered_around_the_interval() -> None:
    async def main() -> None:
        store = MemoryStore()
        seen: list[float] = []
        async with consumer(store, heartbeat_interval=10):
            key = heartbeats(store)[0]
            last = store.raw_get(key)
            for _ in range(20):
                while store.raw_get(key) == last:  # noqa: ASYNC110 (observing from outside)
                    await trio.sleep(0.01)
                last = store.raw_get(key)
                seen.append(trio.current_time())
        gaps = [b - a for a, b in zip([0.0, *seen], seen, strict=False)]
        assert all(8.99 <= gap <= 11.02 for gap in gaps), gaps
        assert max(gaps) - min(gaps) > 0.5, gaps  # a fleet started together spreads out

    run_virtual(main)


def test_a_stopping_consumer_says_so_and_a_clean_stop_clears_its_record() -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = queue_of(store)
        gate["open"] = trio.Event()
        await queue.enqueue("t", "work", "wait")
        async with consumer(store, grace_period=30) as c:
            while c.statistics().running == 0:  # noqa: ASYNC110
                await trio.sleep(0.01)
            c.stop()
            await trio.sleep(0.001)  # the stopping beat is written at once
            (worker,) = await queue.workers()
            assert worker.state == "stopping"
            await trio.sleep(15)  # still draining, still beating, still stopping
            (worker,) = await queue.workers()
            assert worker.state == "stopping" and worker.seen >= at(8.9)
            gate["open"].set()
        assert heartbeats(store) == []
        assert await queue.workers(include_stale=True) == []

    run_virtual(main)


def test_a_cancelled_consumer_clears_its_record_too() -> None:
    async def main() -> None:
        store = MemoryStore()
        with trio.CancelScope() as scope:
            async with consumer(store):
                assert len(heartbeats(store)) == 1
                scope.cancel()
        assert heartbeats(store) == []

    run_virtual(main)


def test_a_crashed_consumers_record_turns_stale_after_three_intervals() -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = queue_of(store)
        partition = Partition(store)
        async with consumer(partition, heartbeat_interval=4) as c:
            await trio.sleep(5)
            partition.cut()  # it can no longer write: its clear never lands
        (worker,) = await queue.workers()
        assert worker.consumer_id == c.consumer_id
        assert worker.state == "live"
        seen = worker.seen.timestamp() - EPOCH
        await trio.sleep(seen + 11.999 - trio.current_time())  # three intervals, all but 1 ms
        assert [w.state for w in await queue.workers()] == ["live"]
        await trio.sleep(0.002)
        assert await queue.workers() == []
        (stale,) = await queue.workers(include_stale=True)
        assert (stale.consumer_id, stale.state) == (c.consumer_id, "stale")

    run_virtual(main)


def test_a_store_fault_during_a_beat_never_stops_the_consumer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="quickq")

    async def main() -> None:
        store = FailingBeats()
        queue = queue_of(store)
        async with consumer(store, heartbeat_interval=2) as c:
            store.failing = True
            await trio.sleep(7)  # three beats fail
            await queue.enqueue("t", "work", "ok")
            while c.statistics().completed == 0:  # noqa: ASYNC110 (jobs still run)
                await trio.sleep(0.01)
            (worker,) = await queue.workers(include_stale=True)
            assert worker.state == "stale"
            store.failing = False
            await trio.sleep(2.5)
            (worker,) = await queue.workers()
            assert (worker.state, worker.completed) == ("live", 1)
        assert heartbeats(store) == []

    run_virtual(main)
    failed = [r for r in caplog.records if "heartbeat beat failed" in r.getMessage()]
    assert len(failed) >= 3, caplog.text
    assert all(r.levelno == logging.WARNING for r in failed)


class FailingBeats(MemoryStore):
    """A memory store whose commits that write a heartbeat fail while ``failing``."""

    failing = False

    def create_transaction(self) -> Any:
        tr = super().create_transaction()
        commit, set_ = tr.commit, tr.set
        beats = LAYOUT.heartbeat_range()

        def watched_set(key: bytes, value: bytes) -> None:
            if self.failing and beats[0] <= key < beats[1]:
                tr.commit = fail  # type: ignore[method-assign]
            set_(key, value)

        async def fail() -> None:
            tr.cancel()
            raise StoreUnavailableError("the heartbeat's shard is down")

        tr.set = watched_set  # type: ignore[method-assign]
        tr.commit = commit  # type: ignore[method-assign]
        return tr


def record(consumer_id: str, seen: int, interval: int = 10_000) -> WorkerRecord:
    return WorkerRecord(consumer_id, "h", 1, seen, seen, interval, 1)


def test_a_starting_consumer_drops_records_stale_for_over_a_day() -> None:
    async def main() -> None:
        store = MemoryStore()
        now = int(EPOCH * 1000)
        day = PRUNE_AFTER_MS
        old = record("old", now - day - 30_001)  # stale for a day and a millisecond
        recent = record("recent", now - day)  # stale for a day less 30 s
        for r in (old, recent, record("fresh", now)):
            store.raw_set(LAYOUT.heartbeat(r.consumer_id), r.to_bytes())
        store.raw_set(LAYOUT.heartbeat("junk"), b"not a record")  # never ours to judge
        async with consumer(store) as c:
            await trio.sleep(0.01)
            left = {LAYOUT.parse_heartbeat(k) for k in heartbeats(store)}
            assert left == {c.consumer_id, "recent", "fresh", "junk"}
            listed = await queue_of(store).workers(include_stale=True)
            assert {w.consumer_id for w in listed} == left - {"junk"}

    run_virtual(main)


def test_pruning_never_drops_a_consumer_that_came_back_and_never_conflicts() -> None:
    async def main() -> None:
        store = MemoryStore()
        now = int(EPOCH * 1000)
        key = LAYOUT.heartbeat("back")
        store.raw_set(key, record("back", now - 2 * PRUNE_AFTER_MS).to_bytes())
        pruning = store.create_transaction()
        assert await _core.prune_heartbeats(pruning, LAYOUT, now) == 1

        async def beat(tr: Transaction) -> None:  # the consumer beats meanwhile
            _core.write_heartbeat(tr, LAYOUT, record("back", now))

        await store.transact(beat)
        await pruning.commit()  # no conflict: the compare-and-clear finds a new value
        assert store.raw_get(key) == record("back", now).to_bytes()
        again = store.create_transaction()
        assert await _core.prune_heartbeats(again, LAYOUT, now) == 0
        await again.commit()

    run_virtual(main)


def test_the_largest_record_is_small() -> None:
    """FoundationDB-safe: far under the value limit, whatever the consumer serves,
    as the heartbeat builds it (texts and topics cut to fit)."""
    big = 2**63
    topics = ["t" * 200] * 2000
    worst = WorkerRecord(
        consumer_id="f" * 16,
        host=_core.fitting_text("\u4e2d" * 300),
        pid=big,
        started=big,
        seen=big,
        interval=big,
        concurrency=big,
        running=big,
        stopping=True,
        leased=big,
        completed=big,
        retried=big,
        dead_lettered=big,
        lost=big,
        version=_core.fitting_text("9" * 500),
        topics=_core.fitting_topics(topics),
        topic_count=len(topics),
        metrics=_core.fitting_text("http://" + "x" * 500),
    )
    assert len(worst.to_bytes()) <= RECORD_BYTES
    assert len(json.dumps(worst.host)) <= TEXT_BYTES and worst.host
    assert len(worst.topics) == 1 and WorkerRecord.from_bytes(worst.to_bytes()) == worst


def test_records_of_other_versions_read() -> None:
    newer = {**json.loads(record("c", 5).to_bytes()), "rss": 123, "queues": ["a"]}
    assert WorkerRecord.from_bytes(json.dumps(newer).encode()) == record("c", 5)
    older = {"id": "c", "host": "h", "pid": 1, "started": 5, "seen": 5, "interval": 10_000}
    assert WorkerRecord.from_bytes(json.dumps({**older, "concurrency": 1}).encode()) == record(
        "c", 5
    )
    with pytest.raises(ValueError, match="heartbeat"):
        WorkerRecord.from_bytes(json.dumps(older).encode())


def test_the_heartbeat_key_keeps_its_layout() -> None:
    """Stored keys read back forever: ``root + (hb, consumer_id)``."""
    assert LAYOUT.heartbeat("c1") == b"\x02quickq\x00\x02hb\x00\x02c1\x00"
    assert Layout(("app", 7)).heartbeat("c1") == fdb_tuple.pack(("app", 7, "hb", "c1"))
    begin, end = LAYOUT.heartbeat_range()
    assert begin < LAYOUT.heartbeat("") < LAYOUT.heartbeat("\U0010ffff") < end
    assert not begin <= Layout().name("hb") < end
    assert LAYOUT.parse_heartbeat(LAYOUT.heartbeat("c\x001")) == "c\x001"


def test_the_interval_is_checked_like_every_duration() -> None:
    with pytest.raises(quickq.InvalidArgumentError, match="heartbeat_interval"):
        quickq.ConsumerConfig(heartbeat_interval=0)
