"""A consumer's in-process numbers, its log records and events, the store-wide
overview, and the Prometheus collectors and ASGI app, in process (virtual
time on the in-memory store)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import quickq
import quickq.prometheus as prom
from quickq._consumer._report import PROCESS_BUCKETS, WAIT_BUCKETS, Reporter
from quickq._core import Item, Lease, Outcome, State
from quickq.stores import MemoryStore

from ._stores import run_virtual, virtual_clock
from .test_consumer import Recorder, consumer, queue_for, steal_lease, wait_until

NO_JITTER = quickq.Backoff(base=1.0, factor=2.0, cap=300.0, jitter=0.0)


def known_workload() -> Recorder:
    """10 jobs: 7 complete after 0.3 s, 2 fail once then complete, 1 dies
    after its one retry (13 attempts: 3 retried, 1 dead, 9 completed)."""
    rec = Recorder()

    @rec.job("ok")
    async def ok(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(0.3)

    @rec.job("flaky", backoff=NO_JITTER)
    async def flaky(payload: Any, meta: quickq.JobMeta) -> None:
        if meta.attempt == 1:
            raise ValueError("first time")

    @rec.job("doomed", max_retries=1, backoff=NO_JITTER)
    async def doomed(payload: Any, meta: quickq.JobMeta) -> None:
        raise RuntimeError("never")

    return rec


async def run_known_workload(rec: Recorder, store: MemoryStore) -> quickq.Consumer:
    """Run the known workload to its end; the consumer, stopped."""
    queue = queue_for(store, rec)
    jobs = [quickq.NewJob("a", "ok", n) for n in range(7)]
    jobs += [quickq.NewJob("b", "flaky", n) for n in range(2)] + [quickq.NewJob("b", "doomed")]
    await queue.enqueue_many(jobs)
    async with consumer(store, rec) as c:
        await wait_until(lambda: c.statistics().completed + c.statistics().dead_lettered == 10)
        await c.wait_idle()
    assert isinstance(c, quickq.Consumer)
    return c


def test_the_reporter_counts_a_known_workload_per_topic_and_outcome() -> None:
    rec = known_workload()

    async def main() -> None:
        c = await run_known_workload(rec, MemoryStore())
        topics = c._reporter.topics
        assert {t: n.started for t, n in topics.items()} == {"ok": 7, "flaky": 4, "doomed": 2}
        ends = {(t, o.value): n.ended(o) for t, n in topics.items() for o in Outcome if n.ended(o)}
        assert ends == {
            ("ok", "completed"): 7,
            ("flaky", "retried"): 2,
            ("flaky", "completed"): 2,
            ("doomed", "retried"): 1,
            ("doomed", "dead_lettered"): 1,
        }
        assert sum(topics["doomed"].dead.values()) == 1
        # Virtual time: each ok attempt took exactly 0.3 s, start to recorded outcome.
        ok = topics["ok"].durations[Outcome.COMPLETED]
        assert ok.bounds == PROCESS_BUCKETS
        assert ok.counts[PROCESS_BUCKETS.index(0.5)] == 7 and ok.count == 7
        assert ok.sum == pytest.approx(7 * 0.3)
        # Due to start: the first attempts started as they were enqueued.
        wait = topics["ok"].wait
        assert wait.bounds == WAIT_BUCKETS and wait.counts[0] == 7 and wait.sum < 0.01
        s = c.statistics()
        assert (s.leased, s.completed, s.retried, s.dead_lettered, s.lost) == (13, 9, 3, 1, 0)

    run_virtual(main)


def item(topic: str = "t", attempt: int = 1, vesting_s: float = 100.0) -> Item:
    return Item(
        "j1", topic, b"", 100, int(vesting_s * 1000), 3, 0, State.RUNNING, attempt=attempt,
        lease=Lease("me", "l1", 0),
    )  # fmt: skip


def test_histograms_bucket_each_value_at_or_below_its_bound() -> None:
    now = [0.0]
    reporter = Reporter(lambda: now[0], None, consumer_id="c1")
    for wait, duration in [(0.005, 0.005), (0.0051, 10.0), (4000.0, 11.0)]:
        now[0] = 100.0 + wait
        reporter.started("q", item(), at=reporter.now())
        start = reporter.now()
        now[0] += duration
        reporter.ended("q", item(), Outcome.COMPLETED, started=start)
    numbers = reporter.topics["t"]
    completed = numbers.durations[Outcome.COMPLETED]
    assert completed.counts[0] == 1  # 0.005 is in le="0.005"
    assert completed.counts[PROCESS_BUCKETS.index(10.0)] == 1
    assert completed.counts[-1] == 1  # above the last bound: +Inf only
    assert numbers.wait.counts[0] == 1 and numbers.wait.counts[1] == 1
    assert numbers.wait.counts[-1] == 1
    assert numbers.wait.sum == pytest.approx(4000.0101, abs=1e-6)


def test_each_ended_attempt_is_one_log_record_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [200.0]
    reporter = Reporter(lambda: now[0], None, consumer_id="c1")
    caplog.set_level(logging.DEBUG, logger="quickq")
    ends: list[tuple[Outcome | None, dict[str, Any]]] = [
        (Outcome.COMPLETED, {}),
        (Outcome.RELEASED, {}),
        (Outcome.RETRIED, {"error": "Traceback...\nValueError: boom", "error_type": "ValueError"}),
        (Outcome.DEAD_LETTERED, {"error": "no handler for topic 't'", "reason": "no_handler"}),
        (Outcome.RETRIED, {"snooze": 30.0}),
        (None, {"error_type": "lease_lost"}),
        (None, {"error_type": "unrecorded"}),
    ]
    for outcome, options in ends:
        reporter.ended("q", item(attempt=2), outcome, started=199.5, **options)
    records = [r for r in caplog.records if r.name == "quickq"]
    assert [(r.levelno, r.__dict__["outcome"]) for r in records] == [
        (logging.DEBUG, "completed"),
        (logging.DEBUG, "released"),
        (logging.INFO, "retried"),
        (logging.WARNING, "dead"),
        (logging.DEBUG, "retried"),  # a snooze is no failure
        (logging.WARNING, "lost"),
        (logging.WARNING, "lost"),
    ]
    for r in records:
        fields = {k: r.__dict__[k] for k in ("job_id", "queue_id", "topic", "attempt")}
        assert fields == {"job_id": "j1", "queue_id": "q", "topic": "t", "attempt": 2}
        assert r.__dict__["consumer_id"] == "c1" and r.__dict__["duration"] == 0.5
    retried, dead, snoozed, lost, unrecorded = records[2:]
    assert snoozed.getMessage() == "retried q/j1 t attempt 2 after 0.50s: snoozed for 30s"
    assert snoozed.__dict__["snooze_delay"] == 30.0 and "error_type" not in snoozed.__dict__
    assert retried.getMessage() == "retried q/j1 t attempt 2 after 0.50s: ValueError: boom"
    assert retried.__dict__["error_type"] == "ValueError"
    assert "error_type" not in dead.__dict__ and dead.__dict__["reason"] == "no_handler"
    assert "reason" not in retried.__dict__
    assert (lost.__dict__["reason"], lost.__dict__["error_type"]) == ("lease_lost", "lease_lost")
    assert lost.getMessage() == "lost q/j1 t attempt 2 after 0.50s: its lease was lost"
    assert (unrecorded.__dict__["reason"], unrecorded.__dict__["error_type"]) == ("unrecorded",) * 2
    assert unrecorded.getMessage().endswith(": its outcome could not be recorded")
    assert reporter.topics["t"].dead == {"no_handler": 1}


def test_no_log_record_is_built_below_the_loggers_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="quickq")
    reporter = Reporter(lambda: 1.0, None)
    reporter.ended("q", item(), Outcome.COMPLETED, started=0.0)
    reporter.ended("q", item(), Outcome.RETRIED, started=0.0)
    assert not [r for r in caplog.records if r.name == "quickq"]
    assert reporter.counts.completed == reporter.counts.retried == 1


def test_every_ended_attempt_is_reported_once_lost_leases_and_shutdown_included(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One ``started`` event per attempt, then exactly one end, as an event and
    as a log record: completions, a lost lease, jobs released by a graceful
    stop, and jobs still queued for a runner when the consumer is cancelled."""
    caplog.set_level(logging.DEBUG, logger="quickq")
    rec = Recorder()
    doomed = trio.CancelScope()

    @rec.job("quick")
    async def quick(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    @rec.job("long")
    async def long(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(1000)

    @rec.job("trigger")
    async def trigger(payload: Any, meta: quickq.JobMeta) -> None:
        doomed.cancel()

    events: list[quickq.JobEvent] = []

    async def main() -> None:
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue_many([quickq.NewJob("a", "quick", n) for n in range(5)])
        victim = await queue.enqueue("b", "long")
        async with consumer(store, rec, on_event=events.append, lease_duration=30) as c:
            await wait_until(lambda: c.statistics().running == 1)
            await trio.sleep(12)
            await steal_lease(store, queue, "b", victim.job_id)
            await wait_until(lambda: c.statistics().lost == 1)
            await queue.enqueue("c", "long")
            await wait_until(lambda: c.statistics().running == 1)
        # A graceful stop released it. Now a batch cancelled as its first job ends.
        store = MemoryStore()
        queue = queue_for(store, rec)
        await queue.enqueue_many(
            [quickq.NewJob("d", "trigger")] + [quickq.NewJob("d", "long") for _ in range(3)]
        )
        with doomed:
            async with consumer(
                store, rec, on_event=events.append, concurrency=4, batch_size=4
            ) as c:
                await trio.sleep_forever()

    run_virtual(main)
    by_job: dict[str, list[str]] = {}
    for e in events:
        by_job.setdefault(e.job_id, []).append(e.kind)
    for kinds in by_job.values():  # started, its end, started, its end...
        assert kinds[::2] == ["started"] * (len(kinds) // 2) and len(kinds) % 2 == 0
        assert "started" not in kinds[1::2]
    ends = [e for e in events if e.kind != "started"]
    assert Counter(e.kind for e in ends) == Counter(completed=6, lost=1, released=4)
    logged = [
        (r.__dict__["job_id"], r.__dict__["outcome"])
        for r in caplog.records
        if r.name == "quickq" and "outcome" in r.__dict__
    ]
    assert logged == [(e.job_id, e.kind) for e in ends]  # one record per end, in order
    lost_lines = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost_lines) == 1 and lost_lines[0].levelno == logging.WARNING


def test_a_lost_lease_is_logged_with_the_consumer_and_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="quickq")
    rec = Recorder()

    @rec.job("long")
    async def long(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(1000)

    async def main() -> str:
        store = MemoryStore()
        queue = queue_for(store, rec)
        victim = await queue.enqueue("b", "long")
        async with consumer(store, rec, lease_duration=30) as c:
            await wait_until(lambda: c.statistics().running == 1)
            await steal_lease(store, queue, "b", victim.job_id)
            await wait_until(lambda: c.statistics().lost == 1)
            consumer_id: str = c.consumer_id
            return consumer_id

    consumer_id = run_virtual(main)
    (record,) = [r for r in caplog.records if r.__dict__.get("outcome") == "lost"]
    assert record.__dict__["consumer_id"] == consumer_id
    assert record.__dict__["reason"] == "lease_lost"


def test_overview_reads_counters_and_the_oldest_ready_job() -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock)
        await queue.enqueue_many([quickq.NewJob("a", "t", n, priority=n) for n in range(3)])
        await trio.sleep(5)
        await queue.enqueue("a", "t", priority=0)  # runs first, yet waited least
        await queue.enqueue("b", "t", delay=2)  # due before the overview, not yet pending
        await queue.enqueue("c", "t", delay=3600)
        await trio.sleep(3)
        overview = await queue.overview()
        rows = {row.stats.queue_id: row for row in overview.queues}
        assert [row.stats for row in overview.queues] == [
            await queue.stats(qid) for qid in ("a", "b", "c")
        ]
        assert rows["a"].oldest_ready == pytest.approx(8.0) and rows["a"].oldest_exact
        assert rows["b"].oldest_ready == pytest.approx(1.0)
        assert rows["c"].oldest_ready is None
        assert overview.totals == {"pending": 4, "scheduled": 2, "running": 0, "dead": 0}
        assert overview.oldest_ready == pytest.approx(8.0) and not overview.truncated
        first = await queue.overview(max_queues=2)
        assert [row.stats.queue_id for row in first.queues] == ["a", "b"] and first.truncated
        with pytest.raises(quickq.InvalidArgumentError):
            await queue.overview(max_queues=0)

    run_virtual(main)


def test_overview_of_a_long_ready_index_is_a_lower_bound() -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock)
        await queue.enqueue("a", "t", priority=200)  # the oldest, behind 100 better ones
        await trio.sleep(10)
        await queue.enqueue_many([quickq.NewJob("a", "t", priority=1) for _ in range(100)])
        await trio.sleep(1)
        (row,) = (await queue.overview()).queues
        assert row.stats.pending == 101 and not row.oldest_exact
        assert row.oldest_ready == pytest.approx(1.0)  # a lower bound of the true 11 s

    run_virtual(main)


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(found: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float:
    values = [
        s.value
        for s in found[family].samples
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (family, name, labels, values)
    return float(values[0])


async def call(app: Any, scope: dict[str, Any], *messages: dict[str, Any]) -> list[dict[str, Any]]:
    """Call ASGI *app* with *scope*, feeding it *messages*; what it sent."""
    sent: list[dict[str, Any]] = []
    inbox = list(messages)

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http(path: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
        "headers": [(b"host", b"localhost")],
    }  # fmt: skip


async def get(app: Any, path: str, method: str = "GET") -> tuple[int, str]:
    sent = await call(app, http(path, method), {"type": "http.request", "body": b""})
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body.decode()


def test_the_asgi_app_serves_the_consumers_and_the_stores_metrics() -> None:
    rec = known_workload()

    async def main() -> None:
        store = MemoryStore()
        c = await run_known_workload(rec, store)
        queue = queue_for(store, rec)
        await queue.enqueue("a", "ok", delay=60)
        app = prom.asgi_app(prom.consumer_collector(c), prom.store_collector(queue, refresh=10))
        lifespan = await call(
            app,
            {"type": "lifespan", "asgi": {"version": "3.0"}},
            {"type": "lifespan.startup"},
            {"type": "lifespan.shutdown"},
        )
        assert [m["type"] for m in lifespan] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert (await get(app, "/"))[0] == 404
        assert (await get(app, "/metrics/x"))[0] == 404
        assert (await get(app, "/metrics", "POST"))[0] == 405
        status, text = await get(app, "/metrics")
        assert status == 200
        found = families(text)
        base = {"messaging_system": "quickq", "messaging_operation_name": "process"}
        consumed = "messaging_client_consumed_messages"
        assert sample(found, consumed, consumed + "_total", **base,
                      messaging_destination_name="flaky") == 4  # fmt: skip
        for topic, n in [("ok", 0), ("flaky", 2), ("doomed", 1)]:
            assert sample(found, "quickq_job_retries", "quickq_job_retries_total",
                          messaging_destination_name=topic) == n  # fmt: skip
        dead = "quickq_job_dead_letters"
        assert sample(found, dead, dead + "_total", messaging_destination_name="doomed") == 1
        duration = "messaging_process_duration_seconds"
        ok = {
            **base,
            "messaging_destination_name": "ok",
            "messaging_quickq_job_outcome": "completed",
        }
        assert sample(found, duration, duration + "_count", **ok) == 7
        assert sample(found, duration, duration + "_bucket", le="0.25", **ok) == 0
        assert sample(found, duration, duration + "_bucket", le="0.5", **ok) == 7
        assert sample(found, duration, duration + "_bucket", le="+Inf", **ok) == 7
        assert sample(found, duration, duration + "_sum", **ok) == pytest.approx(2.1)
        bounds = {s.labels["le"] for s in found[duration].samples if "le" in s.labels}
        assert bounds == {*(str(b) for b in PROCESS_BUCKETS), "+Inf"}
        wait = "quickq_job_wait_duration_seconds"
        assert sample(found, wait, wait + "_count", messaging_destination_name="ok") == 7
        assert sample(found, "quickq_consumer_jobs_running") == 0
        assert sample(found, "quickq_consumer_jobs_capacity") == 10
        assert found[duration].type == "histogram" and found["quickq_lease_lost"].type == "counter"
        # The store's gauges agree with JobQueue.stats.
        for qid in ("a", "b"):
            stats = await queue.stats(qid)
            for state in ("pending", "scheduled", "running", "dead"):
                value = sample(found, "quickq_queue_jobs", messaging_quickq_queue_id=qid,
                               messaging_quickq_job_state=state)  # fmt: skip
                assert value == getattr(stats, state)
        assert sample(found, "quickq_jobs", messaging_quickq_job_state="dead") == 1
        assert sample(found, "quickq_jobs", messaging_quickq_job_state="scheduled") == 1
        assert sample(found, "quickq_queues_truncated") == 0
        age = "quickq_queue_oldest_ready_age_seconds"
        assert (
            sample(found, age, messaging_quickq_queue_id="a", messaging_quickq_age_exact="true")
            == 0
        )

    run_virtual(main)


def test_the_store_collector_reads_the_store_once_per_refresh_for_concurrent_scrapes() -> None:
    reads: list[float] = []

    class Counted(quickq.JobQueue):
        async def overview(self, *, max_queues: int | None = 1000) -> quickq.StoreOverview:
            reads.append(trio.current_time())
            await trio.sleep(1)  # a slow store: the other scrapes wait for this read
            return await super().overview(max_queues=max_queues)

    async def main() -> None:
        queue = Counted(MemoryStore(), clock=virtual_clock)
        await queue.enqueue("a", "t")
        collector = prom.store_collector(queue, refresh=15)
        assert list(collector.collect()) == []  # nothing before the first refresh
        app = prom.asgi_app(collector)
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(get, app, "/metrics")
        assert reads == [0.0]
        await trio.sleep(10)
        status, text = await get(app, "/metrics")
        assert reads == [0.0] and status == 200
        assert sample(families(text), "quickq_jobs", messaging_quickq_job_state="pending") == 1
        await trio.sleep(10)
        await get(app, "/metrics")
        assert reads == [0.0, 21.0]
        totals_only = prom.asgi_app(prom.store_collector(queue, per_queue=False))
        found = families((await get(totals_only, "/metrics"))[1])
        assert "quickq_jobs" in found and "quickq_queue_jobs" not in found

    run_virtual(main)


def test_collectors_refuse_what_they_cannot_serve() -> None:
    queue = quickq.JobQueue(MemoryStore())
    with pytest.raises(quickq.InvalidArgumentError):
        prom.consumer_collector(queue)  # type: ignore[arg-type]
    with pytest.raises(quickq.InvalidArgumentError):
        prom.store_collector(queue, refresh=-1)
    with pytest.raises(quickq.InvalidArgumentError):
        prom.store_collector(queue, max_queues=0)
    with pytest.raises(quickq.InvalidArgumentError, match="per_queue must be a bool"):
        prom.store_collector(queue, per_queue="no")  # type: ignore[arg-type]
    # At once, not at each scrape.
    with pytest.raises(quickq.InvalidArgumentError, match=r"collect\(\) method"):
        prom.asgi_app(prom.store_collector(queue), 5)  # type: ignore[arg-type]


def test_serve_binds_the_loopback_interface_by_default() -> None:
    import urllib.request

    async def main() -> None:
        app = prom.asgi_app()
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: prom.serve(app, port=0, task_status=task_status)
            )
            (url,) = urls
            assert url.startswith("http://127.0.0.1:")
            body = await trio.to_thread.run_sync(
                lambda: urllib.request.urlopen(url + "/metrics", timeout=10).read()
            )
            assert body == b""  # no collectors, no series
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_importing_quickq_prometheus_without_the_extra_names_it() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n    import quickq.prometheus\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'quickq[prometheus]'" in out.stdout


def test_the_store_gauges_count_the_workers_by_their_heartbeat() -> None:
    async def main() -> None:
        store = MemoryStore()
        collector = prom.store_collector(quickq.JobQueue(store), refresh=0)
        jobs = quickq.JobRegistry()

        def workers() -> dict[str, float]:
            (family,) = [f for f in collector.collect() if f.name == "quickq_workers"]
            return {s.labels["messaging_quickq_worker_state"]: s.value for s in family.samples}

        async with quickq.open_consumer(store, jobs, clock=virtual_clock):
            await collector.refresh_if_stale()
            assert workers() == {"live": 1, "stopping": 0, "stale": 0}
        await collector.refresh_if_stale()
        assert workers() == {"live": 0, "stopping": 0, "stale": 0}  # a clean stop clears it

    run_virtual(main)
