"""Stores: the ordered, transactional key-value stores quickq runs on.

- :class:`Store` and :class:`Transaction`: the protocol every store implements.
- :class:`~quickq.stores.memory.MemoryStore`: the in-memory reference store;
  :class:`~quickq.stores.sqlite.SQLiteStore` (``quickq.stores.sqlite``, loaded on
  first use) and :class:`~quickq.stores.fdb.FoundationDBStore`
  (``quickq.stores.fdb``, never loaded here).
- :class:`Limits`, :func:`decode_counter`, :class:`RetryState` and the optional
  ``Supports*`` capabilities: the protocol's shapes.
- :func:`transact`: run a function in the caller's transaction or a new one;
  :func:`open_store`: a store from a URL.

Each store uses only the protocol and the shared private modules (write
buffer, limits, faults, watchers, ranges, retry loop, clock), never a sibling
store; only ``_url``, the factory, imports stores, lazily.
"""

import typing as _typing

from .._exports import publish_exports as _publish_exports
from ._faults import CommitFault as CommitFault
from ._faults import Faults as Faults
from ._protocol import KeyValue as KeyValue
from ._protocol import Limits as Limits
from ._protocol import RetryState as RetryState
from ._protocol import Store as Store
from ._protocol import SupportsGetMany as SupportsGetMany
from ._protocol import SupportsRetryState as SupportsRetryState
from ._protocol import SupportsWatch as SupportsWatch
from ._protocol import Transaction as Transaction
from ._protocol import decode_counter as decode_counter
from ._protocol import get_many as get_many
from ._protocol import is_store as is_store
from ._protocol import transact as transact
from ._url import StoreURL as StoreURL
from ._url import open_store as open_store
from ._url import parse_store_url as parse_store_url
from .memory import MemoryStore as MemoryStore

if _typing.TYPE_CHECKING:
    from .sqlite import SQLiteStore as SQLiteStore


def __getattr__(name: str) -> _typing.Any:
    # The SQLite store (its connection pool, writer thread and schema) loads on
    # first use, so that ``import quickq`` stays light for memory or FoundationDB.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "SQLiteStore"})


__all__ = [
    "CommitFault",
    "Faults",
    "KeyValue",
    "Limits",
    "MemoryStore",
    "SQLiteStore",
    "RetryState",
    "Store",
    "StoreURL",
    "SupportsRetryState",
    "SupportsGetMany",
    "SupportsWatch",
    "Transaction",
    "decode_counter",
    "get_many",
    "is_store",
    "open_store",
    "parse_store_url",
    "transact",
]


_publish_exports(globals(), [n for n in __all__ if n != "SQLiteStore"], __name__)
