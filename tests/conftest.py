"""Shared fixtures: async tests run on both trio and asyncio via anyio's plugin."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from quickq.stores import MemoryStore
from quickq.stores.sqlite import SQLiteStore

from .support import TestStore


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestStore]:
    """A fresh, empty store of each kind the queue suite runs on."""
    if request.param == "memory":
        yield MemoryStore()
    else:
        async with await SQLiteStore.open(tmp_path / "queue.db", durability="normal") as sqlite:
            yield sqlite


# Hypothesis profiles. The default keeps the whole suite fast; the store state
# machine runs at least quickq.testing.MIN_EXAMPLES examples whatever the profile.
# QUICKQ_HYPOTHESIS_PROFILE=long for long runs (nightly, before a release).
settings.register_profile("long", max_examples=5_000, stateful_step_count=100, deadline=None)
settings.load_profile(os.environ.get("QUICKQ_HYPOTHESIS_PROFILE", "default"))
