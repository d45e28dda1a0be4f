"""The queue's core: the key layout, the records and the transactional operations.

Everything here is ``f(tr, layout, ..., now)`` over the store protocol, with no
other I/O; :mod:`quickq._queue` (the producer API) and :mod:`quickq._consumer`
(the workers) are built on these names and import nothing else from ``_core``.
"""

from ._layout import COUNTERS as COUNTERS
from ._layout import DeadItem as DeadItem
from ._layout import DeadReason as DeadReason
from ._layout import Item as Item
from ._layout import Layout as Layout
from ._layout import Lease as Lease
from ._layout import QueuePointer as QueuePointer
from ._layout import Where as Where
from ._layout import record_overhead as record_overhead
from ._layout import truncate_error as truncate_error
from ._ops import RECEIPT_BUCKET_MS as RECEIPT_BUCKET_MS
from ._ops import RECEIPT_KEEP_MS as RECEIPT_KEEP_MS
from ._ops import Action as Action
from ._ops import LeaseBatch as LeaseBatch
from ._ops import MsClock as MsClock
from ._ops import NewItem as NewItem
from ._ops import Outcome as Outcome
from ._ops import Settlement as Settlement
from ._ops import cancel_item as cancel_item
from ._ops import counters as counters
from ._ops import dead_items as dead_items
from ._ops import due_queues as due_queues
from ._ops import enqueue as enqueue
from ._ops import enqueue_many as enqueue_many
from ._ops import ensure_pointer as ensure_pointer
from ._ops import extend_lease as extend_lease
from ._ops import forget_receipts as forget_receipts
from ._ops import get_item as get_item
from ._ops import lease_items as lease_items
from ._ops import list_items as list_items
from ._ops import next_due_time as next_due_time
from ._ops import purge_dead as purge_dead
from ._ops import queue_names as queue_names
from ._ops import replay_dead as replay_dead
from ._ops import run_once as run_once
from ._ops import settle as settle
from ._ops import take_queue_lease as take_queue_lease
