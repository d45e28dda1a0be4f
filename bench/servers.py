"""Redis and PostgreSQL from Debian's packages, on loopback only, owned by the harness."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Protocol

REDIS_PORT = 6391
PG_PORT = 5441


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"need {packages} from apt-get; run as root or install them first")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def proc_cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    parent: dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.split("/")[2])] = int(fields[1])
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, pp in parent.items() if pp in frontier]
        out += frontier
    return out


class Server(Protocol):
    """A server the harness installs, starts, resets between runs and stops."""

    name: str
    url: str

    def install(self) -> None: ...
    def version(self) -> str: ...
    def start(self) -> None: ...
    def reset(self) -> None: ...
    def pids(self) -> list[int]: ...
    def stop(self) -> None: ...


def make(kind: str, work: Path) -> Server:
    """The server of *kind* ("redis" or "postgres"), its data under *work*."""
    return Redis(work) if kind == "redis" else Postgres(work)


class Redis:
    name = "redis"

    def __init__(self, work: Path) -> None:
        self.dir = work / "redis"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{REDIS_PORT}/0"

    def install(self) -> None:
        if not shutil.which("redis-server"):
            apt_install("redis-server")

    def version(self) -> str:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        return out.stdout.split()[2].removeprefix("v=") if out.stdout else "?"

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(REDIS_PORT),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if self.cli("ping") == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(REDIS_PORT), *args], capture_output=True, text=True
        )
        return out.stdout.strip()

    def reset(self) -> None:
        self.cli("flushall")

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Postgres:
    name = "postgres"

    def __init__(self, work: Path) -> None:
        self.dir = work / "pg"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql://postgres@127.0.0.1:{PG_PORT}/bench"

    def bindir(self) -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            raise RuntimeError("postgresql not installed")
        return Path(found[-1]).parent

    def install(self) -> None:
        if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
            apt_install("postgresql")

    def version(self) -> str:
        out = subprocess.run(
            [str(self.bindir() / "postgres"), "--version"], capture_output=True, text=True
        )
        return out.stdout.split()[2] if out.stdout else "?"

    def _as_pg(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            self._as_pg(
                str(self.bindir() / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            self._as_pg(
                str(self.bindir() / "postgres"),
                "-D",
                str(data),
                "-p",
                str(PG_PORT),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                str(self.dir),
                "-c",
                "max_connections=200",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if self.psql("select 1", db="postgres").strip() == "1":
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("postgres did not start")
        self.reset()

    def psql(self, sql: str, db: str = "bench") -> str:
        out = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(PG_PORT),
                "-U",
                "postgres",
                "-d",
                db,
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        return out.stdout

    def reset(self) -> None:
        self.psql("drop database if exists bench with (force)", db="postgres")
        self.psql("create database bench", db="postgres")

    def pids(self) -> list[int]:
        return descendants(self.proc.pid) if self.proc else []

    def stop(self) -> None:
        if self.proc:
            # runuser forwards the signal to postgres: a fast shutdown.
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
