"""Job operations on the store: submit, claim, progress, finish, cancel, re-queue, delete.

A job's life: :func:`submit_job` queues it within its owner's quotas (or records it waiting for
its parent job), :func:`claim_job` gives it to a worker, :func:`report_progress` and
:func:`beat` keep its row current, :func:`requeue_stale` takes it back from a worker that
stopped beating, :func:`request_cancel` stops it, :func:`delete_job` removes it and
:func:`label_job` names it.

Every status change goes through :func:`~lifrnn.store.transitions.transition`, a guarded update
that writes a ``job_events`` row and, when the job reaches a final status, settles the jobs
waiting for it (:mod:`lifrnn.store.transitions`). Listings, histories and lineage are read in
:mod:`lifrnn.store.job_queries`. The names of both are re-exported here, so every job operation
still imports from ``lifrnn.store.jobs``. Callers own the transaction (commit) unless a function
says it commits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from lifrnn import __version__
from lifrnn.specs import SpecBase, spec_sha256
from lifrnn.store.inputs import ResolvedInputs, input_dependents
from lifrnn.store.job_queries import JOB_COLUMNS as JOB_COLUMNS
from lifrnn.store.job_queries import JobQuery as JobQuery
from lifrnn.store.job_queries import JobRow as JobRow
from lifrnn.store.job_queries import MetricFilter as MetricFilter
from lifrnn.store.job_queries import MetricFilterError as MetricFilterError
from lifrnn.store.job_queries import Page as Page
from lifrnn.store.job_queries import _metric_value as _metric_value
from lifrnn.store.job_queries import job_and_events as job_and_events
from lifrnn.store.job_queries import job_events as job_events
from lifrnn.store.job_queries import job_page as job_page
from lifrnn.store.job_queries import list_jobs as list_jobs
from lifrnn.store.job_queries import metric_condition as metric_condition
from lifrnn.store.job_queries import network_lineage as network_lineage
from lifrnn.store.job_queries import page_of as page_of
from lifrnn.store.job_queries import parse_metric_filter as parse_metric_filter
from lifrnn.store.models import Artifact, Job, JobEvent, User, utcnow
from lifrnn.store.series import Point, add_points
from lifrnn.store.status import ACTIVE, PENDING, TERMINAL, TransitionError
from lifrnn.store.transitions import _fail_waiting, settle_dependents, transition
from lifrnn.store.transitions import release_waiting as release_waiting

if TYPE_CHECKING:
    from lifrnn.store import Store


class QuotaExceededError(Exception):
    """The user has as many queued jobs as their quota allows."""


class IdempotencyConflictError(Exception):
    """An ``Idempotency-Key`` was reused with a different spec."""


class DependentsError(Exception):
    """Other jobs still read what this one made (its network or files); delete them first."""

    def __init__(self, job_id: str, dependents: list[str]) -> None:
        shown = ", ".join(dependents[:10]) + (" and more" if len(dependents) > 10 else "")
        super().__init__(
            f"job {job_id} made the network or files that other jobs read or wait for: "
            f"{shown}; delete those first"
        )
        self.dependents = dependents


def finite_json(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def queued_count(session: Session, owner_id: int) -> int:
    """Number of the user's jobs that have not started (queued or waiting)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.owner_id == owner_id, Job.status.in_(sorted(PENDING)))
        )
        or 0
    )


def reusable_job(session: Session, owner: User, spec: SpecBase) -> Job | None:
    """``owner``'s latest succeeded job of exactly this spec and this code version, or None.

    The spec's hash covers its inputs' ids, so a run on another network is never reused; runs are
    deterministic (the same spec and code write the same bytes), so the earlier result is the
    result.
    """
    return session.scalar(
        select(Job)
        .where(
            Job.owner_id == owner.id,
            Job.spec_sha256 == spec_sha256(spec),
            Job.code_version == __version__,
            Job.status == "succeeded",
        )
        .order_by(Job.finished_at.desc(), Job.id)
        .limit(1)
    )


