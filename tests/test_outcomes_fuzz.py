"""Handler outcomes and options drawn from the whole space (NaN, infinities,
huge, negative, wrong types, objects JSON cannot encode): every call either
works or raises InvalidArgumentError, and a consumer running such jobs never
crashes: every job ends completed, scheduled or dead, and the store stays
readable. In virtual time, on the memory store."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quickq
from quickq.stores import MemoryStore

from ._stores import run_virtual, virtual_clock


class _Opaque:
    """An object no codec can encode."""


class Boom(BaseException):
    """A BaseException that is not a cancellation."""


ANYTHING = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.just(_Opaque()),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
"""Any argument a caller might pass, sane or not."""

FIELDS = st.dictionaries(
    st.sampled_from(["delay", "priority", "max_retries", "timeout", "job_id"]), ANYTHING
)


def _works_or_argument_error(call: Callable[[], Any]) -> bool:
    """True when *call* worked, False when it raised InvalidArgumentError;
    anything else fails the test."""
    try:
        call()
    except quickq.InvalidArgumentError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(value=ANYTHING, other=ANYTHING)
def test_outcome_and_definition_constructors_work_or_raise_the_argument_error(
    value: Any, other: Any
) -> None:
    async def handler(payload: Any, meta: quickq.JobMeta) -> None:
        pass

    _works_or_argument_error(lambda: quickq.Snooze(value))
    _works_or_argument_error(lambda: quickq.Discard(value))
    _works_or_argument_error(lambda: quickq.Complete(value, writes=other))
    _works_or_argument_error(lambda: quickq.Backoff(base=value, cap=other))
    _works_or_argument_error(lambda: quickq.Backoff(factor=value, jitter=other))
    for name in ("priority", "max_retries", "timeout", "backoff"):
        _works_or_argument_error(
            functools.partial(quickq.JobDefinition, "t", handler, **{name: value})
        )
    backoff = quickq.Backoff(factor=10.0, cap=100.0)
    if type(value) is int:
        assert 0 <= backoff.delay(value) <= 100.0


@settings(max_examples=150, deadline=None)
@given(fields=FIELDS, payload=ANYTHING, options=st.dictionaries(
    st.sampled_from(
        ["concurrency", "batch_size", "lease_duration", "grace_period", "scan_interval",
         "idle_poll", "selection_fraction", "peek_limit", "idle_gc", "cleanup_timeout"]
    ),
    ANYTHING,
))  # fmt: skip
def test_enqueue_and_consumer_options_work_or_raise_the_argument_error(
    fields: dict[str, Any], payload: Any, options: dict[str, Any]
) -> None:
    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, clock=virtual_clock)
        try:
            await queue.enqueue("t", "topic", payload, **fields)
        except quickq.InvalidArgumentError:
            assert store.raw_items() == []  # nothing half-written
        try:
            async with quickq.open_consumer(
                store, quickq.JobRegistry(), clock=virtual_clock, **options
            ) as consumer:
                consumer.stop()
        except quickq.InvalidArgumentError:
            pass
        await _assert_readable(queue)

    run_virtual(main)


def _outcome_of(kind: str, value: Any) -> Any:
    """What a handler of *kind* returns (or raises) with *value*."""
    if kind == "return":
        return value
    if kind == "snooze":
        return quickq.Snooze(value)
    if kind == "discard":
        return quickq.Discard(value)
    if kind == "complete":
        return quickq.Complete(value)
    if kind == "raise":
        raise ValueError(value)
    if kind == "base":
        raise Boom(value)
    # Past the validators, as a careless subclass or copy could make one.
    made: Any = object.__new__(quickq.Snooze if kind == "bad-snooze" else quickq.Discard)
    object.__setattr__(made, "seconds" if kind == "bad-snooze" else "reason", value)
    return made


OUTCOMES = st.lists(
    st.tuples(
        st.sampled_from(
            ["return", "snooze", "discard", "complete", "raise", "base", "bad-snooze",
             "bad-discard"]
        ),
        ANYTHING,
    ),
    min_size=1,
    max_size=8,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outcomes=OUTCOMES, backoff=st.tuples(ANYTHING, ANYTHING))
def test_a_consumer_survives_any_outcome_and_every_job_ends(
    outcomes: list[tuple[str, Any]], backoff: tuple[Any, Any]
) -> None:
    jobs = quickq.JobRegistry()
    try:
        policy = quickq.Backoff(base=backoff[0], cap=backoff[1])
    except quickq.InvalidArgumentError:
        policy = quickq.Backoff()

    async def handler(payload: Any, meta: quickq.JobMeta) -> Any:
        kind, value = outcomes[payload]
        return _outcome_of(kind, value)

    jobs.add(quickq.JobDefinition("fuzz", handler, max_retries=1, backoff=policy))
    events: list[quickq.JobEvent] = []

    async def main() -> None:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        for n in range(len(outcomes)):
            await queue.enqueue("t", "fuzz", n, job_id=f"job-{n}")
        async with quickq.open_consumer(
            store, jobs, clock=virtual_clock, on_event=events.append, idle_poll=60
        ) as consumer:
            # Retries and snoozes due within minutes run again; later ones stay
            # scheduled, which is an end too.
            for _ in range(3):
                await consumer.wait_idle()
                await trio.sleep(120)
            await consumer.wait_idle()
        stats = await queue.stats("t")
        assert stats.pending == stats.running == 0, stats
        scheduled = {j.job_id for j in await queue.list_jobs("t", "scheduled")}
        dead = {d.job.job_id for d in await queue.dead_letters("t")}
        completed = {e.job_id for e in events if e.kind == "completed"}
        assert scheduled | dead | completed == {f"job-{n}" for n in range(len(outcomes))}
        assert not (scheduled & dead or dead & completed or scheduled & completed)
        starts = sum(e.kind == "started" for e in events)
        assert starts == sum(e.kind != "started" for e in events)  # one end per attempt
        await _assert_readable(queue)

    run_virtual(main)


async def _assert_readable(queue: quickq.JobQueue) -> None:
    for qid in await queue.queues():
        await queue.stats(qid)
        for state in ("pending", "scheduled", "running", "dead"):
            for job in await queue.list_jobs(qid, state):
                await queue.get_job(qid, job.job_id)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 1e300, "1", True, None])
def test_snooze_refuses_what_no_durable_time_can_hold(bad: Any) -> None:
    with pytest.raises(quickq.InvalidArgumentError, match="Snooze seconds"):
        quickq.Snooze(bad)
