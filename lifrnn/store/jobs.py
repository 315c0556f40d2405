"""Job operations on the store: submit, claim, progress, finish, cancel, re-queue, list, delete.

Every status change goes through :func:`transition`, a guarded ``UPDATE ... WHERE status IN
(allowed sources)`` that also writes a ``job_events`` row; two workers (or a worker and a
cancel request) racing for one job cannot both win. A job that reaches a final status settles
the jobs waiting for its network in the same transaction (:func:`settle_dependents`): queued
with that network when it succeeded, failed naming it otherwise. Callers own the transaction
(commit).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Row,
    and_,
    case,
    cast,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from lifrnn import __version__
from lifrnn.specs import SpecBase, spec_sha256
from lifrnn.store.inputs import ResolvedInputs, input_dependents, network_of_job
from lifrnn.store.models import Artifact, Job, JobEvent, JobInput, Network, User, utcnow
from lifrnn.store.search import compile_filter, compile_order
from lifrnn.store.series import Point, add_points
from lifrnn.store.status import ACTIVE, PENDING, TERMINAL, TransitionError, sources_of

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


class MetricFilterError(ValueError):
    """A metric filter that cannot be read (see :func:`parse_metric_filter`)."""


def transition(
    session: Session,
    job_id: str,
    target: str,
    *,
    note: str = "",
    expect: Iterable[str] | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    **values: Any,
) -> bool:
    """Move job ``job_id`` to ``target`` if the status machine allows it from its current status.

    ``note`` is the event's message, ``expect`` narrows the allowed sources, ``where`` adds
    guards (e.g. the worker holding it), ``values`` are further columns to set.
    Records a status event; True when the job moved.
    """
    sources = sources_of(target)
    if expect is not None:
        sources = sources & frozenset(expect)
    now = utcnow()
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(sorted(sources)), *where)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(JobEvent(job_id=job_id, at=now, type="status", status=target, message=note))
    if target in TERMINAL:
        settle_dependents(session, job_id, target)
    return True


def settle_dependents(session: Session, job_id: str, status: str) -> list[str]:
    """Move the jobs waiting for job ``job_id``'s network on, now that it is ``status``.

    Succeeded: each waiting job reads the network it made and is queued. Failed or cancelled
    (or succeeded without a network): each fails naming its parent, which settles its own
    dependents in turn. Returns the ids moved.
    """
    waiting = session.scalars(
        select(Job.id).where(Job.parent_job_id == job_id, Job.status == "waiting")
    ).all()
    if not waiting:
        return []
    network = network_of_job(session, job_id) if status == "succeeded" else None
    moved = []
    for child in waiting:
        if network is not None:
            session.execute(
                update(JobInput)
                .where(JobInput.job_id == child, JobInput.source_job_id == job_id)
                .values(artifact_id=network.artifact_id, network_id=network.id)
                .execution_options(synchronize_session=False)
            )
            done = transition(
                session,
                child,
                "queued",
                note=f"parent job {job_id} succeeded",
                expect={"waiting"},
                parent_network_id=network.id,
            )
        else:
            reason = (
                f"parent job {job_id} made no network"
                if status == "succeeded"
                else f"parent job {job_id} {'was cancelled' if status == 'cancelled' else status}"
            )
            done = _fail_waiting(session, child, reason)
        if done:
            moved.append(child)
    return moved


def _fail_waiting(session: Session, job_id: str, reason: str) -> bool:
    """waiting -> failed with ``reason`` (its parent will never give it a network)."""
    return transition(
        session,
        job_id,
        "failed",
        note=reason,
        expect={"waiting"},
        finished_at=utcnow(),
        error=reason,
    )


def release_waiting(session: Session) -> list[str]:
    """Settle waiting jobs whose parent is already final or gone (a safety net). Commits."""
    parent = aliased(Job)
    rows = session.execute(
        select(Job.id, Job.parent_job_id, parent.status)
        .outerjoin(parent, parent.id == Job.parent_job_id)
        .where(Job.status == "waiting")
    ).all()
    moved: list[str] = []
    for job_id, parent_id, parent_status in rows:
        if parent_status is None:
            if _fail_waiting(session, job_id, f"parent job {parent_id} no longer exists"):
                moved.append(job_id)
        elif parent_status in TERMINAL and parent_id is not None:
            moved += settle_dependents(session, parent_id, parent_status)
    session.commit()
    return moved


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
            done = transition(
                session,
                job_id,
                "queued",
                note=f"{lost}; re-queued after attempt {attempts}",
                expect={"running"},
                where=stale_guard,
                worker=None,
                task_id=None,
                heartbeat_at=None,
                expected_end_at=None,
                progress=0.0,
                message="",
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


# -- listing -----------------------------------------------------------------------------------

_METRIC_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*(>=|<=|==|!=|>|<|=)\s*(\S+)\s*$")


@dataclass(frozen=True)
class MetricFilter:
    """``name op value``: the numeric metric ``name`` compared with ``value``."""

    name: str
    op: str
    value: float


def parse_metric_filter(text: str) -> MetricFilter:
    """Read ``NAME OP VALUE`` with OP one of ``>= <= > < == != =`` (e.g. ``r2_min>=0.99``)."""
    match = _METRIC_FILTER.match(text)
    if match is None:
        raise MetricFilterError(
            f"metric filter {text!r}: expected NAME OP VALUE, e.g. r2_min>=0.99 "
            "(OP: >=, <=, >, <, ==, !=)"
        )
    name, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise MetricFilterError(f"metric filter {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise MetricFilterError(f"metric filter {text!r}: the value must be finite")
    return MetricFilter(name=name, op="==" if op == "=" else op, value=value)


def _metric_value(column: Any, name: str, dialect: str) -> ColumnElement[Any]:
    """The numeric metric ``name`` of a JSON column, NULL where absent or not a number."""
    if dialect == "postgresql":
        element = func.json_extract_path(column, name)
        return case(
            (
                func.json_typeof(element) == "number",
                cast(func.json_extract_path_text(column, name), Float),
            ),
            else_=None,
        )
    path = f'$."{name}"'
    return case(
        (func.json_type(column, path).in_(["integer", "real"]), func.json_extract(column, path)),
        else_=None,
    )


def metric_condition(column: Any, flt: MetricFilter, dialect: str) -> ColumnElement[bool]:
    """SQL condition of one metric filter on a JSON ``metrics`` column."""
    value = _metric_value(column, flt.name, dialect)
    compare = {
        ">=": value >= flt.value,
        "<=": value <= flt.value,
        ">": value > flt.value,
        "<": value < flt.value,
        "==": value == flt.value,
        "!=": value != flt.value,
    }[flt.op]
    return and_(value.is_not(None), compare)


@dataclass(frozen=True)
class JobQuery:
    """Filters of a job listing; None means any. ``count``: also count every match (a second
    query unless ``order_by`` sorts them all anyway); without it the total is None."""

    owner_id: int | None = None
    kind: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metrics: tuple[MetricFilter, ...] = ()
    filter: str | None = None
    order_by: str | None = None
    limit: int = 50
    offset: int = 0
    count: bool = True


JobRow = Row[*tuple[Any, ...]]
"""A Core row of the ``jobs`` table (attributes named as :class:`Job`'s columns)."""

JOB_COLUMNS = tuple(Job.__table__.columns)
"""Every column of ``jobs``, for Core selects of whole job rows."""


@dataclass(frozen=True)
class Page:
    """One page of a listing: its ``rows``, every match counted (``total``, None when not
    asked) and whether more follow this page (``has_more``, known either way)."""

    rows: list[JobRow]
    total: int | None
    has_more: bool


def page_of(rows: Sequence[JobRow], limit: int, total: int | None) -> Page:
    """The :class:`Page` of ``rows`` fetched with ``limit + 1`` (the extra row says more
    follow)."""
    return Page(rows=list(rows[:limit]), total=total, has_more=len(rows) > limit)


def _job_conditions(session: Session, query: JobQuery) -> list[ColumnElement[bool]]:
    dialect = session.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = []
    if query.owner_id is not None:
        conditions.append(Job.owner_id == query.owner_id)
    if query.kind is not None:
        conditions.append(Job.kind == query.kind)
    if query.status is not None:
        conditions.append(Job.status == query.status)
    if query.created_after is not None:
        conditions.append(Job.queued_at >= query.created_after)
    if query.created_before is not None:
        conditions.append(Job.queued_at < query.created_before)
    conditions.extend(metric_condition(Job.metrics, flt, dialect) for flt in query.metrics)
    if query.filter:
        conditions.append(compile_filter(query.filter, dialect))
    return conditions


def list_jobs(session: Session, query: JobQuery) -> tuple[list[JobRow], int | None]:
    """Jobs matching ``query`` and how many match in all (None unless ``query.count``): the
    rows and total of :func:`job_page`."""
    page = job_page(session, query)
    return page.rows, page.total


def job_page(session: Session, query: JobQuery) -> Page:
    """Jobs matching ``query``, in its ``order_by`` (then newest first): rows of the ``jobs``
    table (Core rows, attributes named as :class:`Job`'s columns: no ORM objects to build),
    and how many match in all when ``query.count``. A ``filter`` or ``order_by`` that cannot be
    read raises :class:`SearchError`."""
    order = compile_order(query.order_by, session.get_bind().dialect.name) if query.order_by else []
    conditions = _job_conditions(session, query)
    if order:
        return _ordered_page(session, query, conditions, order)
    total = None
    if query.count:
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    rows = (
        session.connection()
        .execute(
            select(*JOB_COLUMNS)
            .where(*conditions)
            .order_by(Job.queued_at.desc(), Job.id.desc())
            .limit(query.limit + 1)
            .offset(query.offset)
        )
        .all()
    )
    return page_of(rows, query.limit, total)


def _ordered_page(
    session: Session, query: JobQuery, conditions: list[ColumnElement[bool]], order: list[Any]
) -> Page:
    """A page in ``order`` and the count in one query (``count(*) OVER ()``): every match is
    sorted anyway, so the side tables are joined once instead of twice; the count is asked
    apart only for a page past the end."""
    rows = session.execute(
        select(*JOB_COLUMNS, func.count().over().label("match_count"))
        .where(*conditions)
        .order_by(*order, Job.queued_at.desc(), Job.id.desc())
        .limit(query.limit + 1)
        .offset(query.offset)
    ).all()
    total: int | None = None
    if rows:
        total = int(rows[0][-1])
    elif query.count and query.offset > 0:
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    elif query.count:
        total = 0
    return page_of(rows, query.limit, total if query.count else None)


def job_events(
    session: Session, job_id: str, after_id: int = 0, limit: int | None = None, last: bool = False
) -> list[JobEvent]:
    """History of a job in order, from event ``after_id`` on (exclusive), at most ``limit``
    events: the first ones, or with ``last`` the newest ones (still in order)."""
    statement = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
    if last:
        newest = list(session.scalars(statement.order_by(JobEvent.id.desc()).limit(limit)))
        return newest[::-1]
    return list(session.scalars(statement.order_by(JobEvent.id).limit(limit)))


def job_and_events(
    session: Session, job_id: str, after_id: int = 0
) -> tuple[Job | None, list[JobEvent]]:
    """Job ``job_id`` (detached from ``session``; None when gone) and its history after event
    ``after_id``, read in that order: a live view (an event stream) that stops at a finished
    job has then seen every entry up to its end.

    On PostgreSQL each statement sees what was committed when it began: read the other way
    round, a job that finishes between the two reads looks finished while its last entries
    are not yet read, and a stream that then ends loses them.
    """
    job = session.get(Job, job_id)
    if job is not None:
        session.expunge(job)
    return job, job_events(session, job_id, after_id)


def network_lineage(session: Session, network: Network, depth: int = 32) -> list[Network]:
    """Ancestors of ``network``, parent first (at most ``depth``)."""
    chain: list[Network] = []
    seen = {network.id}
    current = network
    while current.parent_network_id and len(chain) < depth:
        parent = session.get(Network, current.parent_network_id)
        if parent is None or parent.id in seen:
            break
        chain.append(parent)
        seen.add(parent.id)
        current = parent
    return chain
