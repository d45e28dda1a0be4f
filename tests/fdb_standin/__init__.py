"""A STAND-IN for FoundationDB's Python bindings, for tests. Not FoundationDB.

It lives among the tests, not in :mod:`quickq.testing`: it exists to test
:class:`~quickq.stores.fdb.FoundationDBStore`'s own control flow, and its
steering and inspection surface is as wide as those tests need. Code that
merely runs on a store is tested on :class:`~quickq.stores.MemoryStore` (the
reference store, with the same semantics) and stores prove themselves with
:class:`~quickq.testing.StoreTests`.

No FoundationDB server or client library can be installed where quickq is built,
so the FoundationDB store's own control flow (its retry loop, error mapping,
range paging, future bridging, cancellation) is tested against this in-process
object with the surface of the ``fdb`` module that ``quickq.stores.fdb`` uses:

- module level: ``api_version``, ``open``, ``options.set_knob``, ``FDBError``,
  ``KeySelector``, ``StreamingMode``;
- ``Database.create_transaction``;
- ``Transaction``: ``get``, ``_get_range`` (the page future behind the bindings'
  range iterator), ``snapshot``, ``set``, ``clear``, ``clear_range``, ``add``,
  ``compare_and_clear``,
  ``add_read_conflict_range``/``_key``, ``watch``, ``get_read_version``,
  ``commit``, ``on_error``, ``cancel``, ``options`` (timeout, retry limit, max
  retry delay);
- futures with ``on_ready``, ``is_ready``, ``block_until_ready``, ``wait``,
  ``cancel`` (and ``value`` for values).

The data lives in a :class:`~quickq.stores.MemoryStore` (the reference store),
so conflicts, snapshot reads and read-your-writes behave as specified. Like the
real client, every operation runs on a separate "network" thread (here an
asyncio loop in a daemon thread), which resolves futures and calls their
``on_ready`` callbacks there. Tests steer it: inject error codes per operation,
slow or hold futures, deliver cancellation callbacks late, page range reads in
small pages, and inspect what the store did (options set, ``on_error`` calls,
cancelled futures, exceptions raised by callbacks, thread of each callback).
It also records, as an unexpected error, any use of a transaction while its
``on_error`` future is pending (the real client resets the transaction when
that future is ready, wiping what was done meanwhile).

Where it differs from FoundationDB (by design): versions and conflict checks
are the memory store's; only the key selectors the store uses are supported;
backoff in ``on_error`` is scaled down to keep tests fast.
"""

from ._bindings import StandinDatabase as StandinDatabase
from ._bindings import StandinFDB as StandinFDB
from ._bindings import StandinTransaction as StandinTransaction
from ._cases import Body as Body
from ._cases import check_clean as check_clean
from ._cases import noop as noop
from ._cases import open_store as open_store
from ._network import FDBError as FDBError

__all__ = [
    "Body",
    "FDBError",
    "StandinDatabase",
    "StandinFDB",
    "StandinTransaction",
    "check_clean",
    "noop",
    "open_store",
]
