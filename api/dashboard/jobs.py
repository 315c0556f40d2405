"""The dashboard's queue and job pages: the queue (admins: everyone's, with each user's load),
a job, the JSON its page polls (status, curves), and cancelling it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select

from lifrnn.api.dashboard.common import (
    JOB_KINDS,
    PAGE_SIZE,
    PageError,
    VisitorDep,
    api_json,
    as_table,
    call_api,
    flatten,
    is_figure,
    problem,
    read_form,
    render,
)
from lifrnn.api.dashboard.summaries import timing
from lifrnn.store import TERMINAL, Job, Store, User
from lifrnn.store.status import STATUSES

ACTIVE_STATUSES = ("waiting", "queued", "running", "cancelling")

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


# -- the queue -----------------------------------------------------------------------------------


@dataclass
class UserLoad:
    """How many jobs one user has running (or cancelling) and queued."""

    name: str
    running: int = 0
    queued: int = 0


def user_names_and_load(store: Store) -> tuple[dict[int, str], list[UserLoad]]:
    """Every user's name by id, and the running/queued counts of each (admins' view)."""
    with store.session() as session:
        names = {user_id: name for user_id, name in session.execute(select(User.id, User.name))}
        counts = session.execute(
            select(Job.owner_id, Job.status, func.count())
            .where(Job.status.in_(ACTIVE_STATUSES))
            .group_by(Job.owner_id, Job.status)
        ).all()
    load = {user_id: UserLoad(name) for user_id, name in names.items()}
    for owner_id, job_status, count in counts:
        entry = load.setdefault(owner_id, UserLoad(f"user {owner_id}"))
        if job_status == "queued":
            entry.queued += count
        else:
            entry.running += count
    ordered = sorted(load.values(), key=lambda e: (-(e.running + e.queued), e.name))
    return names, ordered


@router.get("/jobs")
async def queue(
    request: Request,
    visitor: VisitorDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
    kind: str | None = None,
    scope: str | None = None,
    filter_: Annotated[str | None, Query(alias="filter", max_length=2000)] = None,
    order_by: Annotated[str | None, Query(max_length=2000)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The queue: your jobs (admins: everyone's, with each user's load), newest first, or
    searched (``filter``, ``order_by``: the API's grammar; a bad one is shown on the page)."""
    everyone = visitor.is_admin and scope != "mine"
    # the page shows how many match and pages by it: ask the API to count them
    params: dict[str, Any] = {"limit": PAGE_SIZE, "offset": offset, "count": "true"}
    if status_:
        params["status"] = status_
    if kind:
        params["kind"] = kind
    if everyone:
        params["all_users"] = "true"
    if filter_:
        params["filter"] = filter_
    if order_by:
        params["order_by"] = order_by
    search_error = ""
    page: dict[str, Any]
    response = await call_api(request, visitor, "GET", "/jobs", params=params)
    if response.status_code == status.HTTP_422_UNPROCESSABLE_CONTENT and (filter_ or order_by):
        search_error = problem(response)
        page = {"items": [], "total": 0, "limit": PAGE_SIZE, "offset": 0}
    elif response.status_code != status.HTTP_200_OK:
        raise PageError(response.status_code, problem(response))
    else:
        page = response.json()
    names: dict[int, str] = {visitor.user.id: visitor.user.name}
    load: list[UserLoad] = []
    if visitor.is_admin:
        names, load = await run_in_threadpool(user_names_and_load, request.app.state.store)
    context = {
        "visitor": visitor,
        "page": page,
        "names": names,
        "load": load,
        "everyone": everyone,
        "filters": {
            "status": status_ or "",
            "kind": kind or "",
            "scope": scope or "",
            "filter": filter_ or "",
            "order_by": order_by or "",
        },
        "search_error": search_error,
        "statuses": STATUSES,
        "kinds": JOB_KINDS,
        "active": any(job["status"] in ACTIVE_STATUSES for job in page["items"]),
        "page_size": PAGE_SIZE,
    }
    return render(request, "queue.html", context)


# -- one job -------------------------------------------------------------------------------------


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request, job_id: str, visitor: VisitorDep, notice: str | None = None
) -> Response:
    """A job: spec, live status, metrics, figures, downloads, networks with their lineage."""
    job = await api_json(request, visitor, f"/jobs/{job_id}")
    events = await api_json(request, visitor, f"/jobs/{job_id}/events", limit=200, last="true")
    networks = [
        await api_json(request, visitor, f"/networks/{network_id}")
        for network_id in job["network_ids"]
    ]
    parent = None
    if job["parent_network_id"]:
        # the network this job starts from; gone (deleted) or not visible: just its id
        answer = await call_api(request, visitor, "GET", f"/networks/{job['parent_network_id']}")
        parent = answer.json() if answer.status_code == status.HTTP_200_OK else None
    owner = visitor.user.name
    if job["owner_id"] != visitor.user.id:  # an admin reading another user's job
        names, _ = await run_in_threadpool(user_names_and_load, request.app.state.store)
        owner = names.get(job["owner_id"], f"user {job['owner_id']}")
    metrics = job["metrics"] or {}
    tables = {name: table for name, value in metrics.items() if (table := as_table(value))}
    context = {
        "visitor": visitor,
        "job": job,
        "owner": owner,
        "parent": parent,
        "events": events,
        "networks": networks,
        "figures": [a for a in job["artifacts"] if is_figure(a)],
        "metrics": flatten({k: v for k, v in metrics.items() if k not in tables}),
        "tables": [(name, *table) for name, table in tables.items()],
        "spec_text": json.dumps(job["spec"], indent=2),
        "terminal": job["status"] in TERMINAL,
        "timing": f"ran {timing(job)}" if job.get("elapsed_seconds") is not None else "",
        "notice": notice,
    }
    return render(request, "job.html", context)


@router.get("/jobs/{job_id}/status.json")
async def job_status(request: Request, job_id: str, visitor: VisitorDep) -> JSONResponse:
    """The job's status, progress and message: what the job page polls for live progress."""
    job = await api_json(request, visitor, f"/jobs/{job_id}")
    body = {
        "status": job["status"],
        "progress": job["progress"],
        "message": job["message"],
        "timing": f"ran {timing(job)}" if job.get("elapsed_seconds") is not None else "",
        "terminal": job["status"] in TERMINAL,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/jobs/{job_id}/series.json")
async def job_series(
    request: Request,
    job_id: str,
    visitor: VisitorDep,
    after: Annotated[int, Query(ge=-1, le=2**31)] = -1,
) -> JSONResponse:
    """The job's curves (``GET /jobs/{id}/series``): what the job page draws and extends."""
    body = await api_json(request, visitor, f"/jobs/{job_id}/series", after=after)
    return JSONResponse(body["series"], headers={"Cache-Control": "no-store"})


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str, visitor: VisitorDep) -> Response:
    """Cancel the job through the API (409 for a finished job shows as a notice)."""
    await read_form(request)
    response = await call_api(request, visitor, "POST", f"/jobs/{job_id}/cancel")
    if response.status_code == status.HTTP_404_NOT_FOUND:
        raise PageError(response.status_code, problem(response))
    notice = "cancel-requested" if response.is_success else "cancel-refused"
    return RedirectResponse(
        f"/ui/jobs/{job_id}?notice={notice}", status_code=status.HTTP_303_SEE_OTHER
    )
