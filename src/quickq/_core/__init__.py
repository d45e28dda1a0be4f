"""The queue's core: the key layout, the records and the transactional operations.

Everything here is ``f(tr, layout, ..., now)`` over the store protocol, with no
other I/O; :mod:`quickq._queue` (the producer API) and :mod:`quickq._consumer`
(the workers) are built on these names and import nothing else from ``_core``.

Each operation runs inside a caller's transaction and is safe to run again
after commit-unknown-result: enqueue finds its receipt; leasing finds its
batch marker; settling finds its lease id in ``settled_by`` (or its
completion receipt); control calls run under :func:`run_once`. Peeks use
snapshot reads; read conflicts are taken only on what an operation claims
(the items it leases, the pointer it moves). Producers never read what
leasing writes: they mark a queue due with a blind write that the leasing
consumer clears by compare-and-clear, so the two never conflict.
Fencing operations (extend, settle) take a clock rather than a time, and read
it after their reads, so a lease is judged at the moment of the write.
Operations on batches (enqueue_many, lease_items with its promotion,
settle_many) adjust each counter once per queue, by one atomic add; settling
and promotion also count each queue's attempts per minute (``_history``).

Modules, bottom up: ``_keys`` (Layout, State), ``_records`` (the stored
values), ``_items`` and ``_pointers`` (the shared reads and writes),
``_receipts``, ``_history``; then one per operation family: ``_enqueue``,
``_lease``, ``_settle``, ``_inspect``; ``_workers`` keeps the consumers'
heartbeat records, each written blind in a transaction of its own.
"""

from ._enqueue import NewItem as NewItem
from ._enqueue import enqueue_many as enqueue_many
from ._history import MINUTE_MS as MINUTE_MS
from ._history import QueueMinute as QueueMinute
from ._history import TotalsMinute as TotalsMinute
from ._history import expire_history as expire_history
from ._history import history_totals as history_totals
from ._history import queue_history as queue_history
from ._inspect import OLDEST_SCAN as OLDEST_SCAN
from ._inspect import QueueSummary as QueueSummary
from ._inspect import cancel_item as cancel_item
from ._inspect import counters as counters
from ._inspect import dead_letters as dead_letters
from ._inspect import list_items as list_items
from ._inspect import purge_dead_letter as purge_dead_letter
from ._inspect import queue_names as queue_names
from ._inspect import replay_dead_letter as replay_dead_letter
from ._inspect import summaries as summaries
from ._items import MsClock as MsClock
from ._items import read_dead_letter as read_dead_letter
from ._items import read_item as read_item
from ._keys import Layout as Layout
from ._keys import State as State
from ._lease import LeaseBatch as LeaseBatch
from ._lease import extend_lease as extend_lease
from ._lease import lease_items as lease_items
from ._lease import take_queue_lease as take_queue_lease
from ._pointers import due_queues as due_queues
from ._pointers import next_due_time as next_due_time
from ._pointers import wake_counters as wake_counters
from ._receipts import RECEIPT_KEEP_MS as RECEIPT_KEEP_MS
from ._receipts import forget_receipts as forget_receipts
from ._receipts import run_once as run_once
from ._records import DeadLetterRecord as DeadLetterRecord
from ._records import DeadReason as DeadReason
from ._records import Item as Item
from ._records import Lease as Lease
from ._records import QueuePointer as QueuePointer
from ._records import record_overhead as record_overhead
from ._records import truncate_error as truncate_error
from ._settle import Action as Action
from ._settle import Outcome as Outcome
from ._settle import Settlement as Settlement
from ._settle import settle as settle
from ._settle import settle_many as settle_many
from ._workers import WorkerInfo as WorkerInfo
from ._workers import WorkerRecord as WorkerRecord
from ._workers import clear_heartbeat as clear_heartbeat
from ._workers import fitting_text as fitting_text
from ._workers import fitting_topics as fitting_topics
from ._workers import list_workers as list_workers
from ._workers import prune_heartbeats as prune_heartbeats
from ._workers import write_heartbeat as write_heartbeat
