"""``JobQueue``: enqueue jobs, and inspect and control queues.

Every method takes an optional open transaction ``tr``: given one, the work
joins the caller's transaction and commits (or not) with the caller's own
writes; without one, it runs in a transaction of its own, retried on conflict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, TypedDict, TypeVar, Unpack

import attrs

from . import _core, _telemetry
from ._codec import Codec, JsonCodec
from ._core import (
    DeadLetterRecord,
    DeadReason,
    Item,
    Layout,
    QueueMinute,
    State,
    TotalsMinute,
    WorkerInfo,
    record_overhead,
)
from ._exceptions import InvalidArgumentError, InvalidJobError, JobNotFoundError
from ._jobs import JobRegistry, check_max_retries, check_priority, check_timeout, validate_topic
from ._limits import (
    DEAD_LETTER_BATCH,
    DEFAULT_LIST,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PRIORITY,
    MAX_ID_CHARS,
    MAX_LIST,
    MAX_RETRIES_LIMIT,
    MAX_TOPIC_CHARS,
)
from ._telemetry import Telemetry, check_telemetry
from ._time import Clock, ms_to_datetime, to_ms, wall_clock
from ._validate import check_callable, check_int, check_seconds, shown
from .stores._protocol import Limits, RetryState, Store, Transaction, is_store, transact

T = TypeVar("T")

MAX_KEY_BYTES: Final = Limits().key_bytes
MAX_VALUE_BYTES: Final = Limits().value_bytes
"""FoundationDB's limits, the tightest of quickq's stores: checked before writing."""
MAX_PAYLOAD_BYTES: Final = MAX_VALUE_BYTES - record_overhead(
    id_chars=MAX_ID_CHARS, topic_chars=MAX_TOPIC_CHARS, max_retries=MAX_RETRIES_LIMIT
)
"""The largest encoded payload ``enqueue`` accepts: with it, every record the
job can become (its item, with a lease and an error; its dead letter) fits in
one value, whatever its ids, topic and options."""

_DEFAULT_TELEMETRY: Final = Telemetry()

_KEY_PARTS: Final = 40
"""More than a job's keys hold beyond the root and the two ids' characters:
the tags ``q`` and ``r`` or ``d``, two ints of at most 9 bytes, the strings'
type codes and terminators (28 bytes in the longest, the ready entry)."""

JobState = Literal["pending", "scheduled", "running", "dead"]
"""The states a job is listed in (``list_jobs``, ``Job.state``); dead means a dead letter."""
_LAST_MINUTE: Final = 2**40
"""Later than any minute a clock gives (an open end of a history read)."""
_LIVE: Final[dict[str, State]] = {state.counter: state for state in State}
"""A live job's public state (the name of its counter) -> where the core keeps it."""


class EnqueueOptions(TypedDict, total=False):
    """Per-job options of ``enqueue``; each overrides the topic's default."""

    at: dt.datetime
    """Run no earlier than this timezone-aware time (not with *delay*)."""
    delay: float | dt.timedelta
    """Run no earlier than this long from now (seconds or a timedelta)."""
    priority: int
    """Lower runs first. Default: the topic's, else 100."""
    max_retries: int
    """Retries after the first attempt before dead-lettering (so max_retries + 1 attempts)."""
    timeout: float
    """Seconds an attempt may run before it is cancelled and retried."""
    job_id: str
    """A caller-chosen id: the first enqueue wins, a repeat returns the existing job."""


_OPTION_NAMES: Final = frozenset(EnqueueOptions.__annotations__)

OVERVIEW_CHUNK: Final = 50
"""Queues read per transaction by ``JobQueue.overview``: 50 queues make one
read of 200 counters and 100 short range reads, well within FoundationDB's
five seconds."""
MAX_OVERVIEW_QUEUES: Final = 1_000_000
"""The most queues one ``overview`` may read."""


@attrs.frozen
class NewJob:
    """One job for :meth:`JobQueue.enqueue_many` (same fields as ``enqueue``)."""

    queue_id: str
    topic: str
    payload: Any = None
    at: dt.datetime | None = None
    delay: float | dt.timedelta | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout: float | None = None
    job_id: str | None = None


@attrs.frozen
class Job:
    """A job as it stands in a queue."""

    queue_id: str
    job_id: str
    topic: str
    payload: Any
    state: JobState
    priority: int
    run_at: dt.datetime
    """When it becomes (or became) visible to consumers; for a running job, its lease expiry."""
    attempt: int
    """Attempts started so far."""
    errors: int
    max_retries: int
    enqueued_at: dt.datetime
    last_error: str | None


