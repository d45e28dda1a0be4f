"""OpenTelemetry spans: send, create, process and settle, per the messaging
semantic conventions (docs/observability.md), on the memory store in virtual time."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

import quickq
from quickq import _core, _telemetry
from quickq.stores import MemoryStore

from ._otel import Sdk, context_of, links_of, make_sdk
from ._stores import Partition, run_virtual, virtual_clock
from .test_consumer import steal_lease, wait_until

FAST = quickq.Backoff(base=1.0, jitter=0.0)


def only(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def drain(
    store: MemoryStore, jobs: quickq.JobRegistry, sdk: Sdk, *, until: Any = None, **options: Any
) -> quickq.ConsumerStatistics:
    async with quickq.open_consumer(
        store, jobs, clock=virtual_clock, telemetry=sdk.telemetry, **options
    ) as consumer:
        with trio.fail_after(3600):
            if until is None:
                await consumer.wait_idle()
            else:
                await wait_until(lambda: until(consumer))
    return consumer.statistics()


def test_enqueue_sends_and_the_attempt_processes_linked_to_it() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()
    inner: list[Any] = []

    @jobs.job("mail")
    async def mail(payload: Any, meta: quickq.JobMeta) -> None:
        tracer = sdk.telemetry.tracer_provider.get_tracer("app")  # type: ignore[union-attr]
        with tracer.start_as_current_span("render") as span:
            inner.append(span)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        job = await queue.enqueue("tenant-1", "mail", {"to": "a"}, priority=7)
        send = only(sdk.finished("send"))
        assert send.name == "send mail" and send.kind is SpanKind.PRODUCER
        assert attrs_of(send) == {
            "messaging.system": "quickq",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": "mail",
            "messaging.message.id": job.job_id,
            "messaging.quickq.queue.id": "tenant-1",
        }
        assert sdk.finished("create") == []
        await trio.sleep(5)  # a wait of 5 s
        await drain(store, jobs, sdk)
        process = only(sdk.finished("process"))
        assert process.name == "process mail" and process.kind is SpanKind.CONSUMER
        assert process.parent is None  # linked, not parented
        assert links_of(process) == [context_of(send)]
        got = attrs_of(process)
        assert got.pop("messaging.client.id")
        assert got == {
            "messaging.system": "quickq",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "mail",
            "messaging.message.id": job.job_id,
            "messaging.quickq.queue.id": "tenant-1",
            "messaging.quickq.job.attempt": 1,
            "messaging.quickq.job.action": "complete",
            "messaging.quickq.job.outcome": "completed",
        }  # messaging.quickq.lease.lost only when true
        assert process.status.status_code is StatusCode.UNSET
        # The wait is the metric's (a span attribute per job would cost every span).
        (wait,) = sdk.points("quickq.job.wait.duration")
        assert (wait.count, wait.sum) == (1, pytest.approx(5, abs=0.01))
        # The handler's own span is a child of process.
        render = only(sdk.finished("render"))
        assert render.parent is not None
        assert render.parent.span_id == context_of(process)[1]
        settle = only(sdk.finished("settle"))
        assert settle.kind is SpanKind.CLIENT
        assert attrs_of(settle)["messaging.batch.message_count"] == 1

    run_virtual(main)


def test_enqueue_many_creates_a_span_per_job_linked_from_one_send() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("mail")
    async def mail(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        made = await queue.enqueue_many([quickq.NewJob("q", "mail", n) for n in range(3)])
        creates = sdk.finished("create")
        assert [s.name for s in creates] == ["create mail"] * 3
        assert all(s.kind is SpanKind.PRODUCER for s in creates)
        assert [attrs_of(s)["messaging.message.id"] for s in creates] == [j.job_id for j in made]
        send = only(sdk.finished("send"))
        assert send.name == "send mail" and send.kind is SpanKind.CLIENT
        assert attrs_of(send)["messaging.batch.message_count"] == 3
        assert "messaging.message.id" not in attrs_of(send)
        assert links_of(send) == [context_of(s) for s in creates]
        await drain(store, jobs, sdk)
        processes = {attrs_of(s)["messaging.message.id"]: s for s in sdk.finished("process")}
        for create in creates:
            job_id = attrs_of(create)["messaging.message.id"]
            assert links_of(processes[job_id]) == [context_of(create)]

    run_virtual(main)


def test_a_batch_without_create_spans_or_of_mixed_topics() -> None:
    sdk = make_sdk(create_spans=False)
    jobs = quickq.JobRegistry()
    for topic in ("a", "b"):
        jobs.job(topic)(_noop)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        await queue.enqueue_many([quickq.NewJob("q", "a"), quickq.NewJob("q", "b")])
        send = only(sdk.finished("send"))
        assert send.name == "send" and send.kind is SpanKind.PRODUCER  # its context is in each
        assert "messaging.destination.name" not in attrs_of(send)
        assert sdk.finished("create") == []
        await drain(store, jobs, sdk)
        processes = sdk.finished("process")
        assert sorted(s.name for s in processes) == ["process a", "process b"]
        assert all(links_of(s) == [context_of(send)] for s in processes)

    run_virtual(main)


async def _noop(payload: Any, meta: quickq.JobMeta) -> None:
    pass


def test_a_retry_gives_two_process_spans_linked_to_one_creation() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("flaky", backoff=FAST)
    async def flaky(payload: Any, meta: quickq.JobMeta) -> None:
        if meta.attempt == 1:
            raise ValueError("first time")

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        await queue.enqueue("q", "flaky")
        send = only(sdk.finished("send"))
        await drain(store, jobs, sdk, until=lambda c: c.statistics().completed == 1)
        first, second = sdk.finished("process")
        assert links_of(first) == links_of(second) == [context_of(send)]
        a, b = attrs_of(first), attrs_of(second)
        assert (a["messaging.quickq.job.attempt"], b["messaging.quickq.job.attempt"]) == (1, 2)
        assert (a["messaging.quickq.job.action"], a["messaging.quickq.job.outcome"]) == (
            "retry",
            "retried",
        )
        assert a["error.type"] == "ValueError"
        assert first.status.status_code is StatusCode.ERROR
        assert first.status.description == "ValueError: first time"
        (event,) = first.events
        assert event.name == "exception"
        assert (event.attributes or {})["exception.type"] == "ValueError"
        assert b["messaging.quickq.job.outcome"] == "completed" and "error.type" not in b
        assert second.status.status_code is StatusCode.UNSET

    run_virtual(main)


def test_snooze_discard_dead_letter_and_no_handler_show_on_the_span(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="quickq")
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("snooze")
    async def snooze(payload: Any, meta: quickq.JobMeta) -> Any:
        return quickq.Snooze(2.5) if meta.attempt == 1 else None

    @jobs.job("discard")
    async def discard(payload: Any, meta: quickq.JobMeta) -> Any:
        return quickq.Discard("spam")

    @jobs.job("die", max_retries=0)
    async def die(payload: Any, meta: quickq.JobMeta) -> None:
        raise KeyError("gone")

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock, telemetry=sdk.telemetry)  # no registry
        for topic in ("snooze", "discard", "die", "nobody"):
            await queue.enqueue("q", topic, max_retries=0 if topic == "die" else 3)
        await drain(store, jobs, sdk, until=lambda c: c.statistics().completed == 1)
        spans: dict[str, list[dict[str, Any]]] = {}
        status: dict[str, StatusCode] = {}
        sends = {attrs_of(s)["messaging.destination.name"]: s for s in sdk.finished("send")}
        for span in sdk.finished("process"):
            topic = span.name.removeprefix("process ")
            assert links_of(span) == [context_of(sends[topic])]  # a snooze keeps it too
            spans.setdefault(span.name, []).append(attrs_of(span))
            status[span.name] = span.status.status_code
        snoozed, done = spans["process snooze"]
        assert snoozed["messaging.quickq.job.action"] == "snooze"
        assert snoozed["messaging.quickq.snooze.delay"] == 2.5
        assert snoozed["messaging.quickq.job.outcome"] == "retried"
        assert "error.type" not in snoozed and done["messaging.quickq.job.outcome"] == "completed"
        (discarded,) = spans["process discard"]
        assert discarded["messaging.quickq.job.outcome"] == "dead_lettered"
        assert discarded["messaging.quickq.dead.reason"] == "discarded"
        assert "error.type" not in discarded and status["process discard"] is StatusCode.UNSET
        (died,) = spans["process die"]
        assert died["messaging.quickq.job.action"] == "retry"  # spent: dead-lettered instead
        assert died["messaging.quickq.job.outcome"] == "dead_lettered"
        assert died["messaging.quickq.dead.reason"] == "failed"
        assert died["error.type"] == "KeyError" and status["process die"] is StatusCode.ERROR
        (orphan,) = spans["process nobody"]
        assert orphan["error.type"] == "no_handler"
        assert orphan["messaging.quickq.dead.reason"] == "no_handler"
        assert status["process nobody"] is StatusCode.ERROR

    run_virtual(main)
    # And in the log: the snooze as what it is, at DEBUG.
    (record,) = [r for r in caplog.records if r.__dict__.get("topic") == "snooze"][:1]
    assert (record.levelno, record.__dict__["snooze_delay"]) == (logging.DEBUG, 2.5)
    assert record.getMessage().endswith(": snoozed for 2.5s")


def test_a_timeout_and_a_lost_lease() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("slow", timeout=1.0, max_retries=0)
    async def slow(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(10)

    @jobs.job("long")
    async def long(payload: Any, meta: quickq.JobMeta) -> None:
        await trio.sleep(1000)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        await queue.enqueue("q", "slow")
        job = await queue.enqueue("t", "long")
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, telemetry=sdk.telemetry, lease_duration=30
        ) as c:
            await wait_until(lambda: c.statistics().dead_lettered == 1)
            await trio.sleep(12)
            await steal_lease(store, queue, "t", job.job_id)
            await wait_until(lambda: c.statistics().lost == 1)
        timed_out = only(sdk.finished("process slow"))
        assert attrs_of(timed_out)["error.type"] == "timeout"
        assert timed_out.status.status_code is StatusCode.ERROR
        lost = attrs_of(only(sdk.finished("process long")))
        assert lost["messaging.quickq.job.outcome"] == "lost"
        assert lost["messaging.quickq.lease.lost"] is True
        assert lost["error.type"] == "lease_lost"

    run_virtual(main)


@pytest.mark.parametrize("raises", [False, True])
def test_a_lease_found_gone_at_commit_is_lost_alike_in_log_span_and_metrics(
    raises: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler ends after another consumer took its lease, before the
    renewer could notice: the commit finds it gone. Whatever the handler did,
    the attempt is lost to a lost lease, the same way in all three."""
    caplog.set_level(logging.WARNING, logger="quickq")
    sdk = make_sdk()
    jobs = quickq.JobRegistry()
    stolen = trio.Event()

    @jobs.job("late", timeout=None)
    async def late(payload: Any, meta: quickq.JobMeta) -> None:
        await stolen.wait()
        if raises:
            raise ValueError("boom")

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        job = await queue.enqueue("t", "late")
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, telemetry=sdk.telemetry, lease_duration=30
        ) as c:
            await wait_until(lambda: c.statistics().running == 1)
            await steal_lease(store, queue, "t", job.job_id)
            stolen.set()  # well before the first renewal, at 10 s
            await wait_until(lambda: c.statistics().lost == 1)

    run_virtual(main)
    span = only(sdk.finished("process late"))
    ended = attrs_of(span)
    assert ended["messaging.quickq.job.outcome"] == "lost"
    assert (ended["messaging.quickq.lease.lost"], ended["error.type"]) == (True, "lease_lost")
    assert span.status.description == "its lease was lost"
    # The handler's exception is still on the span, as what happened.
    assert [e.name for e in span.events] == (["exception"] if raises else [])
    (record,) = [r for r in caplog.records if r.__dict__.get("outcome") == "lost"]
    assert (record.__dict__["reason"], record.__dict__["error_type"]) == ("lease_lost",) * 2
    assert record.getMessage().endswith(": its lease was lost")
    lost = sdk.points("quickq.lease.lost")
    assert [(p.attributes["error.type"], p.value) for p in lost] == [("lease_lost", 1)]


