"""A consumer in a process of its own, with its own OpenTelemetry SDK, for
tests/test_otel_processes.py: ``python -m tests.otel_worker DB OUT N``
consumes from the SQLite store DB until N jobs completed, then writes its
``process`` spans (job id, attempt, outcome, links) to OUT as JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

import trio

import quickq
from quickq.stores.sqlite import SQLiteStore

from ._otel import make_sdk


def registry() -> quickq.JobRegistry:
    jobs = quickq.JobRegistry()

    @jobs.job("work", backoff=quickq.Backoff(base=0.05, jitter=0.0))
    async def work(payload: Any, meta: quickq.JobMeta) -> None:
        if payload == "flaky" and meta.attempt == 1:
            raise RuntimeError("first attempt fails")

    return jobs


async def main(db: str, out: str, count: int) -> None:
    sdk = make_sdk()
    store = await SQLiteStore.open(db)
    try:
        async with quickq.open_consumer(store, registry(), telemetry=sdk.telemetry) as consumer:
            with trio.fail_after(60):
                while consumer.statistics().completed < count:  # noqa: ASYNC110
                    await trio.sleep(0.01)
    finally:
        await store.aclose()
    spans = [
        {
            "job_id": (s.attributes or {})["messaging.message.id"],
            "attempt": (s.attributes or {})["messaging.quickq.job.attempt"],
            "outcome": (s.attributes or {})["messaging.quickq.job.outcome"],
            "links": [[link.context.trace_id, link.context.span_id] for link in s.links],
        }
        for s in sdk.finished("process")
    ]
    await trio.Path(out).write_text(json.dumps(spans))


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
