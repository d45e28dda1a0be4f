"""Argument checks shared by every public entry point.

Each check returns the value it accepts or raises :class:`InvalidArgumentError`
(or the subclass the caller names) with a message that names the argument,
shows the value it got (shortened: a 1,000-digit number is not echoed whole)
and says what is allowed. Types are exact: ``True`` is not an int, and an int
is a number of seconds but not a count of them.
"""

from __future__ import annotations

import math
from typing import Any, Final

from ._exceptions import InvalidArgumentError
from ._limits import MAX_DELAY_SECONDS

"""The longest delay quickq schedules (ten years): every durable time fits in
milliseconds with room to spare, and a typo like ``delay=1e300`` is refused."""

_SHOWN_CHARS: Final = 60


def shown(value: object) -> str:
    """``repr(value)``, cut to a readable length."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    if len(text) > _SHOWN_CHARS:
        text = f"{text[: _SHOWN_CHARS - 15]}...{text[-10:]} ({len(text)} chars)"
    return text


def check_int(
    value: object,
    name: str,
    low: int,
    high: int,
    *,
    error: type[InvalidArgumentError] = InvalidArgumentError,
) -> int:
    """*value* if it is an int (not a bool) with ``low <= value <= high``."""
    if type(value) is not int or not low <= value <= high:
        raise error(f"{name} must be an int from {low:,} to {high:,} (got {shown(value)})")
    return value


def check_seconds(
    value: object,
    name: str,
    *,
    low: float = 0.0,
    low_open: bool = False,
    high: float = MAX_DELAY_SECONDS,
    error: type[InvalidArgumentError] = InvalidArgumentError,
) -> float:
    """*value* if it is a finite number of seconds (int or float, not a bool)
    in ``[low, high]`` (``(low, high]`` with *low_open*)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value > high
        or (value <= low if low_open else value < low)
    ):
        bound = ">" if low_open else ">="
        most = "ten years" if high == MAX_DELAY_SECONDS else f"{_number(high)} s"
        raise error(
            f"{name} must be a finite number of seconds {bound} {_number(low)} and at most "
            f"{most} (got {shown(value)})"
        )
    return float(value)


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def check_fraction(value: object, name: str) -> float:
    """*value* if it is a number in ``(0, 1]``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= 1  # also refuses NaN
    ):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1] (got {shown(value)})")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    """*value* if it is a bool (``"no"`` and ``1`` are not)."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a bool (got {shown(value)})")
    return value


def check_callable(value: object, name: str, *, optional: bool = False) -> Any:
    """*value* if it can be called (or is None, with *optional*)."""
    if value is None and optional:
        return None
    if not callable(value):
        raise InvalidArgumentError(f"{name} must be callable (got {shown(value)})")
    return value
