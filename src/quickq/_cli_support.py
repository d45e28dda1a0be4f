"""The command line's plumbing: loading registries, opening stores, parsing input,
and turning failures into one line on stderr (``quickq._cli`` holds the commands)."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import anyio
import click

from ._exceptions import InvalidArgumentError, QuickqError
from ._jobs import JobRegistry
from ._validate import check_seconds
from .stores import Store, open_store
from .stores._url import parse_store_url

T = TypeVar("T")

DEBUG_ENV = "QUICKQ_DEBUG"
"""Set to 1 to get full tracebacks instead of one-line messages (for bug reports)."""


class CLIError(click.ClickException):
    """A failure reported as one line on stderr with exit status 1."""


class Seconds(click.ParamType):  # type: ignore[type-arg]
    """A finite number of seconds, as the API takes them (NaN and infinities
    are refused here, not deep inside a running worker)."""

    name = "seconds"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            number = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        try:
            return check_seconds(number, "the value", low_open=self.positive)
        except InvalidArgumentError as exc:
            self.fail(str(exc).replace("the value must be", "must be"), param, ctx)


class Terminated(BaseException):
    """SIGTERM arrived before the worker was serving (nothing to drain)."""


def stop_on_sigterm() -> None:
    """Until the worker listens for signals itself, SIGTERM ends it cleanly
    (one line, exit status 143) instead of killing it mid-import."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run *fn* on trio; failures escape as themselves, never as a group."""
    try:
        return anyio.run(fn, backend="trio")
    except BaseExceptionGroup as group:
        raise _first_leaf(group) from None


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception in a (nested) group that is not a cancellation."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(exc)
    real = [e for e in leaves if type(e).__name__ not in ("Cancelled", "CancelledError")]
    return (real or leaves)[0]


def check_store_url(url: str) -> str:
    """The scheme of store URL *url*; a usage error if it is malformed."""
    try:
        return parse_store_url(url).scheme
    except InvalidArgumentError as exc:
        raise click.UsageError(str(exc), ctx=click.get_current_context(silent=True)) from None


@asynccontextmanager
async def opened_store(url: str, *, shared: bool = True) -> Any:
    """Open the store at *url* for the length of the block.

    With *shared*, ``memory:`` is refused: a command that runs in its own
    process could only ever see an empty store.
    """
    scheme = check_store_url(url)
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
    module_name, colon, attr = spec.rpartition(":")
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        stem = os.path.splitext(os.path.basename(module_name))[0] or "app"
        raise click.BadParameter(
            f"{spec!r} names a file; MODULE:ATTR takes a module name: write "
            f"{stem}:{attr or 'jobs'} and run from the file's folder "
            "(or add that folder to PYTHONPATH)",
            param_hint=param_hint,
        )
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
    except Terminated:
        _fail("terminated before serving", 143)
    except InvalidArgumentError as exc:  # bad usage, found by the API's own checks
        if debug:
            raise
        _fail(one_line(str(exc)), 2)
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
