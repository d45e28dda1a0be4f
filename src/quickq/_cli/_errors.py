"""How the command line fails: one line on stderr and an exit status, never a traceback.

The statuses are documented in docs/cli.md: 2 for bad usage (click's own
errors, and :class:`quickq.InvalidArgumentError` from the API's checks), 1 for
everything else, 130 for Ctrl-C and 143 for SIGTERM before a worker serves.
``QUICKQ_DEBUG=1`` lets the traceback through instead, for bug reports.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn, TypeVar

import anyio
import click

import quickq

T = TypeVar("T")

DEBUG_ENV: Final = "QUICKQ_DEBUG"
"""Set to 1 to get full tracebacks instead of one-line messages (for bug reports)."""


class CLIError(click.ClickException):
    """A failure reported as one line on stderr with exit status 1."""


class Terminated(BaseException):
    """SIGTERM arrived before the worker was serving (nothing to drain)."""


def stop_on_sigterm() -> None:
    """Until the worker listens for signals itself, SIGTERM ends it cleanly
    (one line, exit status 143) instead of killing it mid-import."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run *fn* on trio; failures escape as themselves, never as a group, so
    :func:`main_guard` can give each its line and status."""
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


def one_line(text: str) -> str:
    """*text* with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


def describe(exc: BaseException) -> str:
    """``Type: message (at file:line)``: where something went wrong, on one line."""
    text = f"{type(exc).__name__}: {one_line(str(exc))}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, SyntaxError):
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno})"
    return text


def error_line(error: str | None) -> str:
    """The informative line of an error: a traceback's last line, else the text."""
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


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
    except quickq.InvalidArgumentError as exc:  # bad usage, found by the API's own checks
        if debug:
            raise
        _fail(one_line(str(exc)), 2)
    except quickq.QuickqError as exc:
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
        _fail(f"unexpected error: {describe(exc)} (set {DEBUG_ENV}=1 for the traceback)", 1)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"quickq: error: {message}", err=True)
    sys.exit(status)
