"""quickq's exceptions: the only exceptions quickq lets escape.

Store backends map their native errors to these at the boundary, so code above
the store never sees ``sqlite3`` or ``fdb`` exceptions::

    QuickqError
    +-- StoreError                      something went wrong talking to the store
    |   +-- RetryableError              store.transact() retries these with backoff
    |   |   +-- ConflictError           a value this transaction read was changed
    |   |   |                           by a transaction that committed first
    |   |   +-- TransactionTooOldError  the transaction outlived the store's age limit
    |   |   +-- CommitUnknownResultError
    |   |                               the commit may or may not have happened;
    |   |                               bodies must be idempotent to be retried
    |   +-- TooLargeError               a limit was exceeded; nothing was written
    |   |   +-- KeyTooLargeError
    |   |   +-- ValueTooLargeError
    |   |   +-- TransactionTooLargeError
    |   +-- TransactionTimedOutError    the transaction's own timeout expired
    |   +-- StoreUnavailableError       the store cannot be reached or opened
    |   +-- TransactionClosedError      the transaction was used after commit,
    |                                   cancel or failure
    +-- InvalidArgumentError (also ValueError)
    |   |                               a bad argument at a public entry point,
    |   |                               raised before anything starts or is written
    |   +-- InvalidJobError             bad job data: topic, payload, job options
    +-- LeaseLostError                  the job's lease is no longer ours
    +-- JobNotFoundError (also LookupError)
"""

from __future__ import annotations


class QuickqError(Exception):
    """Base class of every exception quickq raises on purpose."""


class StoreError(QuickqError):
    """A store operation failed."""


class RetryableError(StoreError):
    """A transient failure: running the whole transaction again may succeed."""


class ConflictError(RetryableError):
    """The transaction read something that a concurrently committed transaction wrote.

    Nothing was written. FoundationDB calls this ``not_committed`` (1020).
    """


class TransactionTooOldError(RetryableError):
    """The transaction is older than the store's age limit (FoundationDB: 5 s)."""


class CommitUnknownResultError(RetryableError):
    """The commit may or may not have been applied.

    Raised by ``Transaction.commit()`` as its own exception. ``Store.transact``
    retries it like FoundationDB does, so every transaction body must either be
    idempotent or detect its own earlier commit.
    """


class TooLargeError(StoreError):
    """A size limit of the store was exceeded. Nothing was written."""


class KeyTooLargeError(TooLargeError):
    """A key is longer than the store allows."""


class ValueTooLargeError(TooLargeError):
    """A value is longer than the store allows."""


class TransactionTooLargeError(TooLargeError):
    """The transaction's writes add up to more than the store allows."""


class TransactionTimedOutError(StoreError):
    """The transaction's configured timeout expired; it is not retried."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached, opened or used."""


class TransactionClosedError(StoreError):
    """The transaction was used after it committed, was cancelled or failed."""


class InvalidArgumentError(QuickqError, ValueError):
    """A bad argument at a public entry point (wrong type, out of range, unknown
    name). Raised before anything starts or is written; the message names the
    argument, the value it got (shortened) and what is allowed."""


class InvalidJobError(InvalidArgumentError):
    """Bad job data (topic, payload, per-job options). Nothing was written."""


class LeaseLostError(QuickqError):
    """The job's lease expired or was taken over; its outcome was not recorded.

    Kept for compatibility: quickq does not raise it. A consumer that loses a
    job's lease cancels the handler and reports the attempt as ``lost``
    (a :class:`~quickq.JobEvent` and ``ConsumerStatistics.lost``).
    """


class JobNotFoundError(QuickqError, LookupError):
    """No job (or dead letter) with that id exists in that queue."""
