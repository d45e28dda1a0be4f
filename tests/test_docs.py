"""The documentation's examples run: every ```python block of README.md and docs/.

Blocks of one file run in order in one namespace, as a reader would type them.
A block preceded by ``<!-- not-run: reason -->`` is skipped (for example one
that needs a FoundationDB cluster).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
_BLOCK = re.compile(r"(<!-- not-run:[^>]*-->\s*)?```python\n(.*?)```", re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    return [code for skip, code in _BLOCK.findall(path.read_text()) if not skip]


@pytest.mark.parametrize(
    "path",
    [p for p in DOCS if python_blocks(p)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_examples_run(path: Path, tmp_path: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(tmp_path)  # examples that write files write them here
    try:
        for number, code in enumerate(python_blocks(path), 1):
            compiled = compile(code, f"{path.name} block {number}", "exec")
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compiled, namespace)
    finally:
        os.chdir(cwd)
