"""What the tests of FoundationDBStore on the stand-in share: the check that
must hold after each test, opening a store, and a body that counts its runs."""

from __future__ import annotations

from typing import Any

from quickq.stores import Transaction
from quickq.stores.fdb import FoundationDBStore

from ._bindings import StandinFDB


def check_clean(fdb: StandinFDB) -> None:
    """What must hold after every test: no thread ever blocked on a future, and no
    ready callback raised (the real bindings would print and drop it)."""
    assert fdb.network.blocking_waits == 0, "a future was waited for by blocking a thread"
    assert fdb.network.callback_errors == []
    assert fdb.network.unexpected_errors == []


async def noop(tr: Transaction) -> None:
    return None


async def open_store(standin: StandinFDB, **options: Any) -> FoundationDBStore:
    store = await FoundationDBStore.open(bindings=standin, **options)
    standin.cancelled_transactions = 0  # not counting open's probe
    return store


class Body:
    """A transaction body that counts its runs and writes one key."""

    def __init__(self) -> None:
        self.runs = 0
        self.views: list[Transaction] = []

    async def __call__(self, tr: Transaction) -> str:
        self.runs += 1
        self.views.append(tr)
        await tr.get(b"seen")
        tr.set(b"k", b"v%d" % self.runs)
        return "done"
