"""quickq: a durable, distributed job queue for structured concurrency.

Start here:

- stores (:mod:`quickq.stores`): where jobs live: the store protocol and the
  in-memory reference store;
- exceptions: the tree is drawn in ``quickq._exceptions``.
"""

from ._exceptions import CommitUnknownResultError as CommitUnknownResultError
from ._exceptions import ConflictError as ConflictError
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

__version__ = "0.1.0"

__all__ = [
    "CommitUnknownResultError",
    "ConflictError",
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