@attrs.frozen
class DeadLetter:
    """A job that will not run again unless replayed."""

    job: Job
    reason: DeadReason
    """failed, discarded, no_handler, snoozed_out or unrecordable (an outcome
    too large for the store to record)."""
    error: str | None
    died_at: dt.datetime

    @property
    def job_id(self) -> str:
        """The dead job's id (``job.job_id``)."""
        return self.job.job_id

    @property
    def queue_id(self) -> str:
        """The dead job's queue (``job.queue_id``)."""
        return self.job.queue_id


@attrs.frozen
class QueueStats:
    """A queue's job counts, kept by atomic counters (no scans).

    ``scheduled`` jobs wait for their time; a consumer moves them to
    ``pending`` when it next visits the queue after that time.
    """

    queue_id: str
    pending: int
    scheduled: int
    running: int
    dead: int


@attrs.frozen
class QueueOverview:
    """A queue's counts, and how long its oldest ready job has waited."""

    stats: QueueStats
    oldest_ready: float | None
    """Seconds since the oldest ready job seen became due; None when none is ready."""
    oldest_exact: bool
    """False when only the head of a long ready index was read: the age is then
    a lower bound."""


@attrs.frozen
class StoreOverview:
    """Every queue's :class:`QueueOverview` (the first *max_queues*, by id), with totals."""

    queues: tuple[QueueOverview, ...]
    truncated: bool
    """True when the store holds more queues than were read."""

    @property
    def totals(self) -> dict[JobState, int]:
        """The counts of the queues read, summed by state."""
        return {
            state: sum(getattr(q.stats, state) for q in self.queues)
            for state in ("pending", "scheduled", "running", "dead")
        }

    @property
    def oldest_ready(self) -> float | None:
        """The longest wait of a ready job among the queues read (None: none is ready)."""
        ages = [q.oldest_ready for q in self.queues if q.oldest_ready is not None]
        return max(ages, default=None)


def new_job_id(now_ms: int, token: str, n: int) -> str:
    """The time-ordered id of the *n*-th generated job of the call with random
    *token*: unique, and the same on every re-run of that call's body."""
    tail = hashlib.blake2b(f"{token}/{n}".encode(), digest_size=8).hexdigest()
    return f"{now_ms:012x}{tail}"


def _check_limit(limit: object) -> int:
    return check_int(limit, "limit", 1, MAX_LIST)


def validate_queue_id(queue_id: object) -> str:
    """Return *queue_id* when it is a usable queue id, else raise InvalidJobError."""
    return _validate_id(queue_id, "queue_id")


def _minutes(since: object, until: object) -> tuple[int, int]:
    """The first and last minutes (since the epoch) of a history read."""
    first, last = _minute(since, "since", 0), _minute(until, "until", _LAST_MINUTE)
    if first > last:
        raise InvalidArgumentError(f"since must be at or before until (got {since} > {until})")
    return first, last


def _minute(value: object, name: str, default: int) -> int:
    """The minute (since the epoch) of the aware datetime *value*, or *default* for None."""
    if value is None:
        return default
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise InvalidArgumentError(f"{name} must be an aware datetime or None (got {shown(value)})")
    return to_ms(value.timestamp()) // _core.MINUTE_MS


