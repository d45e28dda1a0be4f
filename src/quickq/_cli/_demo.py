"""``quickq demo``: the seed's coffee shop, made real.

Three shops (tenants) place orders of different priorities; close-of-day
reports are scheduled a few seconds ahead; one latte fails twice and then
succeeds (retries with backoff); a bean roast runs three times longer than its
2-second lease (the lease is extended, and it runs once); a unicorn frappe
fails every attempt and ends in the dead letters. Two ``quickq worker``
processes share one SQLite file (with ``--store memory:``, two consumers in
this process). The handlers (``_demo_jobs``) record every attempt in
the store itself, and every completion inside the completion's own
transaction; the summary is read back from those records and the queue's
dead letters.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import anyio
import attrs
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quickq import Consumer, DeadLetter, Job, JobQueue, NewJob, serve_consumer
from quickq.stores import Store, Transaction, open_store, parse_store_url

from . import _demo_jobs as coffee
from ._errors import CLIError, run

WORKERS: Final = 2
LEASE: Final = 2.0
DEADLINE: Final = 45.0
"""Seconds the jobs may take before the demo gives up (it needs about ten)."""
_WORKER_OPTIONS: Final = {"concurrency": 4, "batch_size": 2, "lease_duration": LEASE}

# shop -> [(topic, count, extra payload, delay)]
_MENU: Final[dict[str, list[tuple[str, int, dict[str, Any], float | None]]]] = {
    "north-beach": [
        ("order:espresso", 14, {}, None),
        ("order:latte", 7, {}, None),
        ("order:latte", 1, {"flaky": True, "table": 7}, None),
        ("order:pastry", 8, {}, None),
        ("roast:beans", 1, {"beans": "ethiopia"}, None),
        ("report:close-of-day", 1, {}, 4.0),
    ],
    "mission": [
        ("order:espresso", 10, {}, None),
        ("order:latte", 6, {}, None),
        ("order:pastry", 6, {}, None),
        ("order:unicorn-frappe", 1, {}, None),
        ("report:close-of-day", 1, {}, 5.0),
    ],
    "soma": [
        ("order:espresso", 6, {}, None),
        ("order:latte", 4, {}, None),
        ("order:pastry", 10, {}, None),
        ("report:close-of-day", 1, {}, 3.0),
    ],
}


@attrs.frozen
class _Ordered:
    job: Job
    due: float


def run_demo(store_url: str | None) -> int:
    """Run the demo on *store_url* (default: a temporary SQLite file); the exit status."""
    with tempfile.TemporaryDirectory(prefix="quickq-demo-") as tmp:
        url = store_url or f"sqlite:///{quote(os.path.join(tmp, 'coffee.db'))}"
        return run(lambda: _demo(url, Path(tmp)))


async def _demo(url: str, tmp: Path) -> int:
    out = Console(highlight=False)
    in_process = parse_store_url(url).scheme == "memory"
    store = await open_store(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        run = secrets.token_hex(4)
        queue = JobQueue(store, coffee.jobs)
        where = "two consumers in this process" if in_process else "two worker processes"
        out.print(f"[bold]quickq demo[/]: the coffee shop on {url}, served by {where}")
        async with anyio.create_task_group() as tg:
            consumers: list[Consumer] = []
            if in_process:
                coffee.use_store(store)
                for _ in range(WORKERS):
                    consumers.append(
                        await tg.start(lambda task_status: _consume(store, task_status))
                    )
            else:
                for n in range(WORKERS):
                    procs.append(_spawn(url, tmp, n))
                await _wait_ready(procs, tmp)
            orders = await _place_orders(queue, run)
            ok = await _follow(out, queue, store, run, orders, procs)
            for consumer in consumers:
                consumer.stop()
        await _stop(procs)
        records = await _records(store, run, "attempt")
        done = {r["job"]: r for r in await _records(store, run, "done")}
        dead = {
            d.job.job_id: d
            for shop in _MENU
            for d in await queue.dead_letters(shop, limit=100_000)  # earlier runs' too
        }
        return _summarize(out, orders, records, done, dead, procs) if ok else 1
    finally:
        coffee.use_store(None)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with anyio.CancelScope(shield=True):
            await store.aclose()


async def _consume(store: Store, task_status: Any) -> None:
    o = _WORKER_OPTIONS
    await serve_consumer(
        store,
        coffee.jobs,
        concurrency=int(o["concurrency"]),
        batch_size=int(o["batch_size"]),
        lease_duration=o["lease_duration"],
        task_status=task_status,
    )


def _spawn(url: str, tmp: Path, n: int) -> subprocess.Popen[bytes]:
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in _WORKER_OPTIONS.items()]
    with open(tmp / f"worker-{n}.log", "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quickq",
                "worker",
                f"{coffee.__name__}:jobs",
                "--store",
                url,
                *opts,
                "--grace-period=5",
            ],
            env={**os.environ, coffee.STORE_ENV: url},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _log_tail(tmp: Path, n: int) -> str:
    try:
        lines = (tmp / f"worker-{n}.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no output)"


async def _wait_ready(procs: list[subprocess.Popen[bytes]], tmp: Path) -> None:
    deadline = time.monotonic() + 30
    for n, proc in enumerate(procs):
        while "serving" not in (tmp / f"worker-{n}.log").read_text(errors="replace"):
            if proc.poll() is not None:
                raise _DemoFailed(f"demo worker {n} exited early: {_log_tail(tmp, n)}")
            if time.monotonic() > deadline:
                raise _DemoFailed(f"demo worker {n} did not start in 30s: {_log_tail(tmp, n)}")
            await anyio.sleep(0.05)


class _DemoFailed(CLIError):
    """The demo could not run (a worker died at start): one line, exit status 1."""


async def _place_orders(queue: JobQueue, run: str) -> list[_Ordered]:
    orders: list[_Ordered] = []
    for shop, lines in _MENU.items():
        batch = [
            NewJob(shop, topic, {"run": run, "n": i, **extra}, delay=delay)
            for topic, count, extra, delay in lines
            for i in range(count)
        ]
        # One transaction per shop: its orders arrive together or not at all.
        for job in await queue.enqueue_many(batch):
            orders.append(_Ordered(job, job.run_at.timestamp()))
    return orders


async def _follow(
    out: Console,
    queue: JobQueue,
    store: Store,
    run: str,
    orders: list[_Ordered],
    procs: list[subprocess.Popen[bytes]],
) -> bool:
    """Show progress until no job of the demo's shops is left; False on timeout."""
    columns = (
        TextColumn("[bold]brewing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    deadline = time.monotonic() + DEADLINE
    with Progress(*columns, console=out, transient=False) as progress:
        task = progress.add_task("jobs", total=len(orders), note="")
        while True:
            left = 0
            dead = 0
            for shop in _MENU:
                s = await queue.stats(shop)
                left += s.pending + s.scheduled + s.running
                dead += s.dead
            records = await _records(store, run, "attempt")
            note = f"{len(records)} attempts, {dead} dead"
            progress.update(task, completed=max(0, len(orders) - left), note=note)
            if left == 0:
                return True
            crashed = [p.pid for p in procs if p.poll() is not None]
            if crashed or time.monotonic() > deadline:
                why = f"worker {crashed} exited" if crashed else f"not done after {DEADLINE:g}s"
                out.print(f"[red]demo failed: {why}; {left} jobs left[/]")
                return False
            await anyio.sleep(0.2)


async def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    with anyio.move_on_after(10):
        while any(p.poll() is None for p in procs):  # noqa: ASYNC110 (polls processes)
            await anyio.sleep(0.05)


async def _records(store: Store, run: str, kind: str) -> list[dict[str, Any]]:
    begin, end = coffee.record_range(run, kind)

    async def read(tr: Transaction) -> list[dict[str, Any]]:
        return [coffee.parse_record(v) for _, v in await tr.get_range(begin, end, snapshot=True)]

    return await store.transact(read)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def _summarize(
    out: Console,
    orders: list[_Ordered],
    records: list[dict[str, Any]],
    completed: dict[str, dict[str, Any]],
    dead: dict[str, DeadLetter],
    procs: list[subprocess.Popen[bytes]],
) -> int:
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_job[r["job"]].append(r)
    table = Table(
        title="orders by shop",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        caption="wait: due to first start; latency: due to done (medians, and the slowest)",
        caption_justify="left",
    )
    for name in ("shop", "orders", "done", "retried", "dead", "attempts", "dup", "wait"):
        table.add_column(name, justify="left" if name == "shop" else "right")
    table.add_column("latency", justify="right")
    table.add_column("max", justify="right")
    lost: list[str] = []
    waits: dict[str, list[float]] = defaultdict(list)
    for shop in _MENU:
        mine = [o for o in orders if o.job.queue_id == shop]
        done = retried = died = attempts = dups = 0
        latency: list[float] = []
        wait: list[float] = []
        for o in mine:
            runs = sorted(by_job.get(o.job.job_id, []), key=lambda r: r["start"])
            oks = [r for r in runs if r["ok"]]
            attempts += len(runs)
            retried += any(r["attempt"] > 1 for r in runs)
            dups += max(0, len(oks) - 1)
            if runs:
                wait.append(runs[0]["start"] - o.due)
                waits[o.job.topic].append(runs[0]["start"] - o.due)
            record = completed.get(o.job.job_id)
            if record is not None:
                done += 1
                latency.append(record["end"] - o.due)
            elif o.job.job_id in dead:
                died += 1
            else:
                lost.append(o.job.job_id)
        table.add_row(
            shop, str(len(mine)), str(done), str(retried), str(died), str(attempts), str(dups),
            _ms(_pct(wait, 0.5)), _ms(_pct(latency, 0.5)), _ms(max(latency, default=None)),
        )  # fmt: skip
    out.print()
    out.print(table)
    for line in _story(orders, by_job, completed, dead, waits, procs):
        out.print(f"  - {line}")
    if lost:
        out.print(f"[red]LOST: {len(lost)} jobs neither completed nor dead-lettered[/]")
        return 1
    out.print("[green]every order was served or dead-lettered; none lost[/]")
    return 0


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _story(
    orders: list[_Ordered],
    by_job: dict[str, list[dict[str, Any]]],
    completed: dict[str, dict[str, Any]],
    dead: dict[str, DeadLetter],
    waits: dict[str, list[float]],
    procs: list[subprocess.Popen[bytes]],
) -> list[str]:
    lines = []
    for o in orders:
        runs = sorted(by_job.get(o.job.job_id, []), key=lambda r: r["start"])
        payload = o.job.payload
        if payload.get("flaky"):
            steps = ", ".join(
                f"#{r['attempt']} {'ok' if r['ok'] else 'failed'} at +{r['start'] - o.due:.1f}s"
                for r in runs
            )
            lines.append(f"flaky latte (table {payload['table']}, {o.job.queue_id}): {steps}")
        elif o.job.topic == "roast:beans":
            took = runs[0]["end"] - runs[0]["start"] if runs else 0.0
            lines.append(
                f"bean roast: ran {_times(len(runs))}, {took:.1f}s, under a {LEASE:g}s "
                f"lease renewed every {LEASE / 3:.2f}s (about {int(took // (LEASE / 3))} renewals)"
            )
        elif o.job.topic == "order:unicorn-frappe":
            d = dead.get(o.job.job_id)
            error = (d.error or "").strip().splitlines()[-1:] if d else []
            lines.append(
                f"unicorn frappe ({o.job.queue_id}): {len(runs)} attempts, then "
                + (f"dead letter ({d.reason}): {error[0] if error else ''}" if d else "NOT dead")
            )
        elif o.job.topic == "report:close-of-day" and runs:
            delay = o.due - o.job.enqueued_at.timestamp()
            lines.append(
                f"close-of-day report ({o.job.queue_id}): scheduled +{delay:.1f}s, started "
                f"{runs[0]['start'] - o.due:+.2f}s from its time"
            )
    p50 = {t: _pct(w, 0.5) for t, w in waits.items()}
    lines.append(
        "priority: median wait espresso (priority 10) "
        f"{_ms(p50.get('order:espresso'))}, latte (50) {_ms(p50.get('order:latte'))}, "
        f"pastry (100) {_ms(p50.get('order:pastry'))}"
    )
    per_pid = Counter(r["pid"] for runs in by_job.values() for r in runs)
    dups = sum(max(0, sum(r["ok"] for r in runs) - 1) for runs in by_job.values())
    shares = ", ".join(f"pid {pid} ran {n} attempts" for pid, n in sorted(per_pid.items()))
    who = f"{len(procs)} worker processes" if procs else f"{WORKERS} in-process consumers"
    lines.append(
        f"{who}: {shares}; jobs whose work ran twice: {dups}; completion records, written "
        f"in each completion's own transaction: {len(completed)} (exactly one per done job)"
    )
    return lines
