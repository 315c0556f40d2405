"""Sweep operations on the store: plan every point, create all children or none, read the
progress and the table of points, cancel and delete.

A sweep is planned before anything is written (:func:`plan_sweep`): each point's spec is
validated exactly like ``POST /jobs`` — :func:`~lifrnn.specs.parse_spec`, its inputs resolved
for the owner (:func:`~lifrnn.store.inputs.resolve_inputs`), its estimate against the owner's
limits — and the first bad point is a :class:`~lifrnn.sweeps.SweepError` naming its index,
values and field. :func:`create_sweep` then writes the sweep row, one job per point through
:func:`~lifrnn.store.jobs.submit_job`, and the link rows in one transaction.

Quotas: a sweep is one submission. It is refused (:class:`QuotaExceededError`) when the owner's
queue is already full (``max_queued``) or their byte quota used up, like one ``POST /jobs``;
once admitted, all its children are queued, however many (at most ``LIFRNN_MAX_SWEEP_POINTS``):
they wait in the queue, and ``max_running`` still bounds how many of them run at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifrnn.settings import Settings
from lifrnn.specs import SpecBase, describe_validation_error, parse_spec
from lifrnn.store.cas import ArtifactStore
from lifrnn.store.inputs import InputError, ResolvedInputs, input_dependents, resolve_inputs
from lifrnn.store.jobs import (
    DependentsError,
    QuotaExceededError,
    delete_job,
    lock_user,
    queued_count,
    request_cancel,
    submit_job,
)
from lifrnn.store.limits import JobLimits, LimitExceededError
from lifrnn.store.models import Job, User
from lifrnn.store.status import ACTIVE, PENDING, STATUSES, TERMINAL, TransitionError
from lifrnn.store.sweep_models import Sweep, SweepJob
from lifrnn.sweeps import SweepDefinition, SweepError, describe_point, expand_points, point_spec


class SweepBusyError(Exception):
    """Jobs of the sweep are running: cancel the sweep first (409)."""

    def __init__(self, sweep_id: str, running: list[str]) -> None:
        shown = ", ".join(running[:10]) + (" and more" if len(running) > 10 else "")
        super().__init__(f"sweep {sweep_id} has running jobs ({shown}): cancel it first")
        self.running = running


@dataclass(frozen=True)
class PlannedPoint:
    """One point, checked: its index, the values of its swept fields, its spec and inputs."""

    index: int
    values: dict[str, Any]
    spec: SpecBase
    inputs: ResolvedInputs


def sweep_job_ids(session: Session, owner: User, sweep_id: str) -> list[str]:
    """The jobs of ``owner``'s sweep ``sweep_id`` in point order; :class:`SweepError` when it is
    not one of theirs (a chain may name only your own sweeps, as a spec only your own jobs)."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.owner_id != owner.id:
        raise SweepError(f"no sweep '{sweep_id}' of yours")
    return list(
        session.scalars(
            select(SweepJob.job_id).where(SweepJob.sweep_id == sweep_id).order_by(SweepJob.point)
        )
    )


def plan_sweep(
    session: Session, settings: Settings, owner: User, definition: SweepDefinition
) -> list[PlannedPoint]:
    """Every point of ``definition``, each checked as ``POST /jobs`` checks a spec; raises
    :class:`SweepError` for the axes, or for the first bad point, naming it."""
    values = expand_points(
        definition,
        lambda sweep_id: sweep_job_ids(session, owner, sweep_id),
        settings.max_sweep_points,
    )
    limits = JobLimits.for_user(settings, owner)
    planned = []
    for index, point in enumerate(values):
        try:
            spec = parse_spec(point_spec(definition.spec, point))
            inputs = resolve_inputs(session, owner, spec)
            limits.check(spec.estimate(inputs.facts))
        except ValidationError as error:
            raise _bad_point(index, point, describe_validation_error(error)) from None
        except (SweepError, InputError, LimitExceededError) as error:
            raise _bad_point(index, point, str(error)) from None
        except (ValueError, ArithmeticError, TypeError) as error:
            # a validator that raised what pydantic does not wrap: still the client's spec
            raise _bad_point(index, point, f"{type(error).__name__}: {error}") from None
        planned.append(PlannedPoint(index, point, spec, inputs))
    return planned


def _bad_point(index: int, values: dict[str, Any], problem: str) -> SweepError:
    return SweepError(f"point {index} ({describe_point(values)}): {problem}")


def check_queue_room(session: Session, owner: User, default_max_queued: int) -> int:
    """How many jobs ``owner`` has waiting; :class:`QuotaExceededError` when their queue is
    full (``max_queued``, else ``default_max_queued``): then no sweep is admitted."""
    limit = owner.max_queued if owner.max_queued is not None else default_max_queued
    pending = queued_count(session, owner.id)
    if pending >= limit:
        raise QuotaExceededError(
            f"quota exceeded: {pending} queued or waiting jobs, at most {limit} may wait; a "
            "sweep is admitted while your queue has room, and then all its jobs wait in it"
        )
    return pending


