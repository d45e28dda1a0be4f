"""The command line's shape, in process: ``quickq worker``'s options are the
consumer configuration's numeric fields, and the command line is built on the
public API alone (and nothing else in quickq imports it)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click
import pytest
from click.testing import CliRunner

import quickq
import quickq.prometheus
import quickq.stores
from quickq._cli import cli
from quickq._cli._config_options import config_fields, config_options

SRC = Path(quickq.__file__).parent
CLI = SRC / "_cli"


def _numeric_fields(record: type) -> list[str]:
    return [f.name for f in attrs.fields(record) if f.type in (int, float, "int", "float")]


def _flags(command: click.Command) -> list[str]:
    return [opt for p in command.params for opt in p.opts if opt.startswith("--")]


def test_worker_flags_are_the_configs_numeric_fields() -> None:
    worker = cli.commands["worker"]
    fields = _numeric_fields(quickq.ConsumerConfig)
    object_flags = ["--root", "--codec", "--on-event", "--telemetry"]
    # Serving metrics and the store-wide gauges is the command line's job, not the consumer's.
    cli_flags = ("--store", "--verbose", "--metrics-port", "--metrics-host", "--store-gauges")
    config_flags = [f for f in _flags(worker) if f not in (*cli_flags, *object_flags)]
    assert config_flags == ["--" + name.replace("_", "-") for name in fields]
    # Every field has a command-line form, but the clock (for tests).
    named = {*fields, *(f[2:].replace("-", "_") for f in object_flags)}
    assert named == {f.name for f in attrs.fields(quickq.ConsumerConfig)} - {"clock"}
    # The flags of earlier releases keep their names.
    for flag in ("--concurrency", "--batch-size", "--lease-duration", "--grace-period"):
        assert flag in config_flags
    defaults = {p.name: p.default for p in worker.params}
    for f in attrs.fields(quickq.ConsumerConfig):
        if f.name in fields:
            assert defaults[f.name] == f.default, f.name


def test_fields_that_hold_python_objects_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    @attrs.frozen
    class Config:
        clock: Callable[[], float] = attrs.field(default=lambda: 0.0)
        concurrency: int = attrs.field(default=3, metadata={"help": "Jobs at once."})
        root: tuple[Any, ...] = ("quickq",)
        fade_fraction: float = attrs.field(default=0.5, metadata={"help": "A fraction."})
        on_event: object = None

    monkeypatch.setattr(quickq, "ConsumerConfig", Config)
    assert [f.name for f in config_fields()] == ["concurrency", "fade_fraction"]

    @click.command()
    @config_options
    def command(**values: Any) -> None:
        click.echo(repr(sorted(values.items())))

    result = CliRunner().invoke(command, ["--fade-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "[('concurrency', 3), ('fade_fraction', 0.25)]"
    assert "FRACTION" in CliRunner().invoke(command, ["--help"]).output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--selection-fraction", "1.5"], "'--selection-fraction': must be a number in (0, 1]"),
        (["--lease-duration", "100000"], "'--lease-duration': must be a finite number of seconds"),
        (["--lease-duration", "soon"], "'soon' is not a number of seconds"),
        (["--peek-limit", "0"], "'--peek-limit': must be an int from 1"),
        (["--batch-size", "x"], "not a valid integer"),
    ],
)
def test_worker_options_are_checked_by_the_config(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["worker", "tests.test_cli:jobs", "--store", "memory:", *args])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) of every import in *path*."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [a.name for a in node.names]))
    return found


def test_the_cli_uses_only_the_public_api() -> None:
    public = {
        "quickq": set(quickq.__all__),
        "quickq.stores": set(quickq.stores.__all__),
        "quickq.prometheus": set(quickq.prometheus.__all__),
    }
    for path in sorted(CLI.glob("*.py")):
        for level, module, names in _imports(path):
            where = f"{path.name}: from {'.' * level}{module} import {', '.join(names)}"
            assert level in (0, 1), where  # its own modules, or absolute imports
            if level == 0 and module.split(".")[0] == "quickq":
                assert module in public, where
                assert set(names) <= public[module], where
        assert "quickq._" not in path.read_text().replace("quickq._cli", ""), path.name


def test_nothing_else_imports_the_cli() -> None:
    for path in sorted(SRC.rglob("*.py")):
        if CLI in path.parents or path.name == "__main__.py":
            continue
        for _, module, names in _imports(path):
            assert "_cli" not in module.split(".") and "_cli" not in names, path


def test_the_cli_guide_shows_the_configs_defaults() -> None:
    """docs/cli.md's table of worker options gives each numeric field's real default."""
    guide = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    shown: dict[str, str] = {}
    for line in guide.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`--"):
            shown[cells[0].strip("`").split()[0][2:].replace("-", "_")] = cells[1]
    for f in attrs.fields(quickq.ConsumerConfig):
        if f.name in _numeric_fields(quickq.ConsumerConfig):
            assert f.name in shown, f"docs/cli.md has no row for --{f.name}"
            assert float(shown[f.name]) == f.default, f.name
