"""A consumer's options: what ``open_consumer``, ``serve_consumer`` and
``quickq worker`` accept, each checked before anything starts."""

from __future__ import annotations

import difflib
from typing import Any, Final, TypedDict

import attrs

from .._codec import Codec, JsonCodec
from .._events import EventHook
from .._exceptions import InvalidArgumentError
from .._jobs import JobRegistry
from .._limits import MAX_CONSUMER_SECONDS
from .._time import Clock, wall_clock
from .._validate import check_callable, check_fraction, check_int, check_seconds, shown
from ..stores._protocol import Store, is_store


def _checked(check: Any, *bounds: Any, **kw: Any) -> Any:
    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(value, attribute.name, *bounds, **kw)

    return validate


def _seconds_option(default: float, *, positive: bool, help: str) -> Any:
    return attrs.field(
        default=default,
        validator=_checked(check_seconds, low_open=positive, high=MAX_CONSUMER_SECONDS),
        metadata={"help": help},
    )


def _count_option(default: int, high: int, *, help: str) -> Any:
    return attrs.field(
        default=default, validator=_checked(check_int, 1, high), metadata={"help": help}
    )


@attrs.frozen
class ConsumerConfig:
    """A consumer's configuration, frozen (see ``ConsumerOptions`` for the
    meaning of each field), each field checked when made: counts are ints in
    range, durations finite seconds (at most a day). Each field's one-line
    ``metadata["help"]`` is what ``quickq worker --help`` shows."""

    concurrency: int = _count_option(10, 100_000, help="Handlers run at once.")
    batch_size: int = _count_option(
        10, 100_000, help="Most jobs leased from one queue per transaction."
    )
    lease_duration: float = _seconds_option(
        30.0, positive=True, help="A job's lease in seconds, renewed every third of it."
    )
    queue_lease_duration: float = _seconds_option(
        5.0, positive=True, help="How long a consumer holds a queue while leasing from it."
    )
    scan_interval: float = _seconds_option(
        0.1, positive=True, help="The idle poll when the store cannot watch for new jobs."
    )
    idle_poll: float = _seconds_option(
        1.0, positive=True, help="The longest idle wait when the store can watch for new jobs."
    )
    grace_period: float = _seconds_option(
        10.0, positive=False, help="On stop, how long running jobs may finish before cancelling."
    )
    cleanup_timeout: float = _seconds_option(
        5.0, positive=False, help="How long a cancelled job may take to give its lease back."
    )
    selection_fraction: float = attrs.field(
        default=0.02,
        validator=lambda _, a, v: check_fraction(v, a.name),
        metadata={"help": "The fraction of due queues a scan picks at random, in (0, 1]."},
    )
    selection_max: int = _count_option(2000, 1_000_000, help="The most due queues one scan picks.")
    peek_limit: int = _count_option(2000, 1_000_000, help="The most due queues one scan reads.")
    idle_gc: float = _seconds_option(
        60.0, positive=False, help="How long a queue stays empty before its pointer is dropped."
    )


class ConsumerOptions(TypedDict, total=False):
    """The options of :func:`open_consumer` and :func:`serve_consumer`."""

    concurrency: int
    """Handlers run at once (default 10). A slot is free again as soon as its
    handler ends, while the outcome is still being committed."""
    batch_size: int
    """Most jobs leased from one queue per transaction while other queues are
    due too (default 10). Fewer due queues than it takes to fill the free
    slots share those slots: a queue due alone may fill all of them in one
    transaction (up to about 1 MB of payloads)."""
    lease_duration: float
    """A job's lease in seconds (30), renewed every third of it while its handler
    runs; a crashed consumer's jobs come back when it expires."""
    queue_lease_duration: float
    """How long a consumer holds a queue while leasing from it (5 s)."""
    scan_interval: float
    """The idle poll when the store cannot watch for new jobs (0.1 s)."""
    idle_poll: float
    """The longest idle wait when the store can watch for new jobs (1 s)."""
    grace_period: float
    """On stop, how long running jobs may finish before they are cancelled and
    their leases given back (10 s)."""
    cleanup_timeout: float
    """How long a cancelled job may take to give its lease back (5 s)."""
    selection_fraction: float
    """The fraction of due queues a scan picks at random, in (0, 1] (QuiCK: 0.02)."""
    selection_max: int
    """The most due queues one scan picks (2000)."""
    peek_limit: int
    """The most due queues one scan reads (2000)."""
    idle_gc: float
    """How long a queue stays empty before its pointer is dropped (60 s)."""
    root: tuple[Any, ...]
    """The tuple subspace of the queues, as for JobQueue (``("quickq",)``)."""
    clock: Clock
    """The wall clock, as for JobQueue (tests pass one driven by MockClock)."""
    codec: Codec
    """The payload codec, as for JobQueue (JSON)."""
    on_event: EventHook
    """Called with a JobEvent as each attempt starts and ends."""


_SETTINGS: Final = tuple(a.name for a in attrs.fields(ConsumerConfig))
_OPTION_NAMES: Final = frozenset(ConsumerOptions.__annotations__) | set(_SETTINGS)


@attrs.frozen
class CheckedOptions:
    """Every argument of a consumer, checked."""

    settings: ConsumerConfig
    root: tuple[Any, ...]
    clock: Clock
    codec: Codec
    on_event: EventHook | None


def check_options(store: Store, jobs: JobRegistry, options: ConsumerOptions) -> CheckedOptions:
    """Check a consumer's arguments, raising InvalidArgumentError naming the bad one."""
    if not is_store(store) or not hasattr(store, "transact"):
        raise InvalidArgumentError(f"store must be a quickq store (got {shown(store)})")
    if not isinstance(jobs, JobRegistry):
        raise InvalidArgumentError(f"jobs must be a quickq.JobRegistry (got {shown(jobs)})")
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        hints = [difflib.get_close_matches(name, _OPTION_NAMES, n=1) for name in unknown]
        meant = "".join(f" (did you mean {h[0]!r}?)" for h in hints if h)
        raise InvalidArgumentError(
            f"unknown consumer option {', '.join(map(repr, unknown))}{meant}; the options are "
            f"{', '.join(sorted(_OPTION_NAMES))}"
        )
    settings = ConsumerConfig(**{k: v for k, v in options.items() if k in _SETTINGS})  # type: ignore[arg-type]
    root = options.get("root", ("quickq",))
    if not isinstance(root, tuple):
        raise InvalidArgumentError(f"root must be a tuple, as for JobQueue (got {shown(root)})")
    codec = options.get("codec") or JsonCodec()
    if not callable(getattr(codec, "encode", None)) or not callable(getattr(codec, "decode", None)):
        raise InvalidArgumentError(f"codec must have encode() and decode() (got {shown(codec)})")
    return CheckedOptions(
        settings,
        root,
        check_callable(options.get("clock", wall_clock), "clock"),
        codec,
        check_callable(options.get("on_event"), "on_event", optional=True),
    )
