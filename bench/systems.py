"""The systems under test: adapter, virtual environment, servers and durability class."""

from __future__ import annotations

from dataclasses import dataclass, field

IN_MEMORY = "in-memory"
DURABLE = "durable"


@dataclass(frozen=True)
class System:
    name: str
    adapter: str
    """Script in bench/adapters/."""
    venv: str | None
    """Name of bench/requirements/<venv>.txt, or None for the project's own Python."""
    durability: str
    durability_note: str
    variant: str = ""
    servers: tuple[str, ...] = ()
    package: str = ""
    """Distribution whose version the report prints."""
    extra: dict[str, object] = field(default_factory=dict)


SQLITE_FULL = "SQLite WAL, synchronous=FULL (fsync per commit)"
REDIS_AOF = "Redis AOF, appendfsync everysec (may lose the last second on power loss)"

SYSTEMS: dict[str, System] = {
    s.name: s
    for s in [
        System(
            "quickq-memory-trio",
            "quickq_adapter.py",
            None,
            IN_MEMORY,
            "process memory",
            "memory",
            package="quickq",
            extra={"backend": "trio"},
        ),
        System(
            "quickq-memory-asyncio",
            "quickq_adapter.py",
            None,
            IN_MEMORY,
            "process memory",
            "memory",
            package="quickq",
            extra={"backend": "asyncio"},
        ),
        System(
            "quickq-sqlite-trio",
            "quickq_adapter.py",
            None,
            DURABLE,
            SQLITE_FULL,
            "sqlite",
            package="quickq",
            extra={"backend": "trio"},
        ),
        System(
            "quickq-sqlite-asyncio",
            "quickq_adapter.py",
            None,
            DURABLE,
            SQLITE_FULL,
            "sqlite",
            package="quickq",
            extra={"backend": "asyncio"},
        ),
        # The same with an OpenTelemetry SDK set up (bench/adapters/quickq_otel.py):
        # the instrumentation's cost, as ratios to the systems above.
        System(
            "quickq-memory-trio-otel",
            "quickq_adapter.py",
            None,
            IN_MEMORY,
            "process memory",
            "memory",
            package="quickq",
            extra={"backend": "trio", "otel": "sdk"},
        ),
        # Metrics and one trace in a hundred (the full run's time budget has
        # room for this one variant more, on memory, where the ratio is largest).
        System(
            "quickq-memory-trio-otel-sampled",
            "quickq_adapter.py",
            None,
            IN_MEMORY,
            "process memory",
            "memory",
            package="quickq",
            extra={"backend": "trio", "otel": "sampled"},
        ),
        System(
            "quickq-sqlite-trio-otel",
            "quickq_adapter.py",
            None,
            DURABLE,
            SQLITE_FULL,
            "sqlite",
            package="quickq",
            extra={"backend": "trio", "otel": "sdk"},
        ),
        System(
            "huey-sqlite",
            "huey_adapter.py",
            "huey",
            DURABLE,
            "SQLite WAL, fsync=True (synchronous=FULL)",
            "sqlite",
            package="huey",
        ),
        System(
            "huey-memory",
            "huey_adapter.py",
            "huey",
            IN_MEMORY,
            "process memory",
            "memory",
            package="huey",
        ),
        System(
            "taskiq-memory",
            "taskiq_adapter.py",
            "taskiq",
            IN_MEMORY,
            "InMemoryBroker: no queue, a kick runs the task at once",
            "memory",
            package="taskiq",
        ),
        System(
            "dramatiq-stub",
            "dramatiq_adapter.py",
            "dramatiq",
            IN_MEMORY,
            "StubBroker",
            "stub",
            package="dramatiq",
        ),
        System(
            "dramatiq-redis",
            "dramatiq_adapter.py",
            "dramatiq-redis",
            DURABLE,
            REDIS_AOF,
            "redis",
            servers=("redis",),
            package="dramatiq",
        ),
        System(
            "taskiq-redis",
            "taskiq_adapter.py",
            "taskiq-redis",
            DURABLE,
            REDIS_AOF,
            "redis",
            servers=("redis",),
            package="taskiq-redis",
        ),
        System(
            "arq",
            "arq_adapter.py",
            "arq",
            DURABLE,
            REDIS_AOF,
            "redis",
            servers=("redis",),
            package="arq",
        ),
        System(
            "saq",
            "saq_adapter.py",
            "saq",
            DURABLE,
            REDIS_AOF,
            "redis",
            servers=("redis",),
            package="saq",
        ),
        System(
            "rq",
            "rq_adapter.py",
            "rq",
            DURABLE,
            REDIS_AOF,
            "redis",
            servers=("redis",),
            package="rq",
        ),
        System(
            "celery-redis",
            "celery_adapter.py",
            "celery",
            DURABLE,
            REDIS_AOF,
            "redis",
            servers=("redis",),
            package="celery",
        ),
        System(
            "procrastinate-pg",
            "procrastinate_adapter.py",
            "procrastinate",
            DURABLE,
            "PostgreSQL 15 defaults (fsync on, synchronous_commit on)",
            "pg",
            servers=("postgres",),
            package="procrastinate",
        ),
    ]
}

# Only what exists is run: an adapter script that is not written yet is skipped
# with a note in the report rather than silently dropped.
