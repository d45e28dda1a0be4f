"""The ``--store URL`` option: checked before anything slow happens, and the
store opened for the length of one command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio
import click

import quickq
from quickq.stores import Store, open_store, parse_store_url

STORE_ENV: Final = "QUICKQ_STORE"
_HELP: Final = (
    f"Store URL: sqlite:///relative.db, sqlite:////absolute.db or fdb: (env {STORE_ENV})."
)

store_option = click.option(
    "--store", "store_url", envvar=STORE_ENV, required=True, metavar="URL", help=_HELP
)

ROOT_ENV: Final = "QUICKQ_ROOT"
DEFAULT_ROOT: Final = quickq.ConsumerConfig().root

root_option = click.option(
    "--root",
    "root",
    multiple=True,
    envvar=ROOT_ENV,
    metavar="NAME",
    help=(
        "The subspace the queues live in, as the application's root=: repeat for each "
        f"element (default: {', '.join(DEFAULT_ROOT)}; env {ROOT_ENV}, space-separated)."
    ),
)


def root_of(names: tuple[str, ...]) -> tuple[str, ...]:
    """The root tuple ``--root`` gave, or the default one."""
    return names or DEFAULT_ROOT


def check_store_url(url: str, *, param_hint: str | None = None) -> str:
    """The scheme of store URL *url*; a usage error if it is malformed (naming
    *param_hint*, when given, as click's bad-parameter errors do)."""
    try:
        return parse_store_url(url).scheme
    except quickq.InvalidArgumentError as exc:
        if param_hint is not None:
            raise click.BadParameter(str(exc), param_hint=param_hint) from None
        raise click.UsageError(str(exc), ctx=click.get_current_context(silent=True)) from None


@asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[Store]:
    """Open the store at *url* for the length of the block.

    ``memory:`` is refused: a command that runs in its own process could only
    ever see an empty store.
    """
    if check_store_url(url) == "memory":
        raise click.BadParameter(
            "memory: lives inside one process and is empty to every other one; "
            "use a shared store such as sqlite:///jobs.db or fdb:",
            param_hint="'--store'",
        )
    store = await open_store(url)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
