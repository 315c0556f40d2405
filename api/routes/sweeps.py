"""``/sweeps``: one base spec and axes over its fields, one job per point; progress, the table of
points, cancel and delete of all its jobs at once."""

from __future__ import annotations

import logging
from collections import Counter

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy.orm import Session

from lifrnn.api.deps import (
    CurrentUser,
    OwnedSweep,
    PageDep,
    SessionDep,
    StoreDep,
    not_found_response,
)
from lifrnn.api.routes.jobs import on_behalf
from lifrnn.api.schemas import SweepDetail, SweepList, SweepOut, SweepProgress, SweepRow, problem
from lifrnn.store import Sweep
from lifrnn.store.jobs import DependentsError, QuotaExceededError
from lifrnn.store.sweeps import (
    SweepBusyError,
    SweepCounts,
    cancel_sweep,
    check_queue_room,
    create_sweep,
    delete_sweep,
    list_sweeps,
    numeric_metrics,
    plan_sweep,
    sweep_points,
    sweep_progress,
)
from lifrnn.sweeps import SweepDefinition, SweepError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

NOT_FOUND = not_found_response("sweep")


def sweep_out(sweep: Sweep, progress: SweepProgress) -> SweepOut:
    """``sweep`` as the API shows it (its columns that :class:`SweepOut` names), with
    ``progress``."""
    columns = {name: getattr(sweep, name) for name in SweepOut.model_fields if name != "progress"}
    return SweepOut(**columns, progress=progress)


def progress_out(counted: SweepCounts) -> SweepProgress:
    return SweepProgress.model_validate(counted, from_attributes=True)


def progress_of(session: Session, sweeps: list[Sweep]) -> dict[str, SweepProgress]:
    found = sweep_progress(session, [sweep.id for sweep in sweeps])
    return {sweep_id: progress_out(counted) for sweep_id, counted in found.items()}


def sweep_detail(session: Session, sweep: Sweep) -> SweepDetail:
    """The sweep with its progress and one row per point.

    The progress is counted from the rows shown, so both come from one read: counted in a second
    query, a job finishing between the two made a sweep "finished" with a row still running."""
    points = sweep_points(session, sweep)
    rows = [
        SweepRow(
            point=link.point,
            job_id=job.id,
            values=link.values,
            status=job.status,
            metrics=numeric_metrics(job.metrics),
            error=job.error,
        )
        for link, job in points
    ]
    out = sweep_out(sweep, progress_out(SweepCounts.of(Counter(job.status for _, job in points))))
    return SweepDetail(**out.model_dump(), rows=rows)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepDetail,
    responses={
        422: problem(
            "axes that do not fit together, too many points, a bad point "
            "(its index, values and field named), or more estimated work than "
            "LIFRNN_MAX_SWEEP_WORK (the estimate and the limit named)"
        ),
        429: problem(
            "its points do not fit in your queue (max_queued; the room left "
            "named), or your bytes are used up (quota)"
        ),
    },
)
def create(
    request: Request,
    response: Response,
    definition: SweepDefinition,
    session: SessionDep,
    store: StoreDep,
    user: CurrentUser,
) -> SweepDetail:
    """Create one job per point of the axes: each point's spec is the base spec with its
    fields set (dotted names: ``movements.duration``), checked like ``POST /jobs`` before
    anything is created. ``{"sweep": id}`` as an axis value stands for the networks of that
    sweep's jobs (``{"job": child}`` each). The points' estimated work, summed, must stay within
    ``LIFRNN_MAX_SWEEP_WORK``, and the points must fit in your queue (``max_queued``, counting
    the jobs already in it). All jobs or none; they run ``max_running`` at a time
    (docs/service.md: Sweeps)."""
    try:
        check_queue_room(session, user, store.settings.default_max_queued)  # before the work
        points = plan_sweep(session, store.settings, user, definition)
        sweep = create_sweep(
            session,
            user,
            definition,
            points,
            default_max_queued=store.settings.default_max_queued,
            default_max_bytes=store.settings.default_max_bytes,
        )
    except QuotaExceededError as error:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(error)) from None
    except SweepError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid sweep: {error}"
        ) from None
    pool = getattr(request.app.state, "pool", None)
    if pool is not None:
        pool.notify()
    response.headers["Location"] = f"/sweeps/{sweep.id}"
    return sweep_detail(session, sweep)


@router.get("", response_model=SweepList)
def list_(session: SessionDep, user: CurrentUser, page: PageDep) -> SweepList:
    """Your sweeps, newest first, with their progress; ``has_more`` says whether more follow
    this page, and with ``count=true`` ``total`` counts them all (else null)."""
    found, total = list_sweeps(
        session, user.id, limit=page.limit + 1, offset=page.offset, count=page.count
    )
    sweeps = found[: page.limit]
    progress = progress_of(session, sweeps)
    return SweepList(
        items=[sweep_out(sweep, progress[sweep.id]) for sweep in sweeps],
        **page.fields(found, total),
    )


@router.get("/{sweep_id}", response_model=SweepDetail, responses=NOT_FOUND)
def read(sweep: OwnedSweep, session: SessionDep) -> SweepDetail:
    """One sweep: its progress and its table, one row per point (the swept values, the job's
    id, status and top-level numeric metrics)."""
    return sweep_detail(session, sweep)


@router.post("/{sweep_id}/cancel", response_model=SweepDetail, responses=NOT_FOUND)
def cancel(sweep: OwnedSweep, session: SessionDep, user: CurrentUser) -> SweepDetail:
    """Cancel every unfinished job of the sweep (running ones are asked to stop); finished
    jobs stay as they are, so cancelling again does nothing."""
    cancel_sweep(session, sweep, by=on_behalf(user, sweep.owner_id))
    return sweep_detail(session, sweep)


@router.delete(
    "/{sweep_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **NOT_FOUND,
        409: problem(
            "jobs of the sweep are running, or jobs outside it read what they made (named)"
        ),
    },
)
def delete(sweep: OwnedSweep, session: SessionDep, store: StoreDep, user: CurrentUser) -> Response:
    """Delete the sweep and its jobs, with their histories, artifacts and networks (cancel a
    running sweep first)."""
    admin, owner, sweep_id = on_behalf(user, sweep.owner_id), sweep.owner_id, sweep.id
    try:
        delete_sweep(session, sweep, store)
    except SweepBusyError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except DependentsError as error:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"cannot delete sweep {sweep_id}: {error}"
        ) from None
    if admin:  # the jobs' histories went with them: the server log keeps who did it
        logger.warning("sweep %s of user %d deleted by %s", sweep_id, owner, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
