"""The job status machine: the one place that says which status may follow which.

``queued -> running -> succeeded | failed | cancelled``; a running job asked to stop is
``cancelling`` until its runner notices. A running job whose worker died (stale heartbeat) goes
back to ``queued``; a queued job can be cancelled before it starts. A job whose spec names the
network of a job that has not succeeded yet (``{"job": id}``) is ``waiting``: queued when that
parent succeeds, failed when it fails or is cancelled.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["waiting", "queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = get_args(Status)

TRANSITIONS: dict[str, frozenset[str]] = {
    "waiting": frozenset({"queued", "failed", "cancelled"}),
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled", "cancelling", "queued"}),
    "cancelling": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
"""Allowed next statuses of each status."""

TERMINAL: frozenset[str] = frozenset(s for s, nexts in TRANSITIONS.items() if not nexts)
ACTIVE: frozenset[str] = frozenset({"running", "cancelling"})
"""Statuses of a job a worker holds."""
PENDING: frozenset[str] = frozenset({"waiting", "queued"})
"""Statuses of a job that has not started yet (both count against ``max_queued``)."""


class TransitionError(Exception):
    """A status change the status machine does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a {current} job cannot become {target}")
        self.current = current
        self.target = target


def can_transition(current: str, target: str) -> bool:
    """True when a job in ``current`` may become ``target``."""
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str) -> None:
    """Raise :class:`TransitionError` unless ``current -> target`` is allowed."""
    if not can_transition(current, target):
        raise TransitionError(current, target)


def sources_of(target: str) -> frozenset[str]:
    """Statuses from which ``target`` may be reached."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)
