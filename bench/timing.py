"""How long a run should take, and how long it took: the estimate and the run budget.

The estimate is a model, not a measurement: seconds per adapter process for
each scenario, from the profile's sizes and time boxes, with start-up
allowances calibrated on this machine kind (2 cores). Its constants were set
from the log of the full run of 2026-11-29 (86 minutes at 8 s time boxes, on a
machine loaded 4-6x over, so its fixed-work phases ran several times slower
than they would alone) and from single-repetition full-size runs on an idle
machine of the same kind. It errs high. The harness prints it per scenario
before the run and beside the actual time at the end, so a drift shows.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

from .scenarios import reps
from .systems import IN_MEMORY, SYSTEMS

# Scenarios run once, without a warm-up (the minimum of one warm-up and
# five repetitions applies to the others).
SINGLE_RUN = ("crash", "longjobs", "scale", "sqlite_limit", "workers")

# Seconds an adapter process costs beyond its scenario's work: interpreter,
# imports, the harness's server reset. Peers whose worker is a pool of
# processes (RQ, Celery) also wait for the pool to start.
PROCESS_S = 0.5
POOL_START_S = 1.5
POOLS = ("rq", "celery-redis")

# Scenario 5 (crash) is bounded by each system's recovery, not by a time box:
# seconds seen per system (2026-11-29 log, loaded machine), default 25 s.
# Huey, RQ and Celery lose jobs and wait out the no-progress stop (2 leases + 20 s).
CRASH_S = {"saq": 95.0, "rq": 100.0, "huey-sqlite": 50.0, "celery-redis": 52.0, "arq": 37.0}
# Jobs per second a system gets through (enqueue, then run), low on purpose:
# below its size a scenario ends before its time box (the quick and smoke
# profiles). Peers that drain at tens of jobs/s fill every box.
JOBS_PER_S = {"durable": 800.0, "in-memory": 2_500.0}
SLOW_DRAIN = ("rq", "procrastinate-pg", "arq")

# Scenario 4 at 500 jobs/s: peers that fall behind wait out the grace period.
LAGGARDS_500 = {"rq": 5.0, "arq": 2.0}
# Scenario 6: peers whose timeout stops a long job run it again and again
# until the run's deadline (jobs of 3 s: 2 x 3 + 5 s, then 5 s for re-runs).
LONGJOB_RETRIERS = ("arq", "saq", "rq")
# Scenario 9: the variants that seed up to ``scale_max`` future jobs (a
# million in the full profile, one per store); the others stop at ``scale_max_rest``.
SCALE_TOP = ("quickq-memory-trio", "quickq-sqlite-trio")
# Scenario 11 (CLI worker processes): seconds per round and process count to
# queue the jobs (enqueue_many in batches of 125 per queue) and to start the
# workers; jobs/s drained (2026-12-02: 1,300-1,700/s for 1 to 4 processes).
WORKERS_FILL_PER_S = 8_000.0
WORKERS_START_S = 1.0
WORKERS_JOBS_PER_S = 1_300.0
# Scenario 4c: the consumer process's start (interpreter, imports, store).
CROSS_START_S = 1.0


SHARED = frozenset({"enqueue", "drain", "sleep", "latency", "fairness"})
SPREADS = {
    "async_scenarios": SHARED,
    "sync_scenarios": SHARED,
    "leased_scenarios": frozenset({"crash", "longjobs"}),
}
"""What the scenario tables of adapters/_common/tables.py provide, by function name."""


@functools.cache
def implemented(adapter: str) -> frozenset[str] | None:
    """Scenario ids an adapter script hands to ``c.main`` other than as
    ``c.not_applicable(...)`` (read, not imported: adapters import their peer,
    which the harness's Python does not have)."""
    path = Path(__file__).resolve().parent / "adapters" / adapter
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "main"
            and node.args
            and isinstance(node.args[0], ast.Dict)
        ):
            continue
        out: set[str] = set()
        for key, value in zip(node.args[0].keys, node.args[0].values, strict=True):
            called = value.func if isinstance(value, ast.Call) else None
            name = called.attr if isinstance(called, ast.Attribute) else ""
            if key is None and name in SPREADS:
                out |= SPREADS[name]
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                if name == "not_applicable":
                    out.discard(key.value)
                else:
                    out.add(key.value)
        return frozenset(out)
    return None


def applies(scn: str, name: str) -> bool:
    """Whether (scenario, system) will measure something rather than answer n/a."""
    s = SYSTEMS[name]
    base = {"latency50": "latency", "latency500": "latency", "latency500x": "latency_x"}.get(
        scn, scn
    )
    impl = implemented(s.adapter)
    if impl is not None and base not in impl:
        return False
    if scn == "crash" and s.durability == IN_MEMORY:
        return False
    if scn == "longjobs" and s.durability == IN_MEMORY and s.package != "quickq":
        return False  # in-memory peers: one process, nothing to redeliver
    if scn == "fairness" and name == "taskiq-memory":
        return False
    if scn in ("sqlite_limit", "latency500x", "workers") and s.variant != "sqlite":
        return False
    if scn == "workers" and s.extra.get("backend") != "trio":
        return False  # the CLI runs on trio: measured once
    if s.extra.get("otel") and scn != "drain":
        return False  # the SDK's cost per job (quickq_otel.py)
    return not (name == "taskiq-memory" and scn in ("enqueue", "sleep"))