def submit_job(
    session: Session,
    owner: User,
    spec: SpecBase,
    *,
    default_max_queued: int,
    default_max_bytes: int | None = None,
    idempotency_key: str | None = None,
    inputs: ResolvedInputs | None = None,
    worker: str | None = None,
) -> tuple[Job, bool]:
    """Queue ``spec`` for ``owner``; returns (job, created). Commits.

    ``inputs``: its stored inputs (:func:`lifrnn.store.inputs.resolve_inputs`), recorded with
    it; a job whose parent job has not succeeded yet is ``waiting`` instead of queued. With
    ``worker`` the job is recorded as already claimed by it (``lifrnn run`` runs its job itself,
    so no pool may take it); the history still shows queued, then running. A repeated
    ``idempotency_key`` returns the job it created (created False); raises
    :class:`IdempotencyConflictError` if that job's spec differs, :class:`QuotaExceededError`
    when the user's queue is full or (with ``default_max_bytes``) their stored bytes reach their
    byte quota. The quotas are checked under the user's lock (:func:`lock_user`).
    """
    inputs = inputs or ResolvedInputs()
    waits = inputs.parent_job_id is not None
    spec_json = spec.model_dump(mode="json")
    digest = spec_sha256(spec)
    lock_user(session, owner.id)  # count and insert without another request in between
    if idempotency_key is not None:
        existing = _by_idempotency_key(session, owner.id, idempotency_key)
        if existing is not None:
            session.commit()  # ends the lock's transaction
            return _same_spec(existing, digest), False
    limit = owner.max_queued if owner.max_queued is not None else default_max_queued
    pending = queued_count(session, owner.id)
    if pending >= limit:
        session.rollback()
        raise QuotaExceededError(
            f"quota exceeded: {pending} queued or waiting jobs, at most {limit} may wait; "
            "wait for some to start or cancel them"
        )
    if default_max_bytes is not None:
        try:
            check_byte_quota(session, owner, default_max_bytes)
        except QuotaExceededError:
            session.rollback()
            raise
    if waits and worker is not None:
        raise ValueError("a job run at once cannot wait for a parent job")
    job = Job(
        owner_id=owner.id,
        kind=spec.kind,
        spec=spec_json,
        spec_sha256=digest,
        status="waiting" if waits else "queued",
        code_version=__version__,
        idempotency_key=idempotency_key,
        parent_job_id=inputs.parent_job_id,
        parent_network_id=inputs.parent_network_id,
        queued_at=utcnow(),
        heartbeat_grace_seconds=_heartbeat_grace(spec, inputs),
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        existing = _by_idempotency_key(session, owner.id, idempotency_key)
        if existing is None:
            raise
        return _same_spec(existing, digest), False
    note = f"waiting for job {inputs.parent_job_id}" if waits else ""
    session.add(
        JobEvent(job_id=job.id, at=job.queued_at, type="status", status=job.status, message=note)
    )
    for job_input in inputs.inputs:
        job_input.job_id = job.id
        session.add(job_input)
    if inputs.parent_job_id is not None:
        _settle_if_parent_final(session, job.id, inputs.parent_job_id)
    if worker is not None:
        now = utcnow()
        job.status, job.worker, job.attempts = "running", worker, 1
        job.started_at = job.heartbeat_at = now
        session.add(
            JobEvent(
                job_id=job.id,
                at=now,
                type="status",
                status="running",
                message=f"started by {worker}",
            )
        )
    session.commit()
    return job, True


def check_byte_quota(session: Session, owner: User, default_max_bytes: int) -> None:
    """Raise :class:`QuotaExceededError` when ``owner``'s stored bytes reach their byte quota
    (``max_bytes``, else ``default_max_bytes``); call it under the user's lock."""
    byte_limit = owner.max_bytes if owner.max_bytes is not None else default_max_bytes
    used = session.scalar(
        select(func.coalesce(func.sum(Artifact.size), 0)).where(Artifact.owner_id == owner.id)
    )
    if int(used or 0) >= byte_limit:
        raise QuotaExceededError(
            f"byte quota exceeded: {used} bytes stored, the limit is {byte_limit}; delete "
            "files or jobs you no longer need"
        )


def _settle_if_parent_final(session: Session, job_id: str, parent_id: str) -> None:
    """The parent may have finished since the spec was checked: settle the new job now.

    Runs after the new row is written, in its transaction: on PostgreSQL the parent row is
    locked (its final update has committed, or has not begun); on SQLite this transaction
    already holds the database's one write lock. Either way the parent's own settling sees
    this job or this check sees the parent's final status.
    """
    status = session.scalar(select(Job.status).where(Job.id == parent_id).with_for_update())
    if status is None:
        _fail_waiting(session, job_id, f"parent job {parent_id} no longer exists")
    elif status in TERMINAL:
        session.flush()
        settle_dependents(session, parent_id, status)  # type: ignore[arg-type]


def _by_idempotency_key(session: Session, owner_id: int, key: str | None) -> Job | None:
    return session.scalar(select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key))


def _same_spec(job: Job, digest: str) -> Job:
    if job.spec_sha256 != digest:
        raise IdempotencyConflictError(
            f"Idempotency-Key already used for job {job.id} with a different spec"
        )
    return job


