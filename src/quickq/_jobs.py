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
import random
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

import attrs

from ._exceptions import InvalidJobError

Handler = Callable[[Any, "JobMeta"], Awaitable[Any]]

DEFAULT_PRIORITY: Final = 100
DEFAULT_MAX_RETRIES: Final = 3
_TOPIC = re.compile(r"[A-Za-z0-9_.:/\-]{1,200}")


def validate_topic(topic: object) -> str:
    """Return *topic* if it is a well-formed topic name, else raise InvalidJobError."""
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
        raise InvalidJobError(
            f"topic must be 1-200 characters of letters, digits and _.:/- (got {topic!r})"
        )
    return topic


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise InvalidJobError(f"{attribute.name} must be >= 0 (got {value!r})")


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter, capped: the delay before retry *n*.

    ``delay(n) = min(cap, base * factor ** (n - 1))``, then multiplied by a
    random factor in ``[1 - jitter, 1 + jitter]`` (never above *cap*).
    """

    base: float = attrs.field(default=1.0, validator=_non_negative)
    factor: float = attrs.field(default=2.0, validator=_non_negative)
    cap: float = attrs.field(default=300.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.1, validator=_non_negative)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number *attempt* (1-based)."""
        raw = min(self.cap, self.base * self.factor ** max(attempt - 1, 0))
        if self.jitter:
            raw *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(raw, self.cap)


@attrs.frozen
class JobDefinition:
    """A topic, its handler and its defaults (each overridable per job at enqueue)."""

    topic: str = attrs.field(converter=validate_topic)
    handler: Handler
    priority: int = DEFAULT_PRIORITY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float | None = None
    """Seconds an attempt may run before it is cancelled and retried."""
    backoff: Backoff = Backoff()


@attrs.frozen
class JobMeta:
    """The second argument of a handler: what this attempt is."""

    topic: str
    queue_id: str
    item_id: str
    attempt: int
    """1-based number of this attempt."""
    max_retries: int
    priority: int
    enqueued_at: dt.datetime
    errors: int
    """Failed attempts so far."""
    last_error: str | None


@attrs.frozen
class Snooze:
    """Return this to run the job again after exactly *seconds* (counts as an attempt)."""

    seconds: float = attrs.field(validator=_non_negative)


@attrs.frozen
class Complete:
    """Return this to complete the job with *result* and, exactly once, *writes*.

    *writes* is ``async def writes(tr)``: it runs inside the transaction that
    records the completion, and only while the job's lease is still ours, so a
    handler whose effects are writes to the same store gets exactly-once
    effects. If it raises, the attempt fails and is retried.
    """

    result: Any = None
    writes: Callable[[Any], Awaitable[None]] | None = None


@attrs.frozen
class Discard:
    """Return this to drop the job without retrying; *reason* is kept with its dead letter."""

    reason: str = ""


class JobRegistry:
    """The job definitions of an application, by topic."""

    def __init__(self, definitions: list[JobDefinition] | None = None) -> None:
        self._by_topic: dict[str, JobDefinition] = {}
        for definition in definitions or []:
            self.add(definition)

    def add(self, definition: JobDefinition) -> JobDefinition:
        """Register *definition*; a topic can be registered once."""
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
        """Decorator: register the decorated ``async def perform(payload, meta)``."""

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