def create_sweep(
    session: Session,
    owner: User,
    definition: SweepDefinition,
    points: Sequence[PlannedPoint],
    *,
    default_max_queued: int,
    default_max_bytes: int | None = None,
) -> Sweep:
    """Write the sweep, one job per point (tagged ``sweep: <id>``) and their links; commits.

    All or nothing: :func:`submit_job` commits each job, so the jobs are written through a
    second session joined to this session's transaction, whose commits only release
    savepoints; the one commit is this session's, at the end. Raises
    :class:`QuotaExceededError` when the owner's queue is full (``max_queued``) before the
    sweep, or their byte quota is used up; nothing is written then.
    """
    # A write first: the transaction (SQLite: BEGIN) exists before any SAVEPOINT, so releasing
    # one never commits; and the owner's quota decisions are serialised from here on.
    lock_user(session, owner.id)
    try:
        pending = check_queue_room(session, owner, default_max_queued)
    except QuotaExceededError:
        session.rollback()
        raise
    sweep = Sweep(
        owner_id=owner.id,
        name=definition.name,
        spec=definition.spec,
        axes=definition.axes(),
        points=len(points),
    )
    session.add(sweep)
    try:
        session.flush()
        with Session(
            bind=session.connection(),
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
        ) as children:
            for point in points:
                job, _ = submit_job(
                    children,
                    owner,
                    point.spec,
                    default_max_queued=pending + len(points) + 1,
                    max_queued=pending + len(points) + 1,
                    default_max_bytes=default_max_bytes,
                    inputs=point.inputs,
                )
                job.tags = {"sweep": sweep.id}  # written with the next savepoint
                children.add(
                    SweepJob(
                        sweep_id=sweep.id, point=point.index, job_id=job.id, values=point.values
                    )
                )
            children.commit()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return sweep


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepCounts:
    """How far a sweep is: its jobs counted by status."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Jobs of the sweep (a child deleted on its own is no longer counted)."""
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        """Jobs in a final status (succeeded, failed or cancelled)."""
        return sum(count for status, count in self.counts.items() if status in TERMINAL)

    @property
    def fraction(self) -> float:
        """Finished jobs over all jobs (1 for a sweep without jobs)."""
        return self.finished / self.total if self.total else 1.0


def sweep_progress(session: Session, sweep_ids: Iterable[str]) -> dict[str, SweepCounts]:
    """The progress of each sweep: every status with its count (zeros included)."""
    ids = list(sweep_ids)
    counts: dict[str, Counter[str]] = {sweep_id: Counter() for sweep_id in ids}
    if ids:
        rows = session.execute(
            select(SweepJob.sweep_id, Job.status, func.count())
            .join(Job, Job.id == SweepJob.job_id)
            .where(SweepJob.sweep_id.in_(ids))
            .group_by(SweepJob.sweep_id, Job.status)
        )
        for sweep_id, status, count in rows:
            counts[sweep_id][status] += count
    return {
        sweep_id: SweepCounts({status: counted[status] for status in STATUSES})
        for sweep_id, counted in counts.items()
    }


def list_sweeps(
    session: Session, owner_id: int, limit: int = 50, offset: int = 0, count: bool = True
) -> tuple[list[Sweep], int | None]:
    """The owner's sweeps, newest first, and how many they have in all (None unless
    ``count``)."""
    total = None
    if count:
        total = (
            session.scalar(
                select(func.count()).select_from(Sweep).where(Sweep.owner_id == owner_id)
            )
            or 0
        )
    rows = session.scalars(
        select(Sweep)
        .where(Sweep.owner_id == owner_id)
        .order_by(Sweep.created_at.desc(), Sweep.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def sweep_points(session: Session, sweep: Sweep) -> list[tuple[SweepJob, Job]]:
    """Each point of the sweep with its job, in point order."""
    rows = session.execute(
        select(SweepJob, Job)
        .join(Job, Job.id == SweepJob.job_id)
        .where(SweepJob.sweep_id == sweep.id)
        .order_by(SweepJob.point)
        .execution_options(populate_existing=True)  # statuses as they are now
    )
    return [(link, job) for link, job in rows]


def numeric_metrics(metrics: dict[str, Any] | None) -> dict[str, int | float]:
    """The top-level numbers of a job's metrics (booleans, text and nested values left out)."""
    return {
        name: value
        for name, value in (metrics or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


# -- cancelling and deleting -------------------------------------------------------------------


def cancel_sweep(session: Session, sweep: Sweep, by: str = "") -> int:
    """Cancel every unfinished job of the sweep (waiting and queued ones first, so that no
    worker starts them meanwhile; running ones are asked to stop); returns how many (jobs
    already cancelling are not counted again). Commits."""
    asked = TERMINAL | {"cancelling"}
    jobs = [job for _, job in sweep_points(session, sweep) if job.status not in asked]
    jobs.sort(key=lambda job: job.status not in PENDING)
    cancelled = 0
    for job in jobs:
        try:
            request_cancel(session, job, by=by)
        except TransitionError:  # it finished meanwhile
            continue
        cancelled += 1
    return cancelled


def delete_sweep(session: Session, sweep: Sweep, store: ArtifactStore) -> int:
    """Delete the sweep and its jobs (with their histories, artifacts and networks); returns
    how many jobs. Commits.

    Raises :class:`SweepBusyError` while any of its jobs runs, and :class:`DependentsError`
    while jobs outside the sweep read what its jobs made (a chained sweep: delete that first);
    nothing is deleted then.
    """
    jobs = [job for _, job in sweep_points(session, sweep)]
    running = [job.id for job in jobs if job.status in ACTIVE]
    if running:
        raise SweepBusyError(sweep.id, running)
    own = {job.id for job in jobs}
    for job in jobs:
        outside = [other for other in input_dependents(session, job) if other not in own]
        if outside:
            raise DependentsError(job.id, outside)
    for job in jobs:
        try:
            delete_job(session, job, store)
        except TransitionError:  # a worker took it meanwhile
            raise SweepBusyError(sweep.id, [job.id]) from None
    session.delete(sweep)
    session.commit()
    return len(jobs)
