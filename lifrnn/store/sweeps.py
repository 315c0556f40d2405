"""Sweep operations on the store: plan every point, create all children or none, read the
progress and the table of points, cancel and delete.

A sweep is planned before anything is written (:func:`plan_sweep`): each point's spec is
validated exactly like ``POST /jobs`` — :func:`~lifrnn.specs.parse_spec`, its inputs resolved
for the owner (:func:`~lifrnn.store.inputs.resolve_inputs`), its estimate against the owner's
limits — and the first bad point is a :class:`~lifrnn.sweeps.SweepError` naming its index,
values and field; then the points' estimated work, summed, is checked against the sweep budget
(``LIFRNN_MAX_SWEEP_WORK``, :class:`SweepWorkError`). :func:`create_sweep` writes the sweep row,
its jobs — each as :func:`~lifrnn.store.jobs.submit_job` writes one: spec hash, search params,
first event, inputs — and the link rows in one transaction, one bulk INSERT per table;
:func:`cancel_sweep` moves all its unfinished jobs with two guarded UPDATEs and one INSERT of
their events. Both take constant round trips, whatever the number of points (bench/sweeps.py).

Quotas: a sweep enters the owner's queue whole or not at all. Its points and the jobs already
queued or waiting must fit in ``max_queued``, and the byte quota must not be used up, or it is
refused (:class:`QuotaExceededError`, naming the room left) with nothing written; admitted, its
jobs are queued (or waiting for a parent job) and ``max_running`` bounds how many run at once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lifrnn import __version__
from lifrnn.settings import Settings
from lifrnn.specs import SpecBase, describe_validation_error, parse_spec, spec_sha256
from lifrnn.specs.resources import Estimate
from lifrnn.store.inputs import InputError, ResolvedInputs, input_dependents, resolve_inputs
from lifrnn.store.jobs import (
    DependentsError,
    QuotaExceededError,
    check_byte_quota,
    delete_job,
    lock_user,
    queued_count,
    settle_dependents,
)
from lifrnn.store.limits import JobLimits, LimitExceededError
from lifrnn.store.models import Job, JobEvent, JobInput, JobParam, User, new_id, utcnow
from lifrnn.store.search import param_rows
from lifrnn.store.status import (
    ACTIVE,
    PENDING,
    STATUSES,
    TERMINAL,
    TransitionError,
    sources_of,
)
from lifrnn.store.sweep_models import Sweep, SweepJob
from lifrnn.sweeps import SweepDefinition, SweepError, describe_point, expand_points, point_spec

if TYPE_CHECKING:
    from lifrnn.store import Store


class SweepBusyError(Exception):
    """Jobs of the sweep are running: cancel the sweep first (409)."""

    def __init__(self, sweep_id: str, running: list[str]) -> None:
        shown = ", ".join(running[:10]) + (" and more" if len(running) > 10 else "")
        super().__init__(f"sweep {sweep_id} has running jobs ({shown}): cancel it first")
        self.running = running


class SweepWorkError(SweepError):
    """A sweep whose points' estimated work, summed, exceeds the sweep budget (422)."""


@dataclass(frozen=True)
class PlannedPoint:
    """One point, checked: its index, the values of its swept fields, its spec, its inputs and
    its resource estimate."""

    index: int
    values: dict[str, Any]
    spec: SpecBase
    inputs: ResolvedInputs
    estimate: Estimate


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
    """Every point of ``definition``, each checked as ``POST /jobs`` checks a spec, and their
    work summed against ``LIFRNN_MAX_SWEEP_WORK``; raises :class:`SweepError` for the axes, for
    the first bad point, naming it, or (:class:`SweepWorkError`) for the sum."""
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
            estimate = spec.estimate(inputs.facts)
            limits.check(estimate)
        except ValidationError as error:
            raise _bad_point(index, point, describe_validation_error(error)) from None
        except (SweepError, InputError, LimitExceededError) as error:
            raise _bad_point(index, point, str(error)) from None
        except (ValueError, ArithmeticError, TypeError) as error:
            # a validator that raised what pydantic does not wrap: still the client's spec
            raise _bad_point(index, point, f"{type(error).__name__}: {error}") from None
        planned.append(PlannedPoint(index, point, spec, inputs, estimate))
    check_sweep_work(planned, settings.max_sweep_work)
    return planned


def _bad_point(index: int, values: dict[str, Any], problem: str) -> SweepError:
    return SweepError(f"point {index} ({describe_point(values)}): {problem}")