def next_queued_job_id(session: Session, default_max_running: int) -> str | None:
    """The oldest queued job whose owner may start one more (quota max_running), or None.

    On PostgreSQL the row is locked ``FOR UPDATE SKIP LOCKED`` until the caller's transaction
    ends, so concurrent workers look at different jobs; :func:`claim_job` is the real guard.
    """
    active = aliased(Job)
    running = (
        select(func.count())
        .select_from(active)
        .where(active.owner_id == Job.owner_id, active.status.in_(sorted(ACTIVE)))
        .scalar_subquery()
    )
    statement = (
        select(Job.id)
        .join(User, User.id == Job.owner_id)
        .where(
            Job.status == "queued", running < func.coalesce(User.max_running, default_max_running)
        )
        .order_by(Job.queued_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=Job)
    )
    return session.scalar(statement)


def lock_user(session: Session, user_id: int) -> None:
    """Serialise the quota decisions of one user until the transaction ends.

    A no-op update of the user's row: PostgreSQL locks the row (other users go on), SQLite
    takes its one write lock. Counting and inserting after it cannot interleave with another
    request of the same user, so a quota cannot be overrun by concurrent requests.
    """
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(max_queued=User.max_queued)
        .execution_options(synchronize_session=False)
    )


def running_count(session: Session, owner_id: int) -> int:
    """Number of the user's jobs a worker holds (running or cancelling)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.owner_id == owner_id, Job.status.in_(sorted(ACTIVE)))
        )
        or 0
    )


def claim_job(
    session: Session,
    job_id: str,
    worker: str,
    default_max_running: int | None = None,
    task_id: str | None = None,
) -> bool:
    """queued -> running for ``worker`` (attempts + 1); False if someone else got it. Commits.

    With ``default_max_running`` the owner's running quota is checked again, under the user's
    lock: a job whose owner already runs as many as allowed stays queued (False). ``task_id``:
    the Celery task that runs it, recorded so that any API process can terminate it.
    """
    if default_max_running is not None:
        owner_id = session.scalar(select(Job.owner_id).where(Job.id == job_id))
        if owner_id is None:
            return False
        lock_user(session, owner_id)
        own = session.scalar(select(User.max_running).where(User.id == owner_id))
        limit = own if own is not None else default_max_running
        if running_count(session, owner_id) >= limit:
            session.rollback()
            return False
    now = utcnow()
    claimed = transition(
        session,
        job_id,
        "running",
        note=f"started by {worker}",
        expect={"queued"},
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        expected_end_at=None,
        finished_at=None,
        attempts=Job.attempts + 1,
        progress=0.0,
        message="",
        task_id=task_id,
    )
    session.commit()
    return claimed


def report_progress(
    session: Session,
    job_id: str,
    worker: str,
    fraction: float,
    text: str,
    event: bool = True,
    *,
    elapsed_seconds: float | None = None,
    eta_seconds: float | None = None,
    points: Sequence[Point] = (),
) -> None:
    """Record progress (and a heartbeat) of a job ``worker`` holds on its row, and with
    ``event`` also as an entry of its history; ``points`` of its curves go in the same
    transaction. ``eta_seconds``: the runner's estimate of the time left (None: none yet)."""
    now = utcnow()
    expected_end = None if eta_seconds is None else now + timedelta(seconds=eta_seconds)
    moved = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status.in_(sorted(ACTIVE)))
        .values(progress=fraction, message=text, heartbeat_at=now, expected_end_at=expected_end)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if moved and event:
        status = session.scalar(select(Job.status).where(Job.id == job_id)) or "running"
        session.add(
            JobEvent(
                job_id=job_id,
                at=now,
                type="progress",
                status=status,
                progress=fraction,
                message=text,
                elapsed_seconds=elapsed_seconds,
                eta_seconds=eta_seconds,
            )
        )
    if moved:
        add_points(session, job_id, points)
    session.commit()


def beat(session: Session, job_id: str, worker: str) -> str | None:
    """Heartbeat of a job ``worker`` holds; returns its status (None: no longer ours). Commits."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status.in_(sorted(ACTIVE)))
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return session.scalar(select(Job.status).where(Job.id == job_id, Job.worker == worker))


def _heartbeat_grace(spec: SpecBase, inputs: ResolvedInputs) -> float | None:
    """The job's own heartbeat grace (seconds), when its estimate asks for one."""
    grace = spec.estimate(inputs.facts).heartbeat_grace_seconds
    return grace if grace > 0 else None


def requeue(
    session: Session, job_id: str, note: str, *, where: Sequence[ColumnElement[bool]] = ()
) -> bool:
    """running -> queued: the job goes back to the queue for any worker, its claim (worker,
    task, heartbeat, expected end) and progress cleared; ``where`` adds guards, as for
    :func:`transition`. True when it moved."""
    return transition(
        session,
        job_id,
        "queued",
        note=note,
        expect={"running"},
        where=where,
        worker=None,
        task_id=None,
        heartbeat_at=None,
        expected_end_at=None,
        progress=0.0,
        message="",
    )


