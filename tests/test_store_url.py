"""Store URLs: the forms, their options, and clear errors for everything else."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

import quickq
from quickq.stores import MemoryStore, open_store
from quickq.stores._url import StoreURL, parse_store_url
from quickq.stores.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory:", StoreURL("memory", None)),
        ("MEMORY://", StoreURL("memory", None)),
        ("sqlite:///jobs.db", StoreURL("sqlite", "jobs.db")),
        ("sqlite:///data/jobs.db", StoreURL("sqlite", "data/jobs.db")),
        ("sqlite:////var/lib/jobs.db", StoreURL("sqlite", "/var/lib/jobs.db")),
        ("sqlite:///my%20jobs%3F.db", StoreURL("sqlite", "my jobs?.db")),
        (
            "sqlite:///jobs.db?durability=normal&busy_timeout=0.5&poll_interval=0.01",
            StoreURL(
                "sqlite",
                "jobs.db",
                {"durability": "normal", "busy_timeout": 0.5, "poll_interval": 0.01},
            ),
        ),
        (
            "sqlite:///jobs.db?durability=FULL",
            StoreURL("sqlite", "jobs.db", {"durability": "full"}),
        ),
        (
            "sqlite:///jobs.db?threaded_reads=true",
            StoreURL("sqlite", "jobs.db", {"threaded_reads": True}),
        ),
        (
            "sqlite:///jobs.db?threaded_reads=0",
            StoreURL("sqlite", "jobs.db", {"threaded_reads": False}),
        ),
        ("fdb:", StoreURL("fdb", None)),
        ("fdb://", StoreURL("fdb", None)),
        ("fdb:///etc/foundationdb/fdb.cluster", StoreURL("fdb", "/etc/foundationdb/fdb.cluster")),
        ("fdb:local.cluster", StoreURL("fdb", "local.cluster")),
        (
            "fdb:?prefix=tenant%2F%00&transaction_timeout=none&probe_timeout=2",
            StoreURL(
                "fdb",
                None,
                {"prefix": b"tenant/\x00", "transaction_timeout": None, "probe_timeout": 2.0},
            ),
        ),
    ],
)
def test_parse_store_url(url: str, expected: StoreURL) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost", "unknown scheme 'redis'"),
        ("jobs.db", "no scheme"),
        ("", "no scheme"),
        ("memory:/x", "takes no path"),
        ("memory:?durability=full", "unknown option 'durability'"),
        ("sqlite:jobs.db", "sqlite:///relative"),
        ("sqlite://host/jobs.db", "no host"),
        ("sqlite:///", "no database file"),
        ("sqlite:///data/", "no database file"),
        ("sqlite:///:memory:", "use memory:"),
        ("sqlite:///a%00b.db", "NUL"),
        ("sqlite:///jobs.db?durability=fast", "must be full or normal"),
        ("sqlite:///jobs.db?busy_timeout=-1", "seconds >= 0"),
        ("sqlite:///jobs.db?threaded_reads=maybe", "must be true or false"),
        ("sqlite:///jobs.db?busy_timeout=soon", "a number of seconds"),
        ("sqlite:///jobs.db?poll_interval=0", "positive"),
        ("sqlite:///jobs.db?poll_interval=nan", "positive"),
        ("sqlite:///jobs.db?durability=full&durability=normal", "given twice"),
        ("sqlite:///jobs.db?durability", "name=value"),
        ("sqlite:///jobs.db?prefix=x", "unknown option 'prefix'"),
        ("fdb://cluster-host/fdb.cluster", "no host"),
        ("fdb:?transaction_timeout=0", "positive"),
    ],
)
def test_bad_urls_raise_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(quickq.InvalidArgumentError, match="bad store URL") as info:
        parse_store_url(url)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_url_must_be_a_string() -> None:
    with pytest.raises(quickq.InvalidArgumentError, match="str"):
        parse_store_url(b"memory:")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_open_memory_store() -> None:
    store = await open_store("memory:")
    assert isinstance(store, MemoryStore)
    assert store is not await open_store("memory:")  # each URL opening is a new store
    await store.aclose()


@pytest.mark.anyio
async def test_open_sqlite_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store(
        "sqlite:///rel.db?durability=normal&busy_timeout=0.25&threaded_reads=yes"
    )
    try:
        assert isinstance(store, SQLiteStore)
        assert (store.path, store.durability, store.busy_timeout) == ("rel.db", "normal", 0.25)
        assert store.threaded_reads
        await quickq.JobQueue(store).enqueue("q", "t")
    finally:
        await store.aclose()
    assert (tmp_path / "rel.db").exists()
    absolute = tmp_path / "sub dir" / "abs.db"
    absolute.parent.mkdir()
    assert absolute.is_absolute()
    store = await open_store("sqlite:///" + quote(os.fspath(absolute)))
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == os.fspath(absolute)
        assert store.durability == "full"
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_open_sqlite_maps_bad_files_to_store_unavailable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(quickq.StoreUnavailableError, match="not a SQLite database"):
        await open_store("sqlite:///" + quote(os.fspath(junk)))


@pytest.mark.anyio
async def test_open_fdb_imports_lazily_and_fails_clearly(tmp_path: Path) -> None:
    """Without a FoundationDB client or cluster, an fdb: URL is a one-line
    StoreUnavailableError, never an ImportError or OSError."""
    missing = tmp_path / "none.cluster"
    with pytest.raises(quickq.StoreUnavailableError) as info:
        await open_store(f"fdb://{missing}?probe_timeout=0.5")
    assert "\n" not in str(info.value)


def test_fdb_store_module_is_not_imported_until_an_fdb_url_is_opened() -> None:
    import subprocess
    import sys

    code = (
        "import sys, quickq, quickq.stores\n"
        "quickq.stores._url.parse_store_url('fdb:')\n"
        "assert 'quickq.stores.fdb' not in sys.modules, 'imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
