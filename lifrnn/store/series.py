"""A job's curves: the points its runner records (SOC abscissa, a fit's cost, a loss) by step.

Points are written with the job's progress reports, in their transaction, and each point once:
a step already stored (a resumed run going over it again) is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from lifrnn.store.models import JobSeriesPoint

Point = tuple[str, int, float]
"""(series name, step, value)."""


@dataclass
class Curve:
    """One series of a job: its steps (optimiser iterations) and values, by step."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def add_points(session: Session, job_id: str, points: Iterable[Point]) -> None:
    """Store ``points`` of job ``job_id``, skipping steps already stored (no commit)."""
    rows = [
        {"job_id": job_id, "series": series, "step": step, "value": value}
        for series, step, value in points
    ]
    if not rows:
        return
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(JobSeriesPoint).on_conflict_do_nothing(), rows)


def job_series(
    session: Session, job_id: str, names: Sequence[str] = (), after: int = -1
) -> dict[str, Curve]:
    """The curves of job ``job_id`` (only ``names`` when given), points after step ``after``."""
    statement = select(JobSeriesPoint.series, JobSeriesPoint.step, JobSeriesPoint.value).where(
        JobSeriesPoint.job_id == job_id, JobSeriesPoint.step > after
    )
    if names:
        statement = statement.where(JobSeriesPoint.series.in_(list(names)))
    curves: dict[str, Curve] = {}
    for series, step, value in session.execute(
        statement.order_by(JobSeriesPoint.series, JobSeriesPoint.step)
    ):
        curve = curves.setdefault(series, Curve())
        curve.steps.append(step)
        curve.values.append(value)
    return curves
