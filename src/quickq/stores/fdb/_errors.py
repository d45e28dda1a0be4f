"""FoundationDB error codes, and their mapping into quickq's exception hierarchy.

FoundationDB reports every failure as an ``FDBError`` with a numeric ``code``
(``flow/include/flow/error_definitions.h`` in FoundationDB's source). quickq's
FoundationDB store maps them at its boundary, so nothing above the store sees an
``fdb`` exception:

======  ===============================  =======================================
code    FoundationDB name                quickq exception
======  ===============================  =======================================
1020    not_committed                    ConflictError (retryable)
1021    commit_unknown_result            CommitUnknownResultError (retryable)
1039    cluster_version_changed          CommitUnknownResultError (retryable)
1007    transaction_too_old              TransactionTooOldError (retryable)
other   retryable per ``on_error``       RetryableError
1031    transaction_timed_out            TransactionTimedOutError
2101    transaction_too_large            TransactionTooLargeError
2102    key_too_large                    KeyTooLargeError
2103    value_too_large                  ValueTooLargeError
1025    transaction_cancelled            TransactionClosedError
1515,   no cluster file, bad cluster     StoreUnavailableError
2104..  file, unreachable or locked
        cluster, incompatible client
other                                    StoreError
======  ===============================  =======================================

The mapped exception is raised ``from`` the ``FDBError``, so the store's retry
loop can hand the original code back to ``Transaction.on_error``.
"""

from __future__ import annotations

from typing import Final

from ..._exceptions import (
    CommitUnknownResultError,
    ConflictError,
    KeyTooLargeError,
    RetryableError,
    StoreError,
    StoreUnavailableError,
    TransactionClosedError,
    TransactionTimedOutError,
    TransactionTooLargeError,
    TransactionTooOldError,
    ValueTooLargeError,
)

TRANSACTION_TOO_OLD: Final = 1007
FUTURE_VERSION: Final = 1009
NOT_COMMITTED: Final = 1020
COMMIT_UNKNOWN_RESULT: Final = 1021
TRANSACTION_CANCELLED: Final = 1025
WATCH_CANCELLED: Final = 1029
TRANSACTION_TIMED_OUT: Final = 1031
TOO_MANY_WATCHES: Final = 1032
WATCHES_DISABLED: Final = 1034
DATABASE_LOCKED: Final = 1038
CLUSTER_VERSION_CHANGED: Final = 1039
OPERATION_CANCELLED: Final = 1101
NO_CLUSTER_FILE_FOUND: Final = 1515
CLIENT_INVALID_OPERATION: Final = 2000
TRANSACTION_TOO_LARGE: Final = 2101
KEY_TOO_LARGE: Final = 2102
VALUE_TOO_LARGE: Final = 2103
CONNECTION_STRING_INVALID: Final = 2104

#: Codes ``on_error`` retries (FoundationDB's ``fdb_error_predicate(RETRYABLE)``
#: in 7.3): "maybe committed" and "retryable, not committed".
RETRYABLE_CODES: Final = frozenset(
    {
        COMMIT_UNKNOWN_RESULT,
        CLUSTER_VERSION_CHANGED,
        NOT_COMMITTED,
        TRANSACTION_TOO_OLD,
        FUTURE_VERSION,
        DATABASE_LOCKED,
        1037,  # process_behind
        1042,  # commit_proxy_memory_limit_exceeded
        1051,  # batch_transaction_throttled
        1078,  # grv_proxy_memory_limit_exceeded
        1213,  # tag_throttled
        1223,  # proxy_tag_throttled
        1235,  # transaction_throttled_hot_shard
    }
)

#: Codes that mean the cluster cannot be reached or used with this client.
UNAVAILABLE_CODES: Final = frozenset(
    {
        1026,  # connection_failed
        1043,  # shutdown_in_progress
        1054,  # wrong_connection_file
        1511,  # file_not_found (the cluster file)
        1513,  # file_not_readable (the cluster file)
        NO_CLUSTER_FILE_FOUND,
        2008,  # network_not_setup
        2100,  # incompatible_protocol_version
        CONNECTION_STRING_INVALID,
        2124,  # all_external_clients_failed
        2125,  # incompatible_client
    }
)

_EXACT: Final[dict[int, tuple[type[StoreError], str]]] = {
    NOT_COMMITTED: (ConflictError, "a value read by this transaction changed before commit"),
    COMMIT_UNKNOWN_RESULT: (CommitUnknownResultError, "the commit may or may not have happened"),
    CLUSTER_VERSION_CHANGED: (
        CommitUnknownResultError,
        "the cluster's version changed during commit; the commit may or may not have happened",
    ),
    TRANSACTION_TOO_OLD: (TransactionTooOldError, "the transaction outlived the 5 s limit"),
    TRANSACTION_TIMED_OUT: (TransactionTimedOutError, "the transaction's timeout expired"),
    TRANSACTION_TOO_LARGE: (TransactionTooLargeError, "the transaction's writes exceed 10 MB"),
    KEY_TOO_LARGE: (KeyTooLargeError, "a key exceeds 10,000 bytes"),
    VALUE_TOO_LARGE: (ValueTooLargeError, "a value exceeds 100,000 bytes"),
    TRANSACTION_CANCELLED: (TransactionClosedError, "the transaction was cancelled"),
}


def map_error(code: int, detail: str) -> StoreError:
    """The quickq exception for FoundationDB error *code*; *detail* is the native text.

    Raise it ``from`` the original ``FDBError`` (the retry loop reads the code
    back from ``__cause__``).
    """
    cls: type[StoreError]
    if code in _EXACT:
        cls, what = _EXACT[code]
    elif code in RETRYABLE_CODES:
        cls, what = RetryableError, "a transient FoundationDB failure"
    elif code in UNAVAILABLE_CODES:
        cls, what = StoreUnavailableError, "the FoundationDB cluster cannot be used"
    else:
        cls, what = StoreError, "FoundationDB failed"
    return cls(f"{what} (FoundationDB error {code}: {detail})")


def retry_code(exc: BaseException) -> int | None:
    """The code to hand ``on_error`` for a quickq exception raised without an FDB cause.

    A transaction body may raise a quickq retryable error itself; it is retried
    through ``on_error`` (so the same backoff and retry limit apply) as the
    FoundationDB error it stands for. ``None`` for everything else.
    """
    if isinstance(exc, ConflictError):
        return NOT_COMMITTED
    if isinstance(exc, CommitUnknownResultError):
        return COMMIT_UNKNOWN_RESULT
    if isinstance(exc, TransactionTooOldError):
        return TRANSACTION_TOO_OLD
    if isinstance(exc, RetryableError):
        return FUTURE_VERSION  # a plain retryable, not-committed error
    return None
