"""Consumer defects the consumer model found, each pinned by a deterministic test.

Tests of defects that need a change outside ``_core`` are marked
``xfail(strict=True)`` with the reason, so they fail the suite (as XPASS)
the moment they are fixed and can then be unmarked.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import quickq
from quickq.stores import MemoryStore

from .._stores import run_virtual, virtual_clock


@pytest.mark.parametrize("outcome", ["returns", "raises"])
def test_an_outcome_reached_before_a_hard_cancel_is_recorded_not_released(outcome: str) -> None:
    """Found by the consumer model (a hard cancel racing a job that had just
    finished). The handler finishes, and in the same instant its consumer is
    cancelled: the finished attempt must be recorded (completed, or retried
    with its attempt counted), not given back to run again as the same attempt.
    Fixed in ``_consumer._runner.JobRunner._attempt``: the outcome is recorded before the job's
    scope closes."""
    jobs = quickq.JobRegistry()
    calls: list[int] = []
    doomed = trio.CancelScope()

    @jobs.job("once", max_retries=3, backoff=quickq.Backoff(jitter=0.0))
    async def once(payload: Any, meta: quickq.JobMeta) -> None:
        calls.append(meta.attempt)
        if meta.attempt == 1:
            doomed.cancel()  # the consumer is cancelled as the handler ends
            if outcome == "raises":
                raise RuntimeError("first attempt fails")

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        await queue.enqueue("t", "once", None)
        with doomed:
            async with quickq.open_consumer(store, jobs, clock=virtual_clock):
                await trio.sleep_forever()
        async with quickq.open_consumer(store, jobs, clock=virtual_clock) as c:
            with trio.move_on_after(60):
                while c.statistics().running or not calls:  # noqa: ASYNC110
                    await trio.sleep(0.5)
            await trio.sleep(10)
        if outcome == "returns":
            assert calls == [1], "a completed job ran again"
        else:
            assert calls == [1, 2], "the failed attempt was not counted"
        assert await queue.stats("t") == quickq.QueueStats("t", 0, 0, 0, 0)

    run_virtual(main)
