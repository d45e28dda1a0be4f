"""How one attempt ends: calling a handler within its time limit, and turning
what it returned or raised into the settlement the queue records.

Whatever a handler does (any return value, any exception but the consumer's
own cancellation) ends as a settlement: an outcome the queue cannot record is
a failure of the attempt, retried with backoff, then dead-lettered.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

import anyio
import attrs
import trio

from .._core import Action, Item, Settlement
from .._exceptions import InvalidArgumentError
from .._jobs import Backoff, Complete, Discard, Handler, JobDefinition, JobMeta, Snooze
from .._limits import MAX_ERROR_CHARS
from .._time import to_ms
from .._validate import check_seconds, shown


@attrs.frozen
class SettlementMaker:
    """Makes the settlements of one attempt (its queue, job and lease)."""

    queue_id: str
    item_id: str
    lease_id: str
    started: int | None = None
    """When the attempt started (ms), for the queue's history (``Settlement.started``)."""

    def __call__(self, action: Action, **fields: Any) -> Settlement:
        return Settlement(
            action, self.queue_id, self.item_id, self.lease_id, started=self.started, **fields
        )


def _success(make: SettlementMaker, result: Any) -> tuple[Settlement, Any]:
    """The settlement (and reported result) of a handler's return value."""
    if isinstance(result, Snooze):
        delay = _delay_ms(result.seconds)
        return make(Action.SNOOZE, delay_ms=delay), None
    if isinstance(result, Discard):
        if not isinstance(result.reason, str):
            raise InvalidArgumentError(f"Discard reason must be a str (got {shown(result.reason)})")
        return make(Action.DEAD_LETTER, reason="discarded", error=result.reason), None
    if isinstance(result, Complete):
        return make(Action.COMPLETE, writes=result.writes), result.result
    return make(Action.COMPLETE), result


def _delay_ms(seconds: object) -> int:
    """*seconds* as whole milliseconds, refusing what no durable time can hold."""
    return to_ms(check_seconds(seconds, "delay"))


class JobScope(Protocol):
    """A job's cancel scope: anyio's, or on trio the trio scope anyio's wraps."""

    @property
    def cancelled_caught(self) -> bool: ...

    def cancel(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...


def job_scopes() -> Callable[[float], JobScope]:
    """How the running event loop makes a job's scope with a *deadline*
    (``anyio.current_time()``): on trio, trio's own scope, which anyio's only
    wraps, at about a third of the CPU per job."""
    if trio.lowlevel.in_trio_run():
        return lambda deadline: trio.CancelScope(deadline=deadline)
    return lambda deadline: anyio.CancelScope(deadline=deadline)


async def call_handler(
    handler: Handler, payload: Any, meta: JobMeta, *, scope: JobScope, limit: float | None
) -> tuple[Any, str | None, BaseException | None]:
    """``await handler(payload, meta)`` inside *scope*, whose deadline is the
    job's time limit of *limit* seconds: (result, None, None), or (None, the
    failure, the exception) when it raised, or (None, the failure, None) when
    *scope* stopped it. Only the consumer's own cancellation escapes."""
    result: Any = None
    failure: str | None = None
    error: BaseException | None = None
    try:
        with scope:
            try:
                result = await handler(payload, meta)
            except BaseException as exc:
                if carries_cancellation(exc):
                    raise
                failure, error = describe_failure(exc), exc
    except BaseException as exc:
        if carries_cancellation(exc):
            raise
        failure = describe_failure(exc)  # what the timer left of a group it cancelled
        error = exc
    if scope.cancelled_caught:
        failure, error = f"timed out after {limit}s", None
    return result, failure, error


def carries_cancellation(exc: BaseException) -> bool:
    """True for the event loop's cancellation, alone or inside a group."""
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(cancelled) is not None
    return isinstance(exc, cancelled)


def describe_failure(exc: BaseException) -> str:
    """A failure's traceback, for the job's last error (its end is kept)."""
    try:
        text = "".join(traceback.format_exception(exc, limit=8))
    except Exception:  # an exception whose str() raises
        text = f"{type(exc).__name__} (its message could not be formatted)"
    return text[-MAX_ERROR_CHARS:]


def outcome_settlement(
    make: SettlementMaker,
    definition: JobDefinition,
    item: Item,
    rng: random.Random,
    result: Any,
    failure: str | None,
) -> tuple[Settlement, Any]:
    """The settlement (and reported result) of a finished handler."""
    if failure is None:
        try:
            return _success(make, result)
        except Exception as exc:
            failure = f"the handler's outcome cannot be recorded: {exc!r}"
    return failure_settlement(make, definition, item, rng, failure[-MAX_ERROR_CHARS:]), None


def failure_settlement(
    make: SettlementMaker, definition: JobDefinition, item: Item, rng: random.Random, error: str
) -> Settlement:
    """A failed attempt: retried after the topic's backoff (or dead-lettered
    by ``settle`` once its attempts are spent)."""
    try:
        delay = _delay_ms(definition.backoff.delay(item.attempt, rng))
    except Exception:  # a Backoff subclass that misbehaves: the default's delay
        delay = _delay_ms(Backoff().delay(item.attempt, rng))
    return make(Action.RETRY, delay_ms=delay, error=error)
