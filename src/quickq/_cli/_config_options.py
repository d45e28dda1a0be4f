"""``quickq worker``'s consumer options, made from :class:`quickq.ConsumerConfig`.

Every field typed ``int`` or ``float`` becomes a ``--kebab-case`` option with
the field's one-line ``metadata["help"]`` and its default, so the command line
offers exactly the configuration's numbers and cannot drift from it. Fields
that hold Python objects (a clock, a codec, an event hook, the telemetry
providers) have no command-line form and are skipped by their type; the
telemetry has one switch, ``--no-telemetry``.

Values are checked by the field's own validator, so the bounds (a count from
1, a lease above 0 s and at most a day) are the configuration's, stated once.
A float field counts seconds unless its name says it is a fraction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
import click

import quickq

from ._params import Number

F = TypeVar("F", bound=Callable[..., Any])

_NUMBER_TYPES: Final = {int: int, float: float, "int": int, "float": float}


def config_fields() -> list[attrs.Attribute[Any]]:
    """The fields of ``quickq.ConsumerConfig`` the command line sets: its ints
    and floats, in the record's order."""
    return [
        f
        for f in attrs.fields(quickq.ConsumerConfig)
        # A str under ``from __future__ import annotations``, else the type itself.
        if _NUMBER_TYPES.get(f.type) is not None
    ]


def flag(field: attrs.Attribute[Any]) -> str:
    """``lease_duration`` -> ``--lease-duration``."""
    return "--" + field.name.replace("_", "-")


class _FieldValue(click.ParamType):  # type: ignore[type-arg]
    """A number parsed by *parse*, then judged by the field's validator."""

    def __init__(self, field: attrs.Attribute[Any], parse: click.ParamType[Any, Any]) -> None:
        self.field = field
        self.parse = parse
        self.name = parse.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = self.parse.convert(value, param, ctx)
        if self.field.validator is not None:
            try:
                self.field.validator(None, self.field, number)
            except (quickq.InvalidArgumentError, TypeError, ValueError) as exc:
                # The option is named by click already: "must be ..." reads on.
                self.fail(str(exc).replace(f"{self.field.name} must be", "must be"), param, ctx)
        return number


def _option(field: attrs.Attribute[Any]) -> Callable[[F], F]:
    kind = _NUMBER_TYPES[field.type]
    if kind is int:
        parse: click.ParamType[Any, Any] = click.INT
        metavar = "N"
    elif "fraction" in field.name:
        parse, metavar = Number(), "FRACTION"
    else:
        parse, metavar = Number("seconds"), "SECONDS"
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = None if default.takes_self else default.factory()
    required = default is attrs.NOTHING
    return click.option(
        flag(field),
        field.name,
        type=_FieldValue(field, parse),
        default=None if required else default,
        required=required,
        show_default=not required,
        metavar=metavar,
        help=field.metadata.get("help", ""),
    )


_TELEMETRY: Final = click.option(
    "--telemetry/--no-telemetry",
    "telemetry",
    default=True,
    show_default=True,
    help="Send OpenTelemetry spans and metrics to the globally configured providers.",
)


def config_options(command: F) -> F:
    """Add one option per field of :func:`config_fields` to *command*, and
    ``--telemetry/--no-telemetry`` for its ``telemetry`` field."""
    if "telemetry" in attrs.fields_dict(quickq.ConsumerConfig):
        command = _TELEMETRY(command)
    for field in reversed(config_fields()):  # click lists the last-applied option first
        command = _option(field)(command)
    return command


def config_from(values: Mapping[str, Any]) -> quickq.ConsumerConfig:
    """The configuration the options set; the other fields keep their defaults."""
    names = {f.name for f in config_fields()}
    config = quickq.ConsumerConfig(
        **{k: v for k, v in values.items() if k in names and v is not None}
    )
    if values.get("telemetry") is False:
        config = attrs.evolve(config, telemetry=None)
    return config
