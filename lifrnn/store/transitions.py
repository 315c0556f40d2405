"""Status changes of jobs: :func:`transition`, and the waiting jobs a final status settles.

Every status change goes through :func:`transition`, a guarded ``UPDATE ... WHERE status IN
(allowed sources)`` that also writes a ``job_events`` row; two workers (or a worker and a
cancel request) racing for one job cannot both win. A job that reaches a final status settles
the jobs waiting for its network in the same transaction (:func:`settle_dependents`): queued
with that network when it succeeded, failed naming it otherwise. Callers own the transaction
(commit). :mod:`lifrnn.store.jobs` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, aliased

from lifrnn.store.inputs import network_of_job
from lifrnn.store.models import Job, JobEvent, JobInput, utcnow
from lifrnn.store.status import TERMINAL, sources_of


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
