"""Per-job resource limits, decided at submit from the spec's estimate.

A job's :class:`~lifrnn.specs.resources.Estimate` (peak memory, artifact bytes, work) is
compared with the deployment's limits (``LIFRNN_MAX_JOB_MEMORY_BYTES``,
``LIFRNN_MAX_JOB_OUTPUT_BYTES``, ``LIFRNN_MAX_JOB_WORK``) or the user's own
(``users.max_job_memory``, ``max_job_output``, ``max_job_work``; set with
``lifrnn users limits``). A spec over a limit is refused before any work with a message that
states the estimate, what it was computed from, and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifrnn.settings import Settings
from lifrnn.specs.resources import Estimate, format_bytes
from lifrnn.store.models import User


class LimitExceededError(ValueError):
    """A spec whose estimated resources exceed a limit (422); the message names the fields."""


@dataclass(frozen=True)
class JobLimits:
    """The limits that apply to one user's jobs.

    Attributes:
        memory_bytes: peak memory of one job beyond the idle worker.
        output_bytes: artifact bytes one job may write.
        work: nominal floating-point operations of one job.
        own: which of the three are the user's own (not the deployment's).
    """

    memory_bytes: int
    output_bytes: int
    work: float
    own: frozenset[str] = frozenset()

    @classmethod
    def for_user(cls, settings: Settings, user: User) -> JobLimits:
        """The user's own limits where set, else the deployment's."""
        own = {
            name
            for name, value in (
                ("memory", user.max_job_memory),
                ("output", user.max_job_output),
                ("work", user.max_job_work),
            )
            if value is not None
        }
        return cls(
            memory_bytes=user.max_job_memory
            if user.max_job_memory is not None
            else settings.max_job_memory_bytes,
            output_bytes=user.max_job_output
            if user.max_job_output is not None
            else settings.max_job_output_bytes,
            work=user.max_job_work if user.max_job_work is not None else settings.max_job_work,
            own=frozenset(own),
        )

    def check(self, estimate: Estimate) -> None:
        """Raise :class:`LimitExceededError` when ``estimate`` exceeds any limit."""
        checks = (
            ("memory", "peak memory", "memory_bytes", self.memory_bytes, format_bytes),
            ("output", "artifact bytes", "output_bytes", self.output_bytes, format_bytes),
            ("work", "work", "work", self.work, _format_work),
        )
        for name, what, resource, limit, shown in checks:
            value = getattr(estimate, resource)
            if value > limit:
                stage = estimate.main_stage(resource)
                whose = (
                    "your own limit (an admin sets it with `lifrnn users limits`)"
                    if name in self.own
                    else f"this service's limit per job (LIFRNN_MAX_JOB_{_SETTING[name]})"
                )
                raise LimitExceededError(
                    f"{', '.join(stage.fields)}: estimated {what} {shown(value)} "
                    f"({stage.basis}) exceeds {whose} of {shown(limit)}; "
                    f"{_ADVICE[name]}"
                )


_SETTING = {"memory": "MEMORY_BYTES", "output": "OUTPUT_BYTES", "work": "WORK"}
_ADVICE = {
    "memory": "use fewer units, movements or time steps (a larger dt, shorter periods; "
    "float32 for a fit)",
    "output": "use fewer units, movements or time steps, or shorter periods",
    "work": "use fewer units or iterations (max_iterations), or fewer movements or time steps",
}


def _format_work(value: float) -> str:
    return f"{value:.2g} floating-point operations"
