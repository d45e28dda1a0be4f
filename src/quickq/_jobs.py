"""Job definitions: a topic bound to a handler, with per-topic defaults.

::

    jobs = quickq.JobRegistry()

    @jobs.job("email:send", priority=50, max_retries=3)
    async def send_email(payload, meta):
        ...

A handler is ``async def perform(payload, meta)``. What it returns decides the
job's fate: ``None`` or any value completes it, :class:`Snooze` reschedules it,
:class:`Discard` drops it; raising retries it with backoff, then dead-letters it.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs

from ._exceptions import InvalidArgumentError, InvalidJobError
from ._limits import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MAX_RETRIES_LIMIT,
    MAX_TOPIC_CHARS,
    MIN_PRIORITY,
)
from ._validate import check_int, check_seconds, shown

Handler = Callable[[Any, "JobMeta"], Awaitable[Any]]

_TOPIC = re.compile(rf"[A-Za-z0-9_.:/\-]{{1,{MAX_TOPIC_CHARS}}}")


def validate_topic(topic: object) -> str:
    """Return *topic* if it is a well-formed topic name, else raise InvalidJobError."""
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
        raise InvalidJobError(
            f"topic must be 1-200 characters of letters, digits and _.:/- (got {shown(topic)})"
        )
    return topic


def check_priority(value: object) -> int:
    return check_int(value, "priority", MIN_PRIORITY, MAX_PRIORITY, error=InvalidJobError)


def check_max_retries(value: object) -> int:
    return check_int(value, "max_retries", 0, MAX_RETRIES_LIMIT, error=InvalidJobError)


def check_timeout(value: object) -> float | None:
    """A job timeout: None (no timeout) or seconds > 0 and at most ten years."""
    if value is None:
        return None
    return check_seconds(value, "timeout", low_open=True, error=InvalidJobError)


def _seconds(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: object, __: object, value: object) -> None:
        check_seconds(value, name)

    return check


def _is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions, partials and wrappers of them, and
    objects with an ``async def __call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if callable(fn):
        fn = inspect.unwrap(fn)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (the async __call__ itself)
    )


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter, capped: the delay before retry *n*.

    ``delay(n) = min(cap, base * factor ** (n - 1))``, then multiplied by a
    random factor in ``[1 - jitter, 1 + jitter]`` (never above *cap*). *base*
    and *cap* are finite seconds from 0 to ten years, *factor* a finite
    number >= 0 and *jitter* a fraction from 0 to 1; anything else raises
    :class:`~quickq.InvalidArgumentError`.
    """

    base: float = attrs.field(default=1.0, validator=_seconds("Backoff base"))
    factor: float = attrs.field(default=2.0)
    cap: float = attrs.field(default=300.0, validator=_seconds("Backoff cap"))
    jitter: float = attrs.field(default=0.1)

    @factor.validator
    def _check_factor(self, _: object, value: object) -> None:
        finite = isinstance(value, int | float) and 0 <= value < math.inf
        if isinstance(value, bool) or not finite:
            raise InvalidArgumentError(
                f"Backoff factor must be a finite number >= 0 (got {shown(value)})"
            )

    @jitter.validator
    def _check_jitter(self, _: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise InvalidArgumentError(
                f"Backoff jitter must be a number from 0 to 1 (got {shown(value)})"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number *attempt* (1-based)."""
        try:
            raw = min(self.cap, self.base * self.factor ** max(attempt - 1, 0))
        except OverflowError:  # factor ** attempt beyond a float: the cap applies
            raw = self.cap
        if self.jitter:
            raw *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(raw, self.cap)


@attrs.frozen
class JobDefinition:
    """A topic, its handler and its defaults (each overridable per job at enqueue).

    Every field is checked when the definition is made: the handler must be
    an ``async def`` (or an object with an ``async def __call__``), and the
    defaults must be what ``enqueue`` accepts.
    """

    topic: str = attrs.field(converter=validate_topic)
    handler: Handler = attrs.field()
    priority: int = attrs.field(default=DEFAULT_PRIORITY, converter=check_priority)
    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, converter=check_max_retries)
    timeout: float | None = attrs.field(default=None, converter=check_timeout)
    """Seconds an attempt may run before it is cancelled and retried."""
    backoff: Backoff = attrs.field(default=Backoff())

    @handler.validator
    def _check_handler(self, _: object, value: object) -> None:
        if not _is_async_callable(value):
            raise InvalidArgumentError(
                f"the handler of {self.topic!r} must be an async function "
                f"(async def perform(payload, meta)); got {shown(value)}"
            )

    @backoff.validator
    def _check_backoff(self, _: object, value: object) -> None:
        if not isinstance(value, Backoff):
            raise InvalidArgumentError(f"backoff must be a quickq.Backoff (got {shown(value)})")


@attrs.frozen
class JobMeta:
    """The second argument of a handler: what this attempt is."""

    topic: str
    queue_id: str
    job_id: str
    """The job's id, as ``Job.job_id`` and ``JobEvent.job_id`` name it."""
    attempt: int
    """1-based number of this attempt."""
    max_retries: int
    priority: int
    enqueued_at: dt.datetime
    errors: int
    """Failed attempts so far."""
    last_error: str | None

    @property
    def item_id(self) -> str:
        """The job's id: an alias of :attr:`job_id`, the seed library's name."""
        return self.job_id


@attrs.frozen
class Snooze:
    """Return this to run the job again after exactly *seconds* (counts as an attempt).

    *seconds* is a finite number from 0 to ten years (``MAX_DELAY_SECONDS``);
    anything else raises :class:`~quickq.InvalidArgumentError` where the
    Snooze is made, so the handler fails and the job is retried.
    """

    seconds: float = attrs.field(validator=_seconds("Snooze seconds"))


@attrs.frozen
class Complete:
    """Return this to complete the job with *result* and, exactly once, *writes*.

    *writes* is ``async def writes(tr)``: it runs inside the transaction that
    records the completion, and only while the job's lease is still ours, so a
    handler whose effects are writes to the same store gets exactly-once
    effects. If it raises, the attempt fails and is retried.
    """

    result: Any = None
    writes: Callable[[Any], Awaitable[None]] | None = attrs.field(default=None)

    @writes.validator
    def _check_writes(self, _: object, value: object) -> None:
        if value is not None and not _is_async_callable(value):
            raise InvalidArgumentError(
                f"Complete writes must be an async function writes(tr) (got {shown(value)})"
            )


@attrs.frozen
class Discard:
    """Return this to drop the job without retrying; *reason* is kept with its dead letter."""

    reason: str = attrs.field(default="")

    @reason.validator
    def _check_reason(self, _: object, value: object) -> None:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"Discard reason must be a str (got {shown(value)})")


class JobRegistry:
    """The job definitions of an application, by topic."""

    def __init__(self, definitions: list[JobDefinition] | None = None) -> None:
        self._by_topic: dict[str, JobDefinition] = {}
        if definitions is not None and not isinstance(definitions, list | tuple):
            raise InvalidArgumentError(
                f"definitions must be a list of JobDefinition (got {shown(definitions)})"
            )
        for definition in definitions or []:
            self.add(definition)

    def add(self, definition: JobDefinition) -> JobDefinition:
        """Register *definition*; a topic can be registered once."""
        if not isinstance(definition, JobDefinition):
            raise InvalidArgumentError(f"add() takes a JobDefinition (got {shown(definition)})")
        if definition.topic in self._by_topic:
            raise InvalidJobError(f"topic {definition.topic!r} is already registered")
        self._by_topic[definition.topic] = definition
        return definition

    def job(
        self,
        topic: str,
        *,
        priority: int = DEFAULT_PRIORITY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float | None = None,
        backoff: Backoff = Backoff(),
    ) -> Callable[[Handler], Handler]:
        """Decorator: register the decorated ``async def perform(payload, meta)``.

        The options are checked here, before any handler is registered.
        """
        JobDefinition(topic, _placeholder, priority, max_retries, timeout, backoff)

        def register(handler: Handler) -> Handler:
            self.add(JobDefinition(topic, handler, priority, max_retries, timeout, backoff))
            return handler

        return register

    def get(self, topic: str) -> JobDefinition | None:
        """The definition of *topic*, or None."""
        return self._by_topic.get(topic)

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic

    def __iter__(self) -> Iterator[JobDefinition]:
        return iter(self._by_topic.values())

    def __len__(self) -> int:
        return len(self._by_topic)


async def _placeholder(payload: Any, meta: JobMeta) -> None:
    """Stands in for the handler while ``JobRegistry.job`` checks its options."""
