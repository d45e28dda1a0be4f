"""A consumer's configuration: the one record of what ``open_consumer``,
``serve_consumer`` and ``quickq worker`` accept, each field checked when the
record is made, before anything starts.

:class:`ConsumerConfig` is the record; :class:`ConsumerOptions` types the same
names as keyword options (and documents each); :func:`configure` merges
keyword options over a given record and refuses unknown names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Final, TypedDict

import attrs

from .._codec import Codec, JsonCodec
from .._events import EventHook
from .._exceptions import InvalidArgumentError
from .._jobs import JobRegistry
from .._limits import MAX_CONSUMER_SECONDS, MAX_HISTORY_SECONDS
from .._telemetry import Telemetry, check_telemetry
from .._time import Clock, wall_clock
from .._validate import check_callable, check_fraction, check_int, check_seconds, shown
from ..stores._protocol import Store, is_store

_Validator = Callable[[object, "attrs.Attribute[Any]", object], None]


def _checked(check: Callable[..., object], *bounds: object, **kw: object) -> _Validator:
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


def _check_root(_: object, __: object, value: object) -> None:
    if not isinstance(value, tuple):
        raise InvalidArgumentError(f"root must be a tuple, as for JobQueue (got {shown(value)})")


_JSON: Final = JsonCodec()
"""The default codec, one instance (it holds no state), so that two default
configurations compare equal."""


def _codec_or_json(value: Codec | None) -> Codec:
    return value or _JSON


def _check_codec(_: object, __: object, value: object) -> None:
    if not callable(getattr(value, "encode", None)) or not callable(getattr(value, "decode", None)):
        raise InvalidArgumentError(f"codec must have encode() and decode() (got {shown(value)})")


@attrs.frozen
class ConsumerConfig:
    """A consumer's configuration, frozen: every option of ``open_consumer``
    and ``serve_consumer`` (see :class:`ConsumerOptions` for what each one
    means), each checked when the record is made: counts are ints in range,
    durations finite seconds (at most a day; ``history_keep`` at most 90
    days). Each numeric field's one-line
    ``metadata["help"]`` is what ``quickq worker --help`` shows.

    Make one once and pass it around: ``open_consumer(store, jobs,
    config=config)``; ``attrs.evolve(config, concurrency=4)`` is a changed copy.
    """

    concurrency: int = _count_option(10, 100_000, help="Handlers run at once.")
    batch_size: int = _count_option(
        16, 100_000, help="Most jobs leased from one queue per transaction."
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
        validator=_checked(check_fraction),
        metadata={"help": "The fraction of due queues a scan picks at random, in (0, 1]."},
    )
    selection_max: int = _count_option(2000, 1_000_000, help="The most due queues one scan picks.")
    peek_limit: int = _count_option(2000, 1_000_000, help="The most due queues one scan reads.")
    idle_gc: float = _seconds_option(
        60.0, positive=False, help="How long a queue stays empty before its pointer is dropped."
    )
    history_keep: float = attrs.field(
        default=86_400.0,
        validator=_checked(check_seconds, high=MAX_HISTORY_SECONDS),
        metadata={"help": "How long per-queue history is kept (0: none is written)."},
    )
    heartbeat_interval: float = _seconds_option(
        10.0, positive=True, help="How often the worker refreshes its record in the store."
    )
    root: tuple[Any, ...] = attrs.field(default=("quickq",), validator=_check_root)
    clock: Clock = attrs.field(default=wall_clock, validator=_checked(check_callable))
    codec: Codec = attrs.field(default=_JSON, converter=_codec_or_json, validator=_check_codec)
    on_event: EventHook | None = attrs.field(
        default=None, validator=_checked(check_callable, optional=True)
    )
    telemetry: Telemetry | None = attrs.field(
        default=Telemetry(),
        validator=lambda _, __, value: check_telemetry(value),
        metadata={"help": "Where OpenTelemetry spans and metrics go (None: nowhere)."},
    )


class ConsumerOptions(TypedDict, total=False):
    """The keyword options of :func:`open_consumer` and :func:`serve_consumer`:
    exactly the fields of :class:`ConsumerConfig`, with what each one means."""

    concurrency: int
    """Handlers run at once (default 10). A slot is free again as soon as its
    handler ends, while the outcome is still being committed (new jobs are
    leased while at most two batches of outcomes wait to be committed)."""
    batch_size: int
    """Most jobs leased from one queue per transaction while other queues are
    due too (default 16: a fifth less CPU per job than 10 when many queues
    are due, while a consumer of 32 slots still takes from two queues per
    scan, so a small tenant waits no longer behind a large one). Fewer due
    queues than it takes to fill the free slots share those slots: a queue
    due alone may fill all of them in one transaction (up to about 1 MB of
    payloads)."""
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
    history_keep: float
    """How long the per-queue, per-minute history of attempts is kept, in
    seconds (a day; at most 90 days); 0 writes none (``JobQueue.history``)."""
    heartbeat_interval: float
    """How often the consumer refreshes its heartbeat record in the store
    (10 s, jittered by a tenth), which ``JobQueue.workers`` and ``quickq
    workers`` list; it counts as stale after three intervals without one."""
    root: tuple[Any, ...]
    """The tuple subspace of the queues, as for JobQueue (``("quickq",)``)."""
    clock: Clock
    """The wall clock, as for JobQueue (tests pass one driven by MockClock)."""
    codec: Codec
    """The payload codec, as for JobQueue (JSON)."""
    on_event: EventHook | None
    """Called with a JobEvent as each attempt starts and ends (None: no events)."""
    telemetry: Telemetry | None
    """Where OpenTelemetry spans and metrics go (default ``Telemetry()``: the
    global providers, when the ``quickq[otel]`` extra and an SDK are set up;
    None: nowhere)."""


_NAMES: Final = tuple(a.name for a in attrs.fields(ConsumerConfig))


def configure(
    store: Store,
    jobs: JobRegistry,
    config: ConsumerConfig | None,
    options: ConsumerOptions,
) -> ConsumerConfig:
    """Check a consumer's arguments, raising InvalidArgumentError naming the bad
    one; the configuration is *config* (or the defaults) with *options* over it."""
    if not is_store(store) or not hasattr(store, "transact"):
        raise InvalidArgumentError(f"store must be a quickq store (got {shown(store)})")
    if not isinstance(jobs, JobRegistry):
        raise InvalidArgumentError(f"jobs must be a quickq.JobRegistry (got {shown(jobs)})")
    if config is not None and not isinstance(config, ConsumerConfig):
        raise InvalidArgumentError(f"config must be a quickq.ConsumerConfig (got {shown(config)})")
    unknown = sorted(set(options) - set(_NAMES))
    if unknown:
        hints = [difflib.get_close_matches(name, _NAMES, n=1) for name in unknown]
        meant = "".join(f" (did you mean {h[0]!r}?)" for h in hints if h)
        raise InvalidArgumentError(
            f"unknown consumer option {', '.join(map(repr, unknown))}{meant}; the options are "
            f"{', '.join(sorted(_NAMES))}"
        )
    if config is None:
        return ConsumerConfig(**options)
    return attrs.evolve(config, **options) if options else config
