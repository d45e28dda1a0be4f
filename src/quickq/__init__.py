"""quickq: a durable, distributed job queue for structured concurrency.

Start here:

- :class:`JobRegistry` (``_jobs``): topics bound to ``async def perform(payload, meta)``
  handlers, with per-topic defaults; handlers may return :class:`Snooze` or
  :class:`Discard` (or :class:`Complete` for exactly-once writes).
- :class:`JobEvent` (``_events``): what consumers report through ``on_event``;
  :class:`Telemetry` (``_telemetry``): where OpenTelemetry spans and metrics go.
- :class:`JobQueue` (``_queue``): enqueue (alone, in batches, or inside your own
  store transaction), inspect and control queues and dead letters, and read
  each queue's per-minute history (:class:`QueueMinute`, :class:`TotalsMinute`).
- :func:`open_consumer` / :func:`serve_consumer` (the ``_consumer`` package):
  run handlers, configured by one :class:`ConsumerConfig`.
- ``_core``: the key layout, the records and the transactional operations
  that the queue and the consumer are built on.
- :mod:`quickq.stores`: where jobs live: the store protocol and its stores;
  :mod:`quickq.testing`: the conformance suite every store passes.
- ``_limits``: every limit and default; exceptions: the tree is drawn in
  ``quickq._exceptions``; ``_cli``: the ``quickq`` command, on this API alone.

docs/architecture.md maps every module and the import rules between them.
"""

from ._codec import Codec as Codec
from ._codec import JsonCodec as JsonCodec
from ._consumer import Consumer as Consumer
from ._consumer import ConsumerConfig as ConsumerConfig
from ._consumer import ConsumerOptions as ConsumerOptions
from ._consumer import ConsumerStatistics as ConsumerStatistics
from ._consumer import open_consumer as open_consumer
from ._consumer import serve_consumer as serve_consumer
from ._core import QueueMinute as QueueMinute
from ._core import TotalsMinute as TotalsMinute
from ._core import WorkerInfo as WorkerInfo
from ._events import JobEvent as JobEvent
from ._exceptions import CommitUnknownResultError as CommitUnknownResultError
from ._exceptions import ConflictError as ConflictError
from ._exceptions import InvalidArgumentError as InvalidArgumentError
from ._exceptions import InvalidJobError as InvalidJobError
from ._exceptions import JobNotFoundError as JobNotFoundError
from ._exceptions import KeyTooLargeError as KeyTooLargeError
from ._exceptions import LeaseLostError as LeaseLostError
from ._exceptions import QuickqError as QuickqError
from ._exceptions import RetryableError as RetryableError
from ._exceptions import StoreError as StoreError
from ._exceptions import StoreUnavailableError as StoreUnavailableError
from ._exceptions import TooLargeError as TooLargeError
from ._exceptions import TransactionClosedError as TransactionClosedError
from ._exceptions import TransactionTimedOutError as TransactionTimedOutError
from ._exceptions import TransactionTooLargeError as TransactionTooLargeError
from ._exceptions import TransactionTooOldError as TransactionTooOldError
from ._exceptions import ValueTooLargeError as ValueTooLargeError
from ._exports import publish_exports as _publish_exports
from ._jobs import Backoff as Backoff
from ._jobs import Complete as Complete
from ._jobs import Discard as Discard
from ._jobs import JobDefinition as JobDefinition
from ._jobs import JobMeta as JobMeta
from ._jobs import JobRegistry as JobRegistry
from ._jobs import Snooze as Snooze
from ._limits import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS
from ._queue import DeadLetter as DeadLetter
from ._queue import EnqueueOptions as EnqueueOptions
from ._queue import Job as Job
from ._queue import JobQueue as JobQueue
from ._queue import JobState as JobState
from ._queue import NewJob as NewJob
from ._queue import QueueOverview as QueueOverview
from ._queue import QueueStats as QueueStats
from ._queue import StoreOverview as StoreOverview
from ._store_gauges import serve_store_gauges as serve_store_gauges
from ._telemetry import Telemetry as Telemetry

__version__ = "0.1.0"

__all__ = [
    "MAX_DELAY_SECONDS",
    "Backoff",
    "Codec",
    "Complete",
    "Consumer",
    "ConsumerConfig",
    "ConsumerOptions",
    "ConsumerStatistics",
    "DeadLetter",
    "Discard",
    "EnqueueOptions",
    "Job",
    "JobDefinition",
    "JobEvent",
    "JobMeta",
    "JobQueue",
    "JobRegistry",
    "JobState",
    "JsonCodec",
    "NewJob",
    "QueueMinute",
    "QueueOverview",
    "QueueStats",
    "Snooze",
    "StoreOverview",
    "Telemetry",
    "TotalsMinute",
    "WorkerInfo",
    "open_consumer",
    "serve_consumer",
    "serve_store_gauges",
    "CommitUnknownResultError",
    "ConflictError",
    "InvalidArgumentError",
    "InvalidJobError",
    "JobNotFoundError",
    "KeyTooLargeError",
    "LeaseLostError",
    "QuickqError",
    "RetryableError",
    "StoreError",
    "StoreUnavailableError",
    "TooLargeError",
    "TransactionClosedError",
    "TransactionTimedOutError",
    "TransactionTooLargeError",
    "TransactionTooOldError",
    "ValueTooLargeError",
]


_publish_exports(globals(), __all__, "quickq")
