"""The configuration fields that hold Python objects, on the command line:
``--root`` on every command, ``--codec`` and ``--on-event`` as ``MODULE:ATTR``."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

import quickq
from quickq.stores.sqlite import SQLiteStore

from .test_cli import ok_run, quickq_cli, url, wait_for, worker

ROOT = ("myapp", "jobs")
ROOT_ARGS = ("--root", "myapp", "--root", "jobs")
SEEN = Path(os.environ.get("QUICKQ_TEST_SEEN", os.devnull))


class Base64Json:
    """A codec no JSON reader understands: JSON, then base64."""

    def encode(self, payload: Any) -> bytes:
        return base64.b64encode(json.dumps(payload).encode())

    def decode(self, data: bytes) -> Any:
        return json.loads(base64.b64decode(data))


codec = Base64Json()
not_a_codec = 42


def record(event: quickq.JobEvent) -> None:
    """The ``--on-event`` hook: one line per event, in the file the test names."""
    with SEEN.open("a") as out:
        out.write(f"{event.kind} {event.queue_id} {event.topic}\n")


def stats(path: Path, qid: str, root: tuple[str, ...]) -> quickq.QueueStats:
    async def read() -> quickq.QueueStats:
        async with await SQLiteStore.open(path) as store:
            return await quickq.JobQueue(store, root=root).stats(qid)

    return anyio.run(read)


def test_every_command_works_in_the_root_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = url(path)
    out = ok_run("enqueue", "shop", "fail", "--store", db, *ROOT_ARGS, "--max-retries", "0")
    assert "enqueued " in out
    assert stats(path, "shop", ROOT).pending == 1
    assert stats(path, "shop", ("quickq",)).pending == 0  # not in the default root
    assert "shop" in ok_run("stats", "--store", db, *ROOT_ARGS)
    assert "shop" not in ok_run("stats", "--store", db)
    assert len(json.loads(ok_run("jobs", "shop", "--json", "--store", db, *ROOT_ARGS))) == 1
    # The environment variable, space-separated, says the same.
    env_root = quickq_cli("jobs", "shop", "--json", "--store", db, QUICKQ_ROOT="myapp jobs")
    assert env_root.returncode == 0, env_root.stderr
    assert len(json.loads(env_root.stdout)) == 1

    with worker(db, *ROOT_ARGS):
        wait_for(lambda: stats(path, "shop", ROOT).dead == 1)
    assert "RuntimeError" in ok_run("dead", "list", "shop", "--store", db, *ROOT_ARGS)
    assert "replayed 1" in ok_run("dead", "replay", "shop", "--all", "--store", db, *ROOT_ARGS)
    assert stats(path, "shop", ROOT).pending == 1


def test_the_worker_decodes_with_the_codec_and_calls_the_hook(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = url(path)
    seen = tmp_path / "seen.txt"
    codec_args = ("--codec", "tests.test_cli_objects:codec")
    ok_run("enqueue", "shop", "ok", '{"n": 1}', "--store", db, *codec_args)

    async def stored_payload() -> bytes:
        async with await SQLiteStore.open(path) as store:
            (job,) = await quickq.JobQueue(store, codec=codec).list_jobs("shop", "pending")
            assert job.payload == {"n": 1}
            (raw,) = await quickq.JobQueue(store, codec=_Raw()).list_jobs("shop", "pending")
            return raw.payload  # type: ignore[no-any-return]

    assert anyio.run(stored_payload) == codec.encode({"n": 1})  # encoded with the codec
    hook = ("--on-event", "tests.test_cli_objects:record")
    os.environ["QUICKQ_TEST_SEEN"] = str(seen)  # the worker inherits it through _env()
    try:
        with worker(db, *codec_args, *hook):
            wait_for(lambda: "completed shop ok" in (seen.read_text() if seen.exists() else ""))
    finally:
        del os.environ["QUICKQ_TEST_SEEN"]
    assert seen.read_text().splitlines()[:2] == ["started shop ok", "completed shop ok"]


class _Raw:
    def encode(self, payload: Any) -> bytes:
        return bytes(payload)

    def decode(self, data: bytes) -> Any:
        return data


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--codec", "tests.test_cli_objects:not_a_codec"), "is an int, not a codec"),
        (("--on-event", "tests.test_cli_objects:not_a_codec"), "is an int, not a function"),
        (("--codec", "tests.test_cli_objects:missing"), "has no attribute 'missing'"),
    ],
)
def test_objects_that_are_not_what_they_should_be(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    result = quickq_cli("worker", "tests.test_cli:jobs", "--store", url(tmp_path / "q.db"), *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
