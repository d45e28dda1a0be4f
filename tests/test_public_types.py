"""Every public name of quickq is typed and documented: ``pyright --verifytypes``
scores it 100 % and finds no public function or class without a docstring.

The check runs pyright from the environment running the tests (the dev extra
installs it), from a directory outside the repository, so that pyright sees
the installed package as a user's type checker would, not the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

_BIN = Path(sys.executable).parent
"""The environment's scripts: pyright finds the installed quickq only when its
own environment's bin directory comes first on PATH."""

_SYNTHESIZED = "__converterDescriptor_"
"""pyright models each attrs field with a ``converter=`` as a class of its own
(``JobDefinition.__converterDescriptor_topic``, ...) and counts it as a class
without a docstring. Nothing in the source stands for it, so nothing can
document it: these names alone are let through."""


def _verifytypes(cwd: Path) -> dict[str, Any]:
    path = os.pathsep.join([str(_BIN), os.environ.get("PATH", "")])
    pyright = shutil.which("pyright", path=path)
    if pyright is None:
        pytest.skip("pyright is not installed (the dev extra installs it)")
    done = subprocess.run(
        [pyright, "--verifytypes", "quickq", "--ignoreexternal", "--outputjson"],
        cwd=cwd,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # it exits 1 when it finds anything; the report says what
    )
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no report (exit {done.returncode}):\n{done.stderr}")
    return report


def _synthesized(name: str) -> bool:
    return name.rpartition(".")[2].startswith(_SYNTHESIZED)


def test_every_public_name_is_typed_and_documented(tmp_path: Path) -> None:
    completeness = _verifytypes(tmp_path)["typeCompleteness"]
    problems = [
        f"{symbol['name']}: {diagnostic['message'].splitlines()[0]}"
        for symbol in completeness["symbols"]
        if not _synthesized(symbol["name"])
        for diagnostic in symbol["diagnostics"]
    ]
    synthesized = sum(
        _synthesized(symbol["name"]) and bool(symbol["diagnostics"])
        for symbol in completeness["symbols"]
    )
    listing = "\n".join(problems)
    assert completeness["completenessScore"] == 1.0, f"not fully typed:\n{listing}"
    assert completeness["missingFunctionDocStringCount"] == 0, f"undocumented:\n{listing}"
    assert completeness["missingClassDocStringCount"] == synthesized, f"undocumented:\n{listing}"
    assert not problems, f"pyright --verifytypes reports:\n{listing}"
