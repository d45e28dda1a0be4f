"""Store URLs: name a store in one string (the CLI's ``--store``, a config file).

::

    memory:                                  a new in-memory store (this process only)
    sqlite:///relative/path.db               SQLite, path relative to the working directory
    sqlite:////absolute/path.db              SQLite, absolute path (four slashes)
    sqlite:///jobs.db?durability=normal      ... with options
    fdb:                                     FoundationDB, the default cluster file
    fdb:///etc/foundationdb/fdb.cluster      FoundationDB, this cluster file

SQLite follows SQLAlchemy's convention: ``sqlite://`` has an empty host, and
everything after the third slash is the path, so an absolute path starts with a
fourth slash. FoundationDB names a *file* to read, so it follows the ``file:``
convention instead: ``fdb:///etc/...`` is absolute, and ``fdb:name.cluster``
(no slashes) is relative. Paths may be percent-encoded.

Query options (each at most once; unknown ones are refused):

- sqlite: ``durability`` (``full`` or ``normal``), ``busy_timeout`` and
  ``poll_interval`` (seconds), ``threaded_reads`` (``true`` or ``false``); see
  :meth:`SQLiteStore.open
  <quickq.stores.sqlite.SQLiteStore.open>`.
- fdb: ``prefix`` (percent-encoded raw bytes), ``transaction_timeout``
  (seconds, or ``none``) and ``probe_timeout`` (seconds); see
  :meth:`FoundationDBStore.open <quickq.stores.fdb.FoundationDBStore.open>`.

The FoundationDB bindings are imported only when an ``fdb:`` URL is opened.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal
from urllib.parse import unquote, unquote_to_bytes

import attrs

from .._exceptions import InvalidArgumentError
from ._protocol import Store

__all__ = ["StoreURL", "open_store", "parse_store_url"]

Scheme = Literal["memory", "sqlite", "fdb"]
_SCHEMES: Final = ("memory", "sqlite", "fdb")
_FORMS: Final = (
    "memory:, sqlite:///relative.db, sqlite:////absolute.db, fdb: or fdb:///cluster.file"
)


@attrs.frozen
class StoreURL:
    """A parsed store URL: which store, where, and the options to open it with."""

    scheme: Scheme
    path: str | None
    """The database file (sqlite) or cluster file (fdb; None: the default one)."""
    options: dict[str, Any] = attrs.field(factory=dict)
    """Keyword arguments for the store's ``open``, already converted."""


def _bad(url: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"bad store URL {url!r}: {why}")


def parse_store_url(url: str) -> StoreURL:
    """Parse *url*; raise :class:`~quickq.InvalidArgumentError` naming what is wrong."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"a store URL is a str, not {type(url).__name__}")
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in _SCHEMES:
        shown = f"unknown scheme {scheme!r}" if colon else "no scheme"
        # A bare file name: say the URL it most likely meant (an absolute
        # path gets the fourth slash by itself).
        hint = f"; for a SQLite file write sqlite:///{url}" if not colon and url else ""
        raise _bad(url, f"{shown} (use {_FORMS}){hint}")
    rest, _, query = rest.partition("?")
    raw_options = _split_query(url, query)
    if scheme == "memory":
        if rest not in ("", "//"):
            raise _bad(url, "memory: takes no path")
        return StoreURL("memory", None, _options(url, raw_options, {}))
    if scheme == "sqlite":
        return StoreURL("sqlite", _sqlite_path(url, rest), _options(url, raw_options, _SQLITE))
    return StoreURL("fdb", _fdb_path(url, rest), _options(url, raw_options, _FDB))


def _sqlite_path(url: str, rest: str) -> str:
    hint = "write sqlite:///relative/path.db or sqlite:////absolute/path.db"
    if not rest.startswith("//"):
        raise _bad(url, hint)
    if not rest.startswith("///"):
        raise _bad(url, f"a sqlite URL has no host; {hint}")
    path = unquote(rest[3:])
    if not path or path.endswith("/"):
        raise _bad(url, f"no database file named; {hint}")
    if path == ":memory:":
        raise _bad(url, "an in-memory SQLite database is not shared; use memory:")
    if "\x00" in path:
        raise _bad(url, "the path contains a NUL character")
    return path


def _fdb_path(url: str, rest: str) -> str | None:
    if rest.startswith("//"):
        rest = rest[2:]
        if rest and not rest.startswith("/"):
            raise _bad(url, "an fdb URL has no host; write fdb:///absolute/path/to/fdb.cluster")
    path = unquote(rest)
    if "\x00" in path:
        raise _bad(url, "the path contains a NUL character")
    return path or None


def _split_query(url: str, query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if not query:
        return out
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        name = unquote(name)
        if not name or not eq:
            raise _bad(url, f"query options are name=value pairs, not {part!r}")
        if name in out:
            raise _bad(url, f"option {name!r} is given twice")
        out[name] = value  # still percent-encoded: the converter decodes it
    return out


def _seconds(*, positive: bool, allow_none: bool = False) -> Any:
    def convert(value: str) -> float | None:
        text = unquote(value).strip().lower()
        if allow_none and text == "none":
            return None
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError("a number of seconds") from None
        if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
            raise ValueError("a positive number of seconds" if positive else "seconds >= 0")
        return seconds

    return convert


def _durability(value: str) -> str:
    text = unquote(value).lower()
    if text not in ("full", "normal"):
        raise ValueError("full or normal")
    return text


def _flag(value: str) -> bool:
    text = unquote(value).lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("true or false")
    return text in ("true", "1", "yes")


_SQLITE: Final = {
    "durability": _durability,
    "threaded_reads": _flag,
    "busy_timeout": _seconds(positive=False),
    "poll_interval": _seconds(positive=True),
}
_FDB: Final = {
    "prefix": unquote_to_bytes,
    "transaction_timeout": _seconds(positive=True, allow_none=True),
    "probe_timeout": _seconds(positive=True),
}


def _options(url: str, raw: dict[str, str], known: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in raw.items():
        convert = known.get(name)
        if convert is None:
            allowed = ", ".join(known) or "none"
            raise _bad(url, f"unknown option {name!r} (this store takes: {allowed})")
        try:
            out[name] = convert(value)
        except ValueError as exc:
            raise _bad(url, f"option {name}={unquote(value)!r} must be {exc}") from None
    return out


async def open_store(url: str) -> Store:
    """Open the store that *url* names (see this module's docstring for the forms).

    The caller owns the store and closes it with ``await store.aclose()``.
    Raises :class:`~quickq.InvalidArgumentError` for a malformed URL, and
    :class:`~quickq.StoreUnavailableError` when the store cannot be opened
    (a missing, locked, corrupt or foreign file; no FoundationDB client or
    cluster), each with a one-line reason.
    """
    spec = parse_store_url(url)
    if spec.scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if spec.scheme == "sqlite":
        from .sqlite import SQLiteStore

        assert spec.path is not None
        return await SQLiteStore.open(spec.path, **spec.options)
    from .fdb import FoundationDBStore  # lazily: it loads the native client

    return await FoundationDBStore.open(spec.path, **spec.options)