def check_sweep_work(points: Sequence[PlannedPoint], budget: float) -> float:
    """The points' estimated work summed (nominal floating-point operations); raises
    :class:`SweepWorkError` when it exceeds ``budget``, naming the sum, the limit and the
    largest point."""
    total = math.fsum(point.estimate.work for point in points)
    if total > budget:
        largest = max(points, key=lambda point: point.estimate.work)
        stage = largest.estimate.main_stage("work")
        raise SweepWorkError(
            f"estimated work of its {len(points)} points {total:.2g} floating-point operations "
            f"exceeds this service's limit per sweep (LIFRNN_MAX_SWEEP_WORK) of {budget:.2g}; "
            f"the largest, point {largest.index} ({describe_point(largest.values)}), "
            f"{largest.estimate.work:.2g} ({stage.basis}): sweep fewer points or smaller ones "
            f"({', '.join(stage.fields)})"
        )
    return total


def check_queue_room(
    session: Session, owner: User, default_max_queued: int, points: int = 1
) -> int:
    """How many jobs ``owner`` has waiting; :class:`QuotaExceededError` when ``points`` more do
    not fit in their queue (``max_queued``, else ``default_max_queued``)."""
    limit = owner.max_queued if owner.max_queued is not None else default_max_queued
    pending = queued_count(session, owner.id)
    room = max(limit - pending, 0)
    if points > room:
        held = f"{pending} queued or waiting jobs, at most {limit} may wait"
        raise QuotaExceededError(
            f"quota exceeded: your queue is full ({held}); wait for some to start or cancel them"
            if room == 0
            else f"quota exceeded: this sweep has {points} points and your queue has room for "
            f"{room} more ({held}); sweep fewer points, or wait for some to start"
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

    All or nothing, in one transaction under the owner's lock (:func:`lock_user`), so its quotas
    are counted as exactly as one ``POST /jobs``'s: raises :class:`QuotaExceededError` when its
    points do not fit in the owner's queue (``max_queued``) or their byte quota is used up, and
    :class:`SweepError` when a job, file or network its points read was deleted since they were
    planned; nothing is written then.
    """
    lock_user(session, owner.id)  # counting and inserting with no request of theirs between
    try:
        check_queue_room(session, owner, default_max_queued, len(points))
        if default_max_bytes is not None:
            check_byte_quota(session, owner, default_max_bytes)
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
        _insert_points(session, owner, sweep.id, points)
        session.commit()
    except IntegrityError:  # the foreign keys: an input deleted meanwhile
        session.rollback()
        raise SweepError(
            "a job, file or network that its points read was deleted meanwhile: nothing was "
            "created; check the sweep and send it again"
        ) from None
    except BaseException:
        session.rollback()
        raise
    return sweep


def _insert_points(
    session: Session, owner: User, sweep_id: str, points: Sequence[PlannedPoint]
) -> None:
    """Insert the points' jobs as :func:`~lifrnn.store.jobs.submit_job` writes one — queued, or
    waiting for its parent job; spec hash, heartbeat grace, ``job_params``, first event, inputs
    — and their link rows: one INSERT per table."""
    start = utcnow()
    jobs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for offset, point in enumerate(points):
        job_id = new_id()
        # a microsecond apart: the queue (oldest first) and listings keep the points' order
        queued_at = start + timedelta(microseconds=offset)
        parent = point.inputs.parent_job_id
        status = "queued" if parent is None else "waiting"
        grace = point.estimate.heartbeat_grace_seconds
        jobs.append(
            {
                "id": job_id,
                "owner_id": owner.id,
                "kind": point.spec.kind,
                "spec": point.spec.model_dump(mode="json"),
                "spec_sha256": spec_sha256(point.spec),
                "status": status,
                "code_version": __version__,
                "parent_job_id": parent,
                "parent_network_id": point.inputs.parent_network_id,
                "queued_at": queued_at,
                "heartbeat_grace_seconds": grace if grace > 0 else None,
                "tags": {"sweep": sweep_id},
            }
        )
        events.append(
            {
                "job_id": job_id,
                "at": queued_at,
                "type": "status",
                "status": status,
                "message": "" if parent is None else f"waiting for job {parent}",
            }
        )
        inputs += [
            {
                "job_id": job_id,
                "field": read.field,
                "artifact_id": read.artifact_id,
                "network_id": read.network_id,
                "source_job_id": read.source_job_id,
            }
            for read in point.inputs.inputs
        ]
        links.append(
            {"sweep_id": sweep_id, "point": point.index, "job_id": job_id, "values": point.values}
        )
    # Core executemany: one statement per table (the ORM's bulk INSERT would split the params
    # at each change of the columns given), and no per-object events: the search params of
    # each job are written here, as the ORM's after_insert hook writes them for one job
    connection = session.connection()
    connection.execute(insert(Job), jobs)
    params = [row for job in jobs for row in param_rows(job["id"], job["spec"])]
    for table, rows in ((JobParam, params), (JobEvent, events), (JobInput, inputs)):
        if rows:
            connection.execute(insert(table), rows)
    connection.execute(insert(SweepJob), links)
    parents = {point.inputs.parent_job_id for point in points}
    _settle_finished_parents(session, {parent for parent in parents if parent is not None})


def _settle_finished_parents(session: Session, parents: set[str]) -> None:
    """Parents that finished since the points were planned: settle their new waiting jobs now.

    As :func:`~lifrnn.store.jobs.submit_job` does for one job, after the rows are written: each
    parent row is locked (PostgreSQL; SQLite's one write lock is already held), so either its
    own settling sees the new jobs or this sees its final status. A parent deleted meanwhile
    cannot be: the new rows' foreign keys refuse it.
    """
    for parent_id in sorted(parents):  # one lock order: no deadlock with another sweep
        status = session.scalar(select(Job.status).where(Job.id == parent_id).with_for_update())
        if status is not None and status in TERMINAL:
            settle_dependents(session, parent_id, status)


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepCounts:
    """How far a sweep is: its jobs counted by status."""

    counts: dict[str, int]

    @classmethod
    def of(cls, counted: Counter[str]) -> SweepCounts:
        """These counts of job statuses with every status present (zeros included)."""
        return cls({status: counted[status] for status in STATUSES})

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
    return {sweep_id: SweepCounts.of(counted) for sweep_id, counted in counts.items()}


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
    """Cancel every unfinished job of the sweep: waiting and queued ones at once, running ones
    asked to stop (``cancelling``); returns how many (jobs already cancelling are not counted
    again). ``by``: who asked when it is not the owner (an admin). Commits.

    What :func:`~lifrnn.store.jobs.request_cancel` does for each job, with two guarded UPDATEs
    over all the sweep's jobs in one transaction: the pending ones first, so that no worker
    starts one meanwhile (a job taken before that is running, and the second one asks it to
    stop). Jobs outside the sweep waiting for a cancelled one fail, naming it.
    """
    whom = f" by {by}" if by else ""
    members = select(SweepJob.job_id).where(SweepJob.sweep_id == sweep.id)
    cancelled = _transition_all(
        session,
        members,
        "cancelled",
        expect=PENDING,
        note=f"cancelled{whom} before it started",
        finished_at=utcnow(),
        error="cancelled on request",
    )
    stopping = _transition_all(
        session, members, "cancelling", expect={"running"}, note=f"cancel requested{whom}"
    )
    if cancelled:
        done = set(cancelled)
        parents = session.scalars(
            select(Job.parent_job_id)
            .where(Job.status == "waiting", Job.parent_job_id.in_(members))
            .distinct()
        )
        for parent_id in sorted(parent for parent in parents if parent in done):
            settle_dependents(session, parent_id, "cancelled")
    session.commit()
    return len(cancelled) + len(stopping)


def _transition_all(
    session: Session,
    job_ids: Select[str],
    target: str,
    *,
    expect: Iterable[str],
    note: str,
    **values: Any,
) -> list[str]:
    """Move each job of ``job_ids`` whose status is in ``expect`` (and may become ``target``)
    to ``target`` in one guarded UPDATE, with a status event each (one INSERT), as
    :func:`~lifrnn.store.jobs.transition` moves one; returns the ids moved. Their dependents
    are the caller's to settle."""
    sources = sources_of(target) & frozenset(expect)
    now = utcnow()
    moved = list(
        session.scalars(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status.in_(sorted(sources)))
            .values(status=target, **values)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    )
    if moved:
        session.execute(
            insert(JobEvent),
            [
                {"job_id": job_id, "at": now, "type": "status", "status": target, "message": note}
                for job_id in moved
            ],
        )
    return moved


def delete_sweep(session: Session, sweep: Sweep, store: Store) -> int:
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