def test_a_replayed_dead_letter_keeps_its_creation_context() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()

    @jobs.job("once", max_retries=0)
    async def once(payload: Any, meta: quickq.JobMeta) -> None:
        if meta.errors == 0 and not replayed:
            raise RuntimeError("no")

    replayed: list[bool] = []

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        job = await queue.enqueue("q", "once")
        send = only(sdk.finished("send"))
        await drain(store, jobs, sdk, until=lambda c: c.statistics().dead_lettered == 1)
        replayed.append(True)
        await queue.replay("q", job.job_id)
        await drain(store, jobs, sdk, until=lambda c: c.statistics().completed == 1)
        first, second = sdk.finished("process")
        assert links_of(first) == links_of(second) == [context_of(send)]
        assert attrs_of(second)["messaging.quickq.job.outcome"] == "completed"

    run_virtual(main)


def test_a_failed_enqueue_records_its_error() -> None:
    sdk = make_sdk()

    async def main() -> None:
        partition = Partition(MemoryStore())
        queue = quickq.JobQueue(partition, clock=virtual_clock, telemetry=sdk.telemetry)
        partition.cut()
        with pytest.raises(quickq.StoreUnavailableError):
            await queue.enqueue("q", "t")
        send = only(sdk.finished("send"))
        assert send.status.status_code is StatusCode.ERROR
        assert attrs_of(send)["error.type"] == "quickq.StoreUnavailableError"
        assert [e.name for e in send.events] == ["exception"]

    run_virtual(main)


