"""Argument types: numbers, seconds, JSON payloads and ISO 8601 times, each
refused at the command line with a usage error (status 2) that names the option."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from typing import Any

import click

import quickq


class Number(click.ParamType):  # type: ignore[type-arg]
    """Any float: for options whose bounds are checked by someone else (a
    ``quickq.ConsumerConfig`` field's validator, say). *unit* names what the
    number counts in the message for text that is no number."""

    name = "number"

    def __init__(self, unit: str = "") -> None:
        self.unit = unit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            of = f" of {self.unit}" if self.unit else ""
            self.fail(f"{value!r} is not a number{of}", param, ctx)


class Seconds(Number):
    """A finite number of seconds from 0 (exclusive with *positive*) to ten
    years, as the API takes delays and timeouts: NaN and infinities are
    refused here, not deep inside a running worker."""

    name = "seconds"

    def __init__(self, *, positive: bool = False) -> None:
        super().__init__("seconds")
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        too_low = number <= 0 if self.positive else number < 0
        if not math.isfinite(number) or too_low or number > quickq.MAX_DELAY_SECONDS:
            bound = ">" if self.positive else ">="
            self.fail(
                f"must be a finite number of seconds {bound} 0 and at most ten years "
                f"(got {number!r})",
                param,
                ctx,
            )
        return number


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
