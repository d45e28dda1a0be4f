"""A transaction's size as FoundationDB counts it: the one place for these rules.

FoundationDB refuses a commit (``transaction_too_large``, 2101) when
``Transaction::getSize()`` in ``fdbclient/NativeAPI.actor.cpp`` exceeds the
``TRANSACTION_SIZE_LIMIT`` knob (10,000,000 bytes): the ``expectedSize()`` of
the mutations plus the read and write conflict ranges, where each entry costs
its bytes plus its struct (``VectorRef::expectedSize``: ``sizeof(T)`` per
element). What the Python bindings hand it is the read-your-writes layer's
(``ReadYourWrites.actor.cpp``), coalesced at commit:

- ``set(k, v)``: mutation ``k + v``; write conflict ``[k, k+\\x00)``;
- ``clear(k)``: a range-clear mutation ``[k, k+\\x00)`` and its conflict
  (``Transaction::clear(const KeyRef&)``);
- ``clear_range(b, e)``: mutation ``b + e``; conflict ``[b, e)``;
- ``atomicOp(k, operand)``: mutation ``k + operand``; conflict ``[k, k+\\x00)``;
- a non-snapshot read, ``addReadConflictRange``: ``[b, e)``, split around the
  keys this transaction already wrote (``updateConflictMap``);
- one mutation per key: later writes to a key replace or coalesce with
  earlier ones (``WriteMap::coalesce``).

quickq's stores charge each call as it is made, never merging ranges, so
their count is an upper bound of FoundationDB's, exact for transactions of
point writes and separate read ranges (what quickq makes). The limits these
sizes are held to are :class:`~quickq.stores.Limits` (in ``_protocol``).
"""

from __future__ import annotations

from typing import Final

from .._exceptions import KeyTooLargeError, TransactionTooLargeError, ValueTooLargeError
from ._protocol import Limits

MUTATION_BYTES: Final = 56
"""``sizeof(MutationRef)`` in FoundationDB 7.3.43 and later on 64-bit machines
(40 before its checksum fields): an upper bound for every 7.3 client."""
RANGE_BYTES: Final = 32
"""``sizeof(KeyRangeRef)``: two 16-byte ``StringRef``."""
COUNTER_BYTES: Final = 8
"""The operand of an atomic add (a little-endian 64-bit integer)."""


def key_range_bytes(key: int) -> int:
    """A conflict range over one key of *key* bytes: ``[k, k+\\x00)``."""
    return RANGE_BYTES + 2 * key + 1


def range_bytes(begin: int, end: int) -> int:
    """A conflict range ``[begin, end)`` with bounds of these lengths."""
    return RANGE_BYTES + begin + end


def set_bytes(key: int, value: int) -> int:
    """A first ``set`` of a key: its mutation and its write conflict."""
    return MUTATION_BYTES + key + value + key_range_bytes(key)


def clear_bytes(key: int) -> int:
    """A first ``clear`` of a key: a one-key range clear and its write conflict."""
    return MUTATION_BYTES + 2 * key + 1 + key_range_bytes(key)


def clear_range_bytes(begin: int, end: int) -> int:
    """A ``clear_range``: its mutation and its write conflict."""
    return MUTATION_BYTES + begin + end + range_bytes(begin, end)


def add_bytes(key: int) -> int:
    """A first atomic ``add`` to a key: its mutation and its write conflict."""
    return MUTATION_BYTES + key + COUNTER_BYTES + key_range_bytes(key)


# -- the checks every store makes, with one wording ------------------------


def check_key(key: bytes, limits: Limits, *, note: str = "") -> None:
    """Raise unless *key* is ``bytes`` within ``limits.key_bytes`` (*note*: why
    the limit is what it is, appended to the message)."""
    if not isinstance(key, bytes):
        raise TypeError(f"keys are bytes, not {type(key).__name__}")
    if len(key) > limits.key_bytes:
        raise KeyTooLargeError(
            f"key of {len(key)} bytes exceeds the limit of {limits.key_bytes}{note}"
        )


def check_value(value: bytes, limits: Limits) -> None:
    """Raise unless *value* is ``bytes`` within ``limits.value_bytes``."""
    if not isinstance(value, bytes):
        raise TypeError(f"values are bytes, not {type(value).__name__}")
    if len(value) > limits.value_bytes:
        raise ValueTooLargeError(
            f"value of {len(value)} bytes exceeds the limit of {limits.value_bytes}"
        )


def check_size(size: int, limits: Limits) -> None:
    """Raise TransactionTooLargeError if a transaction of *size* bytes (counted
    by the rules above) is over ``limits.transaction_bytes``."""
    if size > limits.transaction_bytes:
        raise TransactionTooLargeError(
            f"transaction of {size} bytes exceeds the limit of "
            f"{limits.transaction_bytes} (counted as FoundationDB does: "
            "mutations, read and write conflict ranges, and their overhead)"
        )