def test_telemetry_none_records_nothing() -> None:
    sdk = make_sdk()
    jobs = quickq.JobRegistry()
    jobs.job("t")(_noop)

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=None)
        job = await queue.enqueue("q", "t")
        item = await store.transact(lambda tr: _core.read_item(tr, queue._layout, "q", job.job_id))
        assert item is not None and item.trace is None
        traced = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=sdk.telemetry)
        assert traced.telemetry is sdk.telemetry
        async with quickq.open_consumer(store, jobs, clock=virtual_clock, telemetry=None) as c:
            await c.wait_idle()
        assert sdk.finished() == []

    run_virtual(main)


def test_telemetry_is_checked() -> None:
    with pytest.raises(quickq.InvalidArgumentError, match="telemetry must be"):
        quickq.JobQueue(MemoryStore(), telemetry="on")  # type: ignore[arg-type]
    with pytest.raises(quickq.InvalidArgumentError, match="telemetry must be"):
        quickq.ConsumerConfig(telemetry=True)  # type: ignore[arg-type]
    with pytest.raises(quickq.InvalidArgumentError, match="create_spans"):
        quickq.Telemetry(create_spans=1)  # type: ignore[arg-type]
    with pytest.raises(quickq.InvalidArgumentError, match="tracer_provider must be"):
        quickq.Telemetry(tracer_provider=5)  # type: ignore[arg-type]
    with pytest.raises(quickq.InvalidArgumentError, match="meter_provider must be"):
        quickq.Telemetry(meter_provider=TracerProvider())  # type: ignore[arg-type]
    assert quickq.ConsumerConfig() == quickq.ConsumerConfig()