def run_s(scn: str, name: str, prof: dict[str, Any], warmup: bool = False) -> float:
    """Estimated wall seconds of one adapter process (one repetition).

    Calibrated on single-repetition full-size runs on an idle 2-core machine
    (2026-11-29, 4 s boxes): drain 7-12 s a run for the durable peers, sleep
    4-7 s, latency 3.6-5.7 s (RQ at 500/s 15 s), fairness 5-12 s.
    """
    if not applies(scn, name):
        return 0.5
    b = float(prof["budget_s"]) / (5 if warmup else 1)
    durable = SYSTEMS[name].durability != IN_MEMORY
    start = PROCESS_S + (POOL_START_S if name in POOLS else 0.0)
    scale_down = 10 if warmup else 1
    rate = 50.0 if name in SLOW_DRAIN else JOBS_PER_S[SYSTEMS[name].durability]
    match scn:
        case "enqueue":  # one-at-a-time and batched phases, b/2 each at most
            n = prof["enqueue_n"] / scale_down
            work = min(b if durable else 0.75 * b, 2 * n / JOBS_PER_S["durable"])
        case "drain":  # fill (at most b), then at most b from the first completion
            n = prof["drain_n"] / scale_down
            work = min(2.0 * b if durable else b, n / JOBS_PER_S["durable"] + n / rate)
        case "sleep":  # 50 ms jobs at concurrency 32 (ideal 3.1 s for 2,000)
            ideal = prof["sleep_n"] / scale_down * 0.05 / 32
            work = min(2.0 * b + 1.0, 1.2 * ideal + 0.5) if durable else 1.1 * ideal + 0.3
        case "latency50" | "latency500":
            dur = float(prof["latency_s"]) / (5 if warmup else 1)
            lag = LAGGARDS_500.get(name, 0.0) if scn == "latency500" else 0.0
            work = 0.5 + dur + lag  # 0.5: the idle worker before the first send
        case "latency500x":
            work = CROSS_START_S + 0.5 + float(prof["latency_s"]) / (5 if warmup else 1)
        case "crash":
            work = CRASH_S.get(name, 25.0) * prof["crash_n"] / 2000
        case "longjobs":
            work = 16.0 if name in LONGJOB_RETRIERS else 9.0
        case "fairness":  # A's backlog (fill at most 2.5 b), then a window of b
            n = prof["fair_a"] / scale_down
            work = min(2.2 * b if durable else b, n / JOBS_PER_S["durable"] + n / rate)
        case "priority":
            work = float(prof["prio_s"]) / (5 if warmup else 1) + 1.5
        case "scale":
            work = scale_s(name, prof)
        case "sqlite_limit":
            work = prof["sqlite_n"] / 5000 * 12.0
        case "workers":
            n, procs = prof["workers_n"], (1, 2, 4)
            one = n / WORKERS_FILL_PER_S + WORKERS_START_S + n / WORKERS_JOBS_PER_S
            work = one * len(procs) * int(prof["workers_rounds"])
        case _:
            work = b
    return float(start + work)


def scale_s(name: str, prof: dict[str, Any]) -> float:
    """Scenario 9: seeding future jobs and idle queues, then a probe drain per size.

    Measured on an idle machine (2026-11-29): enqueue_many in batches of 5,000
    seeds about 13,000 future jobs/s on either store (a million: 75 s on the
    memory store, 71 s and 400 MB on SQLite) and about 8,000 idle queues/s; a
    500-job probe takes 0.3-0.6 s.
    """
    top = int(prof["scale_max"] if name in SCALE_TOP else prof["scale_max_rest"])
    idle_top = int(prof["scale_max_idle"])
    future = [x for x in (1_000, 10_000, 100_000, 1_000_000) if x <= top]
    idle = [x for x in (10, 100, 1_000, 10_000, 100_000, 1_000_000) if x <= idle_top]
    seed = (future[-1] if future else 0) / 13_000 + (idle[-1] if idle else 0) / 8_000
    return seed + 0.5 * (len(future) + len(idle))


def phase_s(scn: str, name: str, prof: dict[str, Any]) -> float:
    """Estimated wall seconds of one (scenario, system) phase: warm-up plus repetitions."""
    if scn in SINGLE_RUN:
        return run_s(scn, name, prof) * int(prof["crash_reps"])
    if not applies(scn, name):
        return 0.5  # the first process answers n/a and the phase ends
    warm = run_s(scn, name, prof, warmup=True) * int(prof["warmup"])
    return warm + run_s(scn, name, prof) * reps(scn, prof)


def mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def table(
    scns: list[str],
    names: list[str],
    prof: dict[str, Any],
    actual: dict[tuple[str, str], float] | None = None,
) -> list[str]:
    """Lines of a per-scenario table: estimated (and actual) time, minutes:seconds."""
    lines = [f"{'scenario':14} {'estimate':>9} {'actual' if actual is not None else '':>9}"]
    tot_e = tot_a = 0.0
    for scn in scns:
        est = sum(phase_s(scn, n, prof) for n in names)
        tot_e += est
        act = ""
        if actual is not None:
            a = sum(v for (s, _), v in actual.items() if s == scn)
            tot_a += a
            act = mmss(a)
        lines.append(f"{scn:14} {mmss(est):>9} {act:>9}")
    act_tot = mmss(tot_a) if actual is not None else ""
    lines.append(f"{'total':14} {mmss(tot_e):>9} {act_tot:>9}")
    if actual is not None:
        lines.append(f"{'per system':24} {'estimate':>9} {'actual':>9}")
        for n in names:
            a = sum(v for (_, sn), v in actual.items() if sn == n)
            e = sum(phase_s(s, n, prof) for s in scns)
            lines.append(f"{n:24} {mmss(e):>9} {mmss(a):>9}")
    return lines
