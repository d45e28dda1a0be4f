"""The command line's plumbing: loading registries, opening stores, parsing input,
and turning failures into one line on stderr (``quickq._cli`` holds the commands)."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import anyio
import click

from ._exceptions import InvalidJobError, QuickqError
from ._jobs import JobRegistry
from .stores import Store, open_store
from .stores._url import parse_store_url

T = TypeVar("T")

DEBUG_ENV = "QUICKQ_DEBUG"
"""Set to 1 to get full tracebacks instead of one-line messages (for bug reports)."""


class CLIError(click.ClickException):
    """A failure reported as one line on stderr with exit status 1."""


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run *fn* on trio; quickq's failures escape as themselves, not in groups."""
    try:
        return anyio.run(fn, backend="trio")
    except BaseExceptionGroup as group:
        leaf = _first_leaf(group)
        if isinstance(leaf, QuickqError | click.ClickException | OSError):
            raise leaf from None
        raise


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def opened_store(url: str, *, shared: bool = True) -> Any:
    """Open the store at *url* for the length of the block.

    With *shared*, ``memory:`` is refused: a command that runs in its own
    process could only ever see an empty store.
    """
    try:
        scheme = parse_store_url(url).scheme
    except InvalidJobError as exc:
        raise click.UsageError(str(exc), ctx=click.get_current_context(silent=True)) from None
    if shared and scheme == "memory":
        raise click.BadParameter(
            "memory: lives inside one process and is empty to every other one; "
            "use a shared store such as sqlite:///jobs.db or fdb:",
            param_hint="'--store'",
        )
    store: Store = await open_store(url)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


def load_registry(spec: str, *, param_hint: str = "'MODULE:ATTR'") -> JobRegistry:
    """Import ``MODULE:ATTR`` (ATTR may be dotted) and return it if it is a JobRegistry."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise click.BadParameter(
            f"{spec!r} is not MODULE:ATTR (for example myapp.jobs:registry)",
            param_hint=param_hint,
        )
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: the working directory is searched
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise CLIError(
                f"cannot import module {module_name!r}: no module named {exc.name!r} "
                f"(searched the working directory and PYTHONPATH)"
            ) from None
        raise CLIError(f"importing module {module_name!r} failed: {_describe(exc)}") from None
    except (Exception, SystemExit) as exc:
        raise CLIError(f"importing module {module_name!r} failed: {_describe(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, JobRegistry):
        kind = type(obj).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise CLIError(f"{spec} is {article} {kind}, not a quickq.JobRegistry")
    return obj


def _describe(exc: BaseException) -> str:
    """``Type: message (at file:line)``: where an import went wrong, on one line."""
    text = f"{type(exc).__name__}: {one_line(str(exc))}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, SyntaxError):
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno})"
    return text


def one_line(text: str) -> str:
    return " ".join(text.split())


def error_line(error: str | None) -> str:
    """The informative line of an error: a traceback's last line, else the text."""
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def parse_payload(text: str | None) -> Any:
    """The JSON payload argument: None when absent, ``-`` reads standard input."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="'PAYLOAD_JSON'") from None


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO 8601 time with a timezone (``Z`` or ``+hh:mm``)."""
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (like 2030-01-15T10:00:00Z)", param_hint="'--at'"
        ) from None
    if when.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} has no timezone; add Z or an offset such as +02:00", param_hint="'--at'"
        )
    return when


def main_guard(invoke: Callable[[], Any]) -> NoReturn:
    """Run the command line; report failures as one line on stderr and exit."""
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        result = invoke()
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _fail(f"{one_line(exc.format_message())}{hint}", exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted", 130)
    except QuickqError as exc:
        if debug:
            raise
        _fail(one_line(str(exc)) or type(exc).__name__, 1)
    except BrokenPipeError:
        # Output piped into a command that stopped reading (head): not an error.
        sys.stderr.close()
        sys.exit(0)
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or one_line(str(exc))}{where}", 1)
    except Exception as exc:
        if debug:
            raise
        _fail(
            f"unexpected error: {_describe(exc)} (set {DEBUG_ENV}=1 for the traceback)",
            1,
        )
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"quickq: error: {message}", err=True)
    sys.exit(status)


def echo_json(rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> None:
    click.echo(json.dumps(list(rows), indent=2, default=str))
