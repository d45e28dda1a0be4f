"""The FoundationDB store: quickq on the distributed engine it was designed for.

This is the only package of quickq that loads FoundationDB's native client
library (``libfdb_c``), and it does so lazily, when a store is opened::

    from quickq.stores.fdb import FoundationDBStore

    async with await FoundationDBStore.open("/etc/foundationdb/fdb.cluster",
                                            prefix=b"tenant-42/") as store:
        ...

It implements :class:`~quickq.stores.Store` on FoundationDB's own transactions,
without ever blocking the event loop's thread (it runs on trio and asyncio):

- every FoundationDB future is awaited through its ``on_ready`` callback, which
  wakes the waiting task thread-safely (``_futures``); a
  cancelled task cancels its future;
- :meth:`FoundationDBStore.transact` is FoundationDB's retry loop made async
  (``@fdb.transactional`` would block the thread): run the body, await the
  commit, and on an error await ``on_error``, which backs off and resets the
  transaction, or re-raises what is not retryable. The retry limit and the
  timeout are FoundationDB transaction options, so the client enforces them;
- range reads are paged asynchronously, one future per page, honouring
  ``limit``, ``reverse`` and ``snapshot``;
- FoundationDB errors are mapped to quickq's exceptions at this boundary
  (table in ``_errors``);
- watches implement :class:`~quickq.stores.SupportsWatch`.

Keys are given to the store already encoded (quickq encodes them with
``fdb.tuple``); the store only prepends its raw key *prefix*, which isolates
tenants that share a cluster. See ``docs/foundationdb.md``.
"""

from ..._exports import publish_exports as _publish_exports
from ._store import DEFAULT_API_VERSION as DEFAULT_API_VERSION
from ._store import FoundationDBStore as FoundationDBStore
from ._store import load_bindings as load_bindings
from ._transaction import FoundationDBTransaction as FoundationDBTransaction

__all__ = [
    "DEFAULT_API_VERSION",
    "FoundationDBStore",
    "FoundationDBTransaction",
    "load_bindings",
]

_publish_exports(globals(), __all__, __name__)
