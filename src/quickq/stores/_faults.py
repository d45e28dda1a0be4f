"""Fault injection for the stores that implement transactions in Python.

The memory and SQLite stores take a :class:`Faults` (seeded, random faults
and latency) and a script of :class:`CommitFault` (``store.inject(...)``), so
tests provoke conflicts and both flavours of commit-unknown-result exactly
where they want them.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["CommitFault", "Faults"]


class CommitFault(enum.Enum):
    """A fault to inject into one commit."""

    CONFLICT = "conflict"
    """Fail with ConflictError; nothing is written."""
    UNKNOWN_APPLIED = "unknown_applied"
    """Apply the writes, then report CommitUnknownResultError."""
    UNKNOWN_NOT_APPLIED = "unknown_not_applied"
    """Write nothing, and report CommitUnknownResultError."""


@attrs.frozen
class Faults:
    """Seeded, deterministic fault injection for tests.

    Each commit that writes draws once from ``random.Random(seed)``: with the
    given probabilities it fails with an injected conflict or one of the two
    flavours of commit-unknown-result. Every read and commit first waits a
    uniformly drawn latency in ``[0, latency]`` seconds; every read (a
    ``get_many`` counts as one) waits ``read_latency`` more, as on a cluster.
    """

    seed: int = 0
    conflict: float = 0.0
    unknown_applied: float = 0.0
    unknown_not_applied: float = 0.0
    latency: float = 0.0
    read_latency: float = 0.0