def test_a_failing_sdk_never_fails_a_job(caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry import trace

    class Broken(trace.Tracer):
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("broken SDK")

        def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("broken SDK")

    class BrokenProvider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return Broken()

    telemetry = quickq.Telemetry(tracer_provider=BrokenProvider())
    jobs = quickq.JobRegistry()
    jobs.job("t")(_noop)
    _telemetry._failed.clear()

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock, telemetry=telemetry)
        await queue.enqueue("q", "t")
        await queue.enqueue_many([quickq.NewJob("q", "t")])
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, telemetry=telemetry
        ) as consumer:
            await consumer.wait_idle()
        assert consumer.statistics().completed == 2

    run_virtual(main)
    failures = [r for r in caplog.records if "OpenTelemetry recording failed" in r.message]
    assert len(failures) == 1  # logged once per process


def test_quickq_worker_no_telemetry_turns_it_off() -> None:
    from click.testing import CliRunner

    from quickq._cli import cli
    from quickq._cli._config_options import config_from

    assert config_from({"telemetry": False}).telemetry is None
    assert config_from({"telemetry": True}).telemetry == quickq.Telemetry()
    assert config_from({}).telemetry == quickq.Telemetry()
    shown = CliRunner().invoke(cli, ["worker", "--help"]).output
    assert "--telemetry / --no-telemetry" in shown