def requeue_stale(session: Session, stale_after_seconds: float, max_attempts: int) -> list[str]:
    """Re-queue running jobs whose worker stopped beating; returns their ids. Commits.

    A job's heartbeat is late after ``stale_after_seconds``, or after its own
    ``heartbeat_grace_seconds`` when that is longer (a big SOC build's one LAPACK call can keep
    its worker from beating for minutes). A stale ``cancelling`` job becomes cancelled; a job
    that used up ``max_attempts`` fails.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    stale = session.execute(
        select(
            Job.id,
            Job.status,
            Job.attempts,
            Job.worker,
            Job.heartbeat_at,
            Job.heartbeat_grace_seconds,
        ).where(Job.status.in_(sorted(ACTIVE)), Job.heartbeat_at < cutoff)
    ).all()
    moved = []
    for job_id, status, attempts, worker, beat, grace in stale:
        own_cutoff = now - timedelta(seconds=max(stale_after_seconds, grace or 0.0))
        if beat is not None and beat >= own_cutoff:  # its own, longer grace is not over
            continue
        stale_guard = [Job.heartbeat_at < own_cutoff]
        lost = f"worker {worker} stopped beating"
        if status == "cancelling":
            done = transition(
                session,
                job_id,
                "cancelled",
                note=f"{lost} while cancelling",
                expect={"cancelling"},
                where=stale_guard,
                finished_at=utcnow(),
                error="cancelled on request",
            )
        elif attempts >= max_attempts:
            done = transition(
                session,
                job_id,
                "failed",
                note=lost,
                expect={"running"},
                where=stale_guard,
                finished_at=utcnow(),
                error=f"{lost}; gave up after {attempts} attempts",
            )
        else:
            done = requeue(
                session, job_id, f"{lost}; re-queued after attempt {attempts}", where=stale_guard
            )
        if done:
            moved.append(job_id)
    session.commit()
    return moved


def request_cancel(session: Session, job: Job, by: str = "") -> Job:
    """Cancel a queued job now, or ask a running one to stop (``cancelling``). Commits.

    ``by``: who asked when it is not the owner (an admin), recorded in the job's history.
    Raises :class:`TransitionError` for a finished job; a job already cancelling stays so.
    """
    whom = f" by {by}" if by else ""
    for _ in range(3):  # the job may start between reading and writing its status
        if job.status == "cancelling":
            return job
        if job.status in TERMINAL:
            raise TransitionError(job.status, "cancelled")
        if job.status in PENDING:
            moved = transition(
                session,
                job.id,
                "cancelled",
                note=f"cancelled{whom} before it started",
                expect=PENDING,
                finished_at=utcnow(),
                error="cancelled on request",
            )
        else:
            moved = transition(
                session, job.id, "cancelling", note=f"cancel requested{whom}", expect={"running"}
            )
        session.commit()
        session.refresh(job)
        if moved:
            return job
    return job


def delete_job(session: Session, job: Job, store: Store) -> int:
    """Delete a job that no worker holds, with its events, artifacts and networks. Commits.

    Blobs that no other row and no write in flight names are removed from ``store``'s object
    store (:meth:`Store.collect_blobs`, after the rows' deletion committed); returns how many.
    Raises :class:`TransitionError` for a running job (cancel it first) and
    :class:`DependentsError` while other jobs read its network or files or wait for it (no
    silent lineage cut).
    """
    dependents = input_dependents(session, job)
    if dependents:
        raise DependentsError(job.id, dependents)
    own = session.scalars(select(Artifact).where(Artifact.job_id == job.id)).all()
    blobs = {key for artifact in own for key in artifact.blob_keys}
    try:
        removed = session.execute(
            delete(Job)
            .where(Job.id == job.id, Job.status.not_in(sorted(ACTIVE)))
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    except IntegrityError:  # a dependent was submitted meanwhile: the foreign keys refuse
        session.rollback()
        raise DependentsError(job.id, input_dependents(session, job)) from None
    if not removed:
        session.rollback()
        raise TransitionError(job.status, "deleted")
    session.commit()
    session.expunge(job)
    return store.collect_blobs(blobs)


def label_job(session: Session, job: Job, labels: dict[str, Any]) -> Job:
    """Set the run's ``name``, ``tags`` and ``note`` given in ``labels`` (others untouched;
    None clears one). Not part of the spec: its hash and its results stay. Commits."""
    if not labels:
        return job
    for field in ("name", "tags", "note"):
        if field in labels:
            setattr(job, field, labels[field] or None)
    session.commit()
    return job
