"""Telemetry across processes: the trace context stored in a SQLite record
links a consumer in another process to the producer; quickq without the
OpenTelemetry API; and the global providers, with nothing passed to quickq."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import trio

import quickq
from quickq.stores.sqlite import SQLiteStore

from ._otel import context_of, make_sdk

ROOT = Path(__file__).parents[1]


def _python(code: str, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_consumer_in_another_process_links_to_the_producer(tmp_path: Path) -> None:
    db, out = tmp_path / "q.db", tmp_path / "spans.json"
    sdk = make_sdk()

    async def produce() -> dict[str, tuple[int, int]]:
        store = await SQLiteStore.open(str(db))
        try:
            queue = quickq.JobQueue(store, telemetry=sdk.telemetry)
            flaky = await queue.enqueue("q", "work", "flaky")
            batch = await queue.enqueue_many([quickq.NewJob("p", "work", n) for n in range(2)])
        finally:
            await store.aclose()
        (send,) = [s for s in sdk.finished("send") if s.kind.name == "PRODUCER"]
        creates = sdk.finished("create")
        contexts = {flaky.job_id: context_of(send)}
        contexts.update({j.job_id: context_of(c) for j, c in zip(batch, creates, strict=True)})
        return contexts

    contexts = trio.run(produce)
    done = subprocess.run(
        [sys.executable, "-m", "tests.otel_worker", str(db), str(out), "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spans = json.loads(out.read_text())
    by_job: dict[str, list[dict[str, object]]] = {}
    for span in spans:
        by_job.setdefault(str(span["job_id"]), []).append(span)
    assert set(by_job) == set(contexts)
    for job_id, context in contexts.items():
        for span in by_job[job_id]:
            assert span["links"] == [list(context)], job_id
    flaky = sorted(by_job[next(iter(contexts))], key=lambda s: int(str(s["attempt"])))
    assert [(s["attempt"], s["outcome"]) for s in flaky] == [(1, "retried"), (2, "completed")]


def test_quickq_imports_and_runs_without_the_api() -> None:
    out = _python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if quickq[otel] were not installed
        import trio, quickq
        from quickq import _telemetry
        from quickq.stores import MemoryStore

        assert not _telemetry.AVAILABLE
        assert _telemetry.resolve(quickq.Telemetry()) is None
        jobs = quickq.JobRegistry()
        ran = []

        @jobs.job("t")
        async def t(payload, meta):
            ran.append(payload)

        async def main():
            store = MemoryStore()
            await quickq.JobQueue(store, jobs).enqueue("q", "t", 1)
            async with quickq.open_consumer(store, jobs) as consumer:
                await consumer.wait_idle()
            print(ran, consumer.statistics().completed)

        trio.run(main)
        """
    )
    assert out.split() == ["[1]", "1"]


def test_the_global_providers_are_used_with_nothing_passed() -> None:
    out = _python(
        """
        import trio, quickq
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from quickq import _telemetry
        from quickq.stores import MemoryStore

        # The API alone (the proxies, no SDK): nothing to record, nothing made.
        assert _telemetry.resolve(quickq.Telemetry()) is None
        jobs = quickq.JobRegistry()

        @jobs.job("t")
        async def t(payload, meta):
            pass

        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs)  # made before the SDK is set up

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

        async def main():
            await queue.enqueue("q", "t")
            async with quickq.open_consumer(store, jobs) as consumer:
                await consumer.wait_idle()

        trio.run(main)
        print(sorted(s.name for s in spans.get_finished_spans()))
        names = {
            m.name
            for r in reader.get_metrics_data().resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
        }
        print("messaging.client.consumed.messages" in names)
        """
    )
    names, consumed = out.strip().splitlines()
    assert names == "['process t', 'send t', 'settle']"
    assert consumed == "True"
