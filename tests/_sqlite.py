"""Helpers for the SQLite store's tests: a backdoor through plain ``sqlite3``,
one-key transactions, and child Python processes on the same file."""

from __future__ import annotations

import os
import sqlite3
import struct
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from quickq.stores import Transaction, decode_counter
from quickq.stores.sqlite import SQLiteStore

SRC = str(Path(__file__).resolve().parents[1] / "src")


def backdoor_get(path: Path, key: bytes) -> bytes | None:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


async def set_key(store: SQLiteStore, key: bytes, value: bytes) -> None:
    async def body(tr: Transaction) -> None:
        tr.set(key, value)

    await store.transact(body)


async def get_key(store: SQLiteStore, key: bytes) -> bytes | None:
    async def body(tr: Transaction) -> bytes | None:
        return await tr.get(key)

    return await store.transact(body)


async def increment(tr: Transaction) -> None:
    # get + set (not add) on purpose: only serializability keeps the count exact.
    value = decode_counter(await tr.get(b"counter"))
    tr.set(b"counter", struct.pack("<q", value + 1))


def run_python(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
