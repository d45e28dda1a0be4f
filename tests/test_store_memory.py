"""The in-memory reference store: the conformance suite, then what only it does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from quickq.stores import MemoryStore
from quickq.testing import StoreTests


class TestMemoryStore(StoreTests):
    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryStore]:
        store = MemoryStore()
        yield store
        await store.aclose()

    def backdoor_get(self, store: MemoryStore, key: bytes) -> bytes | None:  # type: ignore[override]
        return store.raw_get(key)

    def backdoor_set(self, store: MemoryStore, key: bytes, value: bytes | None) -> None:  # type: ignore[override]
        store.raw_set(key, value)
