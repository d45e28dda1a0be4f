"""``MODULE:ATTR``: finding the user's objects (the :class:`quickq.JobRegistry`,
a codec, an event hook), with a hint for the forms people type by mistake (a
file path, a missing attribute)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, cast

import click

import quickq

from ._errors import CLIError, describe


def load_registry(spec: str, *, param_hint: str = "'MODULE:ATTR'") -> quickq.JobRegistry:
    """Import ``MODULE:ATTR`` (ATTR may be dotted) and return it if it is a JobRegistry."""
    obj = load_object(spec, param_hint=param_hint)
    if not isinstance(obj, quickq.JobRegistry):
        raise CLIError(f"{spec} is {_a(obj)}, not a quickq.JobRegistry")
    return obj


def load_object(spec: str, *, param_hint: str) -> Any:
    """Import ``MODULE:ATTR`` (ATTR may be dotted) and return that attribute."""
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
        raise CLIError(f"importing module {module_name!r} failed: {describe(exc)}") from None
    except (Exception, SystemExit) as exc:
        raise CLIError(f"importing module {module_name!r} failed: {describe(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


codec_option = click.option(
    "--codec",
    "codec_spec",
    metavar="MODULE:ATTR",
    help="The application's payload codec, as its codec= (default: JSON).",
)


def load_codec(spec: str | None) -> quickq.Codec | None:
    """The codec ``--codec`` names (``None``: the default JSON codec)."""
    if spec is None:
        return None
    codec = load_object(spec, param_hint="'--codec'")
    if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
        raise CLIError(f"{spec} is {_a(codec)}, not a codec (it needs encode() and decode())")
    return cast(quickq.Codec, codec)


def load_hook(spec: str | None) -> Callable[[quickq.JobEvent], object] | None:
    """The event hook ``--on-event`` names (``None``: none)."""
    if spec is None:
        return None
    hook = load_object(spec, param_hint="'--on-event'")
    if not callable(hook):
        raise CLIError(f"{spec} is {_a(hook)}, not a function of a quickq.JobEvent")
    return cast(Callable[[quickq.JobEvent], object], hook)


def _a(obj: object) -> str:
    kind = type(obj).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"