def _validate_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidJobError(
            f"{what} must be a non-empty str of at most {MAX_ID_CHARS} chars (got {shown(value)})"
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidJobError(f"{what} must be valid Unicode text (got {shown(value)})") from None
    return value


class JobQueue:
    """The producer's and operator's handle on the queues stored in *store*.

    *jobs*, when given, supplies per-topic defaults and restricts enqueue to
    registered topics; without it any well-formed topic is accepted, with
    quickq's defaults. *root* is the tuple subspace that holds every queue.
    *telemetry* says where the OpenTelemetry spans and metrics of enqueues go
    (default: the global providers, when set up; None: nowhere; see
    :class:`Telemetry`).
    """

    def __init__(
        self,
        store: Store,
        jobs: JobRegistry | None = None,
        *,
        root: tuple[Any, ...] = ("quickq",),
        clock: Clock = wall_clock,
        codec: Codec | None = None,
        telemetry: Telemetry | None = _DEFAULT_TELEMETRY,
    ) -> None:
        if not is_store(store) or not hasattr(store, "transact"):
            raise InvalidArgumentError(f"store must be a quickq store (got {shown(store)})")
        if jobs is not None and not isinstance(jobs, JobRegistry):
            raise InvalidArgumentError(f"jobs must be a quickq.JobRegistry (got {shown(jobs)})")
        if not isinstance(root, tuple):
            raise InvalidArgumentError(f"root must be a tuple (got {shown(root)})")
        self.store = store
        self.jobs = jobs
        self._layout = Layout(root)
        self.clock: Clock = check_callable(clock, "clock")
        self.codec: Codec = codec or JsonCodec()
        self.telemetry: Telemetry | None = check_telemetry(telemetry)
        """Where the spans and metrics of enqueues go (None: nowhere)."""

    def now_ms(self) -> int:
        """The clock's time now, in the whole milliseconds every stored time is kept in."""
        return to_ms(self.clock())

    async def _run(self, tr: Transaction | None, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        return await transact(self.store if tr is None else tr, fn)

    # -- enqueue ------------------------------------------------------------------

    async def enqueue(
        self,
        queue_id: str,
        topic: str,
        payload: Any = None,
        /,
        *,
        tr: Transaction | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> Job:
        """Add a job to queue *queue_id* (a tenant) and return it.

        Runs in *tr* when given: the job exists if and only if that transaction
        commits. With a ``job_id`` that the queue already holds, nothing is
        written and the existing job is returned. Bad input raises
        InvalidJobError and writes nothing.
        """
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise InvalidJobError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        jobs = [NewJob(queue_id, topic, payload, **options)]
        (job,) = await self._enqueue_many(jobs, tr, single=True)
        return job

    async def enqueue_many(
        self, jobs: Sequence[NewJob], *, tr: Transaction | None = None
    ) -> list[Job]:
        """Add many jobs in one transaction: all of them, or (on error) none."""
        return await self._enqueue_many(jobs, tr, single=False)

    async def _enqueue_many(
        self, jobs: Sequence[NewJob], tr: Transaction | None, *, single: bool
    ) -> list[Job]:
        # Everything a re-run of the body must repeat exactly is chosen here,
        # outside the retry loop: ids, receipt tokens (in NewItem), the time.
        now, token = self._call_identity(tr)
        # Validate all before writing.
        prepared = [self._prepare(job, now, token, n) for n, job in enumerate(jobs)]

        async def body(tr: Transaction) -> list[Job]:
            done = await _core.enqueue_many(tr, self._layout, prepared, now, token=token)
            return [
                self._job(new.queue_id, item) for new, (item, _) in zip(prepared, done, strict=True)
            ]

        instruments = _telemetry.resolve(self.telemetry) if prepared else None
        if instruments is None:
            return await self._run(tr, body)
        # Given the caller's tr, the span covers this call, not the caller's commit.
        sending = _telemetry.start_sending(
            instruments,
            [(new.queue_id, new.item_id, new.topic) for new in prepared],
            single=single,
            now=self.clock(),
        )
        if sending is None:  # telemetry failed (logged): the jobs go without it
            return await self._run(tr, body)
        if sending.contexts is not None:
            prepared = [
                attrs.evolve(new, trace=context)
                for new, context in zip(prepared, sending.contexts, strict=True)
            ]
        try:
            out = await self._run(tr, body)
        except BaseException as exc:
            sending.end(exc, self.clock())
            raise
        sending.end(None, self.clock())
        return out

    def _call_identity(self, tr: Transaction | None) -> tuple[int, str]:
        """The time and random token of one call, from which its ids and receipt
        derive. Joined to a transaction of ``Store.transact``, they are drawn
        through its RetryState, so a re-run of the caller's body after
        commit-unknown-result repeats them and finds its own earlier commit."""
        state = getattr(tr, "retry_state", None)
        if isinstance(state, RetryState):
            return state.draw(lambda: (self.now_ms(), secrets.token_hex(8)))
        return self.now_ms(), secrets.token_hex(8)

    def _prepare(self, job: NewJob, now: int, token: str, n: int) -> _core.NewItem:
        if not isinstance(job, NewJob):
            raise InvalidJobError(f"enqueue_many takes NewJob objects, not {type(job).__name__}")
        qid = validate_queue_id(job.queue_id)
        topic = validate_topic(job.topic)
        definition = self.jobs.get(topic) if self.jobs is not None else None
        if self.jobs is not None and definition is None:
            raise InvalidJobError(f"no job is registered for topic {topic!r}")
        priority = job.priority
        if priority is None:
            priority = definition.priority if definition else DEFAULT_PRIORITY
        priority = check_priority(priority)
        max_retries = job.max_retries
        if max_retries is None:
            max_retries = definition.max_retries if definition else DEFAULT_MAX_RETRIES
        max_retries = check_max_retries(max_retries)
        timeout = check_timeout(job.timeout)
        vesting = self._vesting(job, now)
        custom = job.job_id is not None
        item_id = _validate_id(job.job_id, "job_id") if custom else new_job_id(now, token, n)
        payload = self.codec.encode(job.payload)
        new = _core.NewItem(
            qid, item_id, topic, payload, priority, vesting, max_retries, timeout, custom,
            token=f"{token}.{n}",  # unique to the job, without a random draw per job
        )  # fmt: skip
        self._check_sizes(new)
        return new

    def _vesting(self, job: NewJob, now: int) -> int:
        if job.at is not None and job.delay is not None:
            raise InvalidJobError("give at most one of `at` and `delay`")
        if job.at is not None:
            if not isinstance(job.at, dt.datetime):
                raise InvalidJobError(f"`at` must be a datetime (got {type(job.at).__name__})")
            if job.at.tzinfo is None or job.at.utcoffset() is None:
                raise InvalidJobError("`at` must be timezone-aware (e.g. tzinfo=datetime.UTC)")
            # Any datetime is a time quickq can hold (years 1-9999 fit in ms).
            return to_ms(job.at.timestamp())
        delay = job.delay
        if delay is None:
            return now
        if isinstance(delay, dt.timedelta):
            delay = delay.total_seconds()
        return now + to_ms(check_seconds(delay, "delay", error=InvalidJobError))

    def _check_sizes(self, new: _core.NewItem) -> None:
        # A job's keys are the root, a few tags and ints (_KEY_PARTS at most),
        # and the two ids, at most 4 bytes a character: build them to measure
        # only when that bound exceeds the limit.
        bound = len(self._layout.prefix) + _KEY_PARTS + 4 * (len(new.queue_id) + len(new.item_id))
        if bound > MAX_KEY_BYTES and new.longest_key(self._layout) > MAX_KEY_BYTES:
            raise InvalidJobError(f"queue_id and job_id make a key over {MAX_KEY_BYTES} bytes")
        if len(new.payload) > MAX_PAYLOAD_BYTES:
            raise InvalidJobError(
                f"payload of {len(new.payload)} bytes encoded is too large: the limit is "
                f"{MAX_PAYLOAD_BYTES} bytes (a value is at most {MAX_VALUE_BYTES}, with "
                "room for the job's record and an error)"
            )

    # -- inspection ---------------------------------------------------------------

    def _job(self, qid: str, item: Item, state: JobState | None = None) -> Job:
        return Job(
            queue_id=qid,
            job_id=item.item_id,
            topic=item.topic,
            payload=self.codec.decode(item.payload),
            state=state or item.state.counter,
            priority=item.priority,
            run_at=ms_to_datetime(item.due),
            attempt=item.attempt,
            errors=item.errors,
            max_retries=item.max_retries,
            enqueued_at=ms_to_datetime(item.enqueued_at),
            last_error=item.last_error,
        )

    def _dead(self, qid: str, dead: DeadLetterRecord) -> DeadLetter:
        return DeadLetter(
            self._job(qid, dead.item, "dead"), dead.reason, dead.error, ms_to_datetime(dead.died_at)
        )

    async def stats(self, queue_id: str, *, tr: Transaction | None = None) -> QueueStats:
        """The counts of *queue_id*'s jobs by state."""
        qid = validate_queue_id(queue_id)
        counts = await self._run(tr, lambda tr: _core.counters(tr, self._layout, qid))
        return QueueStats(qid, **counts)

    async def queues(self, *, tr: Transaction | None = None) -> list[str]:
        """The ids of every queue that has ever held a job, in order."""
        return await self._run(tr, lambda tr: _core.queue_names(tr, self._layout))

    async def overview(self, *, max_queues: int | None = 1000) -> StoreOverview:
        """Every queue's counts and oldest ready job, for dashboards and gauges.

        Reads counters and index keys only, never jobs (see ``quickq stats``
        in docs/cli.md): the queues' names up to *max_queues* (None: all),
        then ``OVERVIEW_CHUNK`` queues per transaction, by snapshot reads, so
        it never conflicts with consumers and stays within FoundationDB's
        limits. The queues are read in several transactions: the totals are
        not one consistent snapshot.
        """
        if max_queues is not None:
            max_queues = check_int(max_queues, "max_queues", 1, MAX_OVERVIEW_QUEUES)
        layout = self._layout
        limit = 0 if max_queues is None else max_queues + 1
        names = await self.store.transact(lambda tr: _core.queue_names(tr, layout, limit))
        truncated = max_queues is not None and len(names) > max_queues
        names = names[:max_queues]
        found: list[QueueOverview] = []
        for start in range(0, len(names), OVERVIEW_CHUNK):
            now = self.now_ms()
            chunk = names[start : start + OVERVIEW_CHUNK]

            async def read(
                tr: Transaction, chunk: list[str] = chunk, now: int = now
            ) -> list[_core.QueueSummary]:
                return await _core.summaries(tr, layout, chunk, now)

            rows = await self.store.transact(read)
            found += [
                QueueOverview(
                    QueueStats(row.qid, **row.counts),
                    None if row.oldest_due is None else max(0, now - row.oldest_due) / 1000,
                    row.exact,
                )
                for row in rows
            ]
        return StoreOverview(tuple(found), truncated)

    async def get_job(self, queue_id: str, job_id: str, *, tr: Transaction | None = None) -> Job:
        """The job *job_id* of *queue_id*, dead letters included; JobNotFoundError if absent."""
        qid = validate_queue_id(queue_id)
        job_id = _validate_id(job_id, "job_id")

        async def body(tr: Transaction) -> Job | None:
            item = await _core.read_item(tr, self._layout, qid, job_id)
            if item is not None:
                return self._job(qid, item)
            dead = await _core.read_dead_letter(tr, self._layout, qid, job_id, snapshot=True)
            return None if dead is None else self._dead(qid, dead).job

        job = await self._run(tr, body)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r} in queue {qid!r}")
        return job

    async def list_jobs(
        self,
        queue_id: str,
        state: JobState,
        *,
        limit: int = DEFAULT_LIST,
        tr: Transaction | None = None,
    ) -> list[Job]:
        """Jobs of *queue_id* in *state*: pending in run order, scheduled and
        running by time, dead by id."""
        qid = validate_queue_id(queue_id)
        limit = _check_limit(limit)
        if state == "dead":
            return [d.job for d in await self.dead_letters(qid, limit=limit, tr=tr)]
        live = _LIVE.get(state)
        if live is None:
            raise InvalidJobError(f"state must be pending, scheduled, running or dead: {state!r}")
        items = await self._run(tr, lambda tr: _core.list_items(tr, self._layout, qid, live, limit))
        return [self._job(qid, item) for item in items]

    async def dead_letters(
        self, queue_id: str, *, limit: int = DEFAULT_LIST, tr: Transaction | None = None
    ) -> list[DeadLetter]:
        """Dead letters of *queue_id*, with why each died."""
        qid = validate_queue_id(queue_id)
        limit = _check_limit(limit)
        dead = await self._run(tr, lambda tr: _core.dead_letters(tr, self._layout, qid, limit))
        return [self._dead(qid, d) for d in dead]

    async def workers(
        self, *, include_stale: bool = False, tr: Transaction | None = None
    ) -> list[WorkerInfo]:
        """The consumers whose heartbeat records are in the store, by host, then
        start time: live and stopping ones, and with *include_stale* also those
        that missed three beats (crashed, or cut off from the store). One
        snapshot read; staleness is judged on this queue's clock."""
        now = self.now_ms()
        return await self._run(
            tr, lambda tr: _core.list_workers(tr, self._layout, now, include_stale=include_stale)
        )

    # -- control ------------------------------------------------------------------

    async def _run_once(
        self,
        tr: Transaction | None,
        op: Callable[[Transaction, int], Awaitable[bytes | None]],
    ) -> bytes | None:
        """Run control *op* (given the transaction and the time) once, even if
        its commit's result comes back unknown (see ``_core.run_once``)."""
        now, token = self._call_identity(tr)
        return await self._run(
            tr, lambda tr: _core.run_once(tr, self._layout, token, now, lambda: op(tr, now))
        )

    async def replay(self, queue_id: str, job_id: str, *, tr: Transaction | None = None) -> None:
        """Move a dead letter back into its queue, ready now, with fresh attempts."""
        qid = validate_queue_id(queue_id)
        job_id = _validate_id(job_id, "job_id")

        async def replay(tr: Transaction, now: int) -> bytes | None:
            return (
                b"1" if await _core.replay_dead_letter(tr, self._layout, qid, job_id, now) else None
            )

        if await self._run_once(tr, replay) is None:
            raise JobNotFoundError(f"no dead letter {job_id!r} in queue {qid!r} to replay")

    async def purge(self, queue_id: str, job_id: str, *, tr: Transaction | None = None) -> None:
        """Delete one dead letter for good."""
        qid = validate_queue_id(queue_id)
        job_id = _validate_id(job_id, "job_id")

        async def purge(tr: Transaction, now: int) -> bytes | None:
            return b"1" if await _core.purge_dead_letter(tr, self._layout, qid, job_id) else None

        if await self._run_once(tr, purge) is None:
            raise JobNotFoundError(f"no dead letter {job_id!r} in queue {qid!r} to purge")

    async def replay_all(self, queue_id: str) -> int:
        """Replay every dead letter of *queue_id* (in batches); returns how many."""
        qid = validate_queue_id(queue_id)
        layout = self._layout

        async def replay(tr: Transaction, job_ids: list[str]) -> int:
            now = self.now_ms()
            return sum([await _core.replay_dead_letter(tr, layout, qid, i, now) for i in job_ids])

        return await self._each_dead_letter(qid, replay)

    async def purge_all(self, queue_id: str) -> int:
        """Purge every dead letter of *queue_id* (in batches); returns how many."""
        qid = validate_queue_id(queue_id)
        layout = self._layout

        async def purge(tr: Transaction, job_ids: list[str]) -> int:
            return sum([await _core.purge_dead_letter(tr, layout, qid, i) for i in job_ids])

        return await self._each_dead_letter(qid, purge)

    async def _each_dead_letter(
        self, qid: str, op: Callable[[Transaction, list[str]], Awaitable[int]]
    ) -> int:
        """Run *op* on the ids of *qid*'s dead letters, a batch per transaction,
        until a batch is short or *op* does nothing with it; the total it did."""
        total = 0
        while True:

            async def body(tr: Transaction) -> tuple[int, int]:
                dead = await _core.dead_letters(tr, self._layout, qid, DEAD_LETTER_BATCH)
                return len(dead), await op(tr, [d.item.item_id for d in dead])

            seen, done = await self.store.transact(body)
            total += done
            if seen < DEAD_LETTER_BATCH or not done:
                return total

    async def cancel(self, queue_id: str, job_id: str, *, tr: Transaction | None = None) -> Job:
        """Remove a pending or scheduled job; JobNotFoundError if absent or running."""
        qid = validate_queue_id(queue_id)
        job_id = _validate_id(job_id, "job_id")

        async def cancel(tr: Transaction, now: int) -> bytes | None:
            item = await _core.cancel_item(tr, self._layout, qid, job_id)
            return None if item is None else item.to_bytes()

        cancelled = await self._run_once(tr, cancel)
        if cancelled is None:
            raise JobNotFoundError(f"no pending or scheduled job {job_id!r} in queue {qid!r}")
        return self._job(qid, Item.from_bytes(cancelled))

    # -- history ------------------------------------------------------------------

    async def history(
        self,
        queue_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        tr: Transaction | None = None,
    ) -> list[QueueMinute]:
        """What *queue_id*'s attempts did, minute by minute, oldest first: the
        minutes from that of *since* to that of *until* (aware datetimes; None:
        every minute kept) in which attempts ended; others are left out.

        Consumers count each attempt as they record it and keep the counts
        for their ``history_keep`` (a day): a snapshot read, no scan of jobs.
        """
        qid = validate_queue_id(queue_id)
        first, last = _minutes(since, until)
        return await self._run(
            tr, lambda tr: _core.queue_history(tr, self._layout, qid, first, last)
        )

    async def history_totals(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        tr: Transaction | None = None,
    ) -> list[TotalsMinute]:
        """What every queue's attempts did, minute by minute, as :meth:`history`,
        with log-scale buckets of waits and run times for percentiles."""
        first, last = _minutes(since, until)
        return await self._run(tr, lambda tr: _core.history_totals(tr, self._layout, first, last))
