"""Each system's Python and servers, ready before any measurement starts.

Peers run in virtual environments of their own (bench/.work/venvs/NAME, from
the pinned bench/requirements/NAME.txt); quickq runs with the project's
Python, so it measures the working tree.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import servers
from .paths import ADAPTERS, BENCH, ROOT, WORK, Log
from .systems import SYSTEMS


@dataclass
class Environments:
    """What :func:`prepare` made ready, by system name."""

    pythons: dict[str, Path]
    """The systems that will run, and their Python."""
    skipped: dict[str, str]
    """The systems that will not, and why."""
    servers: dict[str, servers.Server]
    """Installed servers by kind, not yet started."""
    versions: dict[str, str]
    """Version of each running system's package."""


def ensure_venv(name: str, log: Log) -> Path:
    """Create bench/.work/venvs/NAME and install bench/requirements/NAME.txt (pinned)."""
    req = BENCH / "requirements" / f"{name}.txt"
    venv = WORK / "venvs" / name
    stamp = venv / ".bench-stamp"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv / "bin" / "python"
    log(f"installing {name} venv from {req.relative_to(ROOT)}")
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(req)],
        check=True,
    )
    stamp.write_text(digest)
    return py


def package_version(py: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def prepare(names: list[str], *, no_install: bool, log: Log) -> Environments:
    """Virtual environments and servers for *names*, installing what is missing
    unless *no_install*; a system that cannot be set up is skipped, with why."""
    pythons: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    needed_servers: set[str] = set()
    for name in names:
        s = SYSTEMS[name]
        if not (ADAPTERS / s.adapter).exists():
            skipped[name] = "adapter not written yet"
            continue
        try:
            if s.venv is None:
                pythons[name] = Path(sys.executable)
            elif no_install:
                py = WORK / "venvs" / s.venv / "bin" / "python"
                if not py.exists():
                    skipped[name] = "venv not installed (--no-install)"
                    continue
                pythons[name] = py
            else:
                pythons[name] = ensure_venv(s.venv, log)
        except subprocess.CalledProcessError as exc:
            skipped[name] = f"install failed: {exc}"
            continue
        needed_servers.update(s.servers)
    srv: dict[str, servers.Server] = {}
    for kind in sorted(needed_servers):
        obj = servers.make(kind, WORK)
        if no_install:
            skipped.update(
                {
                    n: f"{kind} server needs installing"
                    for n in pythons
                    if kind in SYSTEMS[n].servers
                }
            )
            continue
        obj.install()
        srv[kind] = obj
    for n in list(pythons):
        if n in skipped:
            del pythons[n]
    versions = {n: package_version(py, SYSTEMS[n].package) for n, py in pythons.items()}
    for n, why in skipped.items():
        log(f"skip {n}: {why}")
    return Environments(pythons, skipped, srv, versions)
