"""``/jobs``: submit, list, read, cancel and delete jobs; their history, also as a live stream."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, StringConstraints
from sqlalchemy import bindparam, func, outerjoin, select
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from lifrnn.api.deps import (
    COUNT_DESCRIPTION,
    Credential,
    CurrentUser,
    LabelsBody,
    Lapse,
    OwnedJob,
    SessionDep,
    SpecBody,
    StoreDep,
    TokenCache,
    is_uuid_text,
    may_see,
    not_found,
    not_found_response,
    own_job,
    owned_job,
    request_credential,
)
from lifrnn.api.schemas import (
    SERIES_PATTERN,
    CurveOut,
    EventOut,
    JobDetail,
    JobList,
    JobOut,
    RunLabels,
    SeriesOut,
    problem,
    required_body,
)
from lifrnn.store import Artifact, Job, Network, SearchError, User
from lifrnn.store.inputs import InputError, resolve_inputs
from lifrnn.store.jobs import (
    JOB_COLUMNS,
    DependentsError,
    IdempotencyConflictError,
    JobQuery,
    JobRow,
    MetricFilterError,
    QuotaExceededError,
    delete_job,
    job_and_events,
    job_events,
    job_page,
    label_job,
    parse_metric_filter,
    request_cancel,
    reusable_job,
    submit_job,
)
from lifrnn.store.limits import JobLimits, LimitExceededError
from lifrnn.store.series import job_series
from lifrnn.store.status import TERMINAL, Status, TransitionError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = not_found_response("job")
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"


class StreamCounter:
    """Open event streams per user, in this API process."""

    def __init__(self) -> None:
        self._open: dict[int, int] = {}
        self._lock = threading.Lock()

    def open(self, user_id: int, limit: int) -> bool:
        """Count one more stream of ``user_id``; False (nothing counted) at the limit."""
        with self._lock:
            if self._open.get(user_id, 0) >= limit:
                return False
            self._open[user_id] = self._open.get(user_id, 0) + 1
            return True

    def close(self, user_id: int) -> None:
        """One stream of ``user_id`` ended."""
        with self._lock:
            self._open[user_id] = max(0, self._open.get(user_id, 0) - 1)


class CredentialRecheck:
    """An open stream's credential, checked again in the database at once and then at most
    ``every`` seconds apart: the request may have come in on a token this API process had
    cached, so a stream ends within ``LIFRNN_TOKEN_CACHE_SECONDS`` of a revocation anywhere."""

    def __init__(self, credential: Credential, every: float) -> None:
        self.credential = credential
        self.every = max(every, 0.0)
        self._due = time.monotonic()

    def lapse(self, session: Session) -> Lapse | None:
        """Why the credential stopped working, when a check is due and finds it so; else None."""
        now = time.monotonic()
        if now < self._due:
            return None
        self._due = now + self.every
        return self.credential.lapse(session)

    def forget(self, cache: TokenCache) -> None:
        """Drop the lapsed token from this process's cache."""
        if self.credential.token_sha256:
            cache.discard(self.credential.token_sha256)


class CountedStream(EventSourceResponse):
    """An event stream that calls ``on_close`` once it is over, however it ends: finished,
    cut by the client, or cancelled before its first chunk (a generator's own ``finally`` does
    not run when it never started)."""

    def __init__(self, content: Any, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def on_behalf(user: User, owner_id: int) -> str:
    """``"admin NAME"`` when an admin acts on another user's job or sweep, else empty."""
    return f"admin {user.name}" if owner_id != user.id else ""


def as_utc(moment: datetime | None, name: str) -> datetime | None:
    """``moment`` in UTC (naive means UTC); 422 when it cannot be represented."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: not a representable time"
        ) from None


# The read paths select Core rows, not ORM objects: no identity map, no instrumented
# attributes, one query for a job with its artifacts and networks. The response is validated
# once and serialised by pydantic's Rust core in the route's thread (a returned model would be
# validated again, in a second thread hop).

DERIVED_FIELDS = ("elapsed_seconds", "eta_seconds", "params", "flat_metrics")
"""Fields of :class:`JobOut` that :class:`Job`'s properties derive from its columns."""

ARTIFACT_PREFIX = "artifact_"
ARTIFACT_COLUMNS = tuple(
    column.label(ARTIFACT_PREFIX + column.key) for column in Artifact.__table__.columns
)
"""Every column of ``artifacts`` (a new one flows through to :class:`ArtifactOut`)."""


def job_fields(row: JobRow) -> dict[str, Any]:
    """A ``jobs`` row as :class:`JobOut`'s fields: its columns, and what :class:`Job`'s
    properties derive from them (the same code: elapsed and ETA in seconds, flattened keys)."""
    fields = dict(row._mapping)
    for name in DERIVED_FIELDS:
        fields[name] = getattr(Job, name).fget(row)
    return fields


DETAIL = (
    select(
        *JOB_COLUMNS,
        select(func.aggregate_strings(Network.id, ","))
        .where(Network.job_id == Job.id)
        .scalar_subquery()
        .label("network_id_list"),
        *ARTIFACT_COLUMNS,
    )
    .select_from(outerjoin(Job.__table__, Artifact.__table__, Artifact.job_id == Job.id))
    .where(Job.id == bindparam("job_id"))
    .order_by(Artifact.name)
)
"""A job with its network ids, once per artifact (by name; one row without): built once."""


def detail_rows(session: Session, job_id: str) -> list[JobRow]:
    """Job ``job_id`` with its network ids, once per artifact (by name; one row without):
    one query on the session's connection (Core: no ORM bookkeeping). Empty when there is no
    such job."""
    return list(session.connection().execute(DETAIL, {"job_id": job_id}).all())


def detail_of(rows: list[JobRow], reused: bool = False) -> JobDetail:
    """The :class:`JobDetail` of :func:`detail_rows`' rows (at least one)."""
    fields = job_fields(rows[0])
    fields["artifacts"] = [
        {
            **{
                column.key: row._mapping[ARTIFACT_PREFIX + column.key]
                for column in Artifact.__table__.columns
            },
            "url": f"/artifacts/{row._mapping[ARTIFACT_PREFIX + 'id']}",
        }
        for row in rows
        if row._mapping[ARTIFACT_PREFIX + "id"] is not None
    ]
    listed = rows[0].network_id_list
    fields["network_ids"] = listed.split(",") if listed else []
    fields["reused"] = reused
    return JobDetail.model_validate(fields)


def job_detail(session: Session, job_id: str, reused: bool = False) -> JobDetail:
    """Job ``job_id`` (it exists) with its artifacts and networks."""
    return detail_of(detail_rows(session, job_id), reused=reused)


def json_response(
    model: BaseModel, status_code: int = status.HTTP_200_OK, headers: dict[str, str] | None = None
) -> Response:
    """``model`` as a JSON response, serialised by pydantic's Rust core (as FastAPI would,
    without validating the model again)."""
    return Response(
        model.__pydantic_serializer__.to_json(model),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobDetail,
    responses={
        200: {
            "model": JobDetail,
            "description": "the job an earlier request with the same Idempotency-Key created, "
            'or (reuse=true) an earlier succeeded run of the same spec ("reused": true)',
        },
        409: problem("Idempotency-Key reused with another spec"),
        413: problem("body larger than LIFRNN_MAX_BODY_BYTES"),
        415: problem("body is not application/json"),
        422: problem("invalid spec, or an input id that is not yours; the detail names the field"),
        429: problem("too many queued jobs, or bytes (quota)"),
    },
    openapi_extra=required_body("application/json", {"$ref": "#/components/schemas/JobSpec"}),
)
def submit(
    request: Request,
    spec: SpecBody,
    labels: LabelsBody,
    session: SessionDep,
    store: StoreDep,
    user: CurrentUser,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="a repeat with the same key returns the job the first request created",
        ),
    ] = None,
    reuse: Annotated[
        bool,
        Query(
            description="return your succeeded run of the same spec (same inputs, same code "
            "version) instead of running it again"
        ),
    ] = False,
) -> Response:
    """Queue a job; the body is a job spec (``kind`` selects its schema).

    With ``reuse=true`` your latest succeeded job of the same spec (its SHA-256, which covers the
    ids of its inputs) and the same code version is returned instead (200, ``"reused": true``).

    Stored inputs are named by id and must be yours: a file (``POST /files``) or an artifact of
    one of your jobs, a network, or ``{"job": id}`` (the job then waits for that one).
    """
    try:
        inputs = resolve_inputs(session, user, spec)
        earlier = reusable_job(session, user, spec) if reuse else None
        if earlier is not None:
            return json_response(
                job_detail(session, earlier.id, reused=True),
                headers={"Location": f"/jobs/{earlier.id}"},
            )
        JobLimits.for_user(store.settings, user).check(spec.estimate(inputs.facts))
    except (InputError, LimitExceededError) as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid spec: {error}"
        ) from None
    try:
        job, created = submit_job(
            session,
            user,
            spec,
            default_max_queued=store.settings.default_max_queued,
            default_max_bytes=store.settings.default_max_bytes,
            idempotency_key=idempotency_key,
            inputs=inputs,
        )
    except QuotaExceededError as error:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(error)) from None
    except IdempotencyConflictError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if created:
        label_job(session, job, labels.model_dump(exclude_unset=True))
        pool = getattr(request.app.state, "pool", None)
        if pool is not None:
            pool.notify()
    return json_response(
        job_detail(session, job.id),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        headers={"Location": f"/jobs/{job.id}"},
    )


@router.get("", response_model=JobList, responses={422: {"description": "bad filter"}})
def list_(
    session: SessionDep,
    user: CurrentUser,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    created_after: Annotated[datetime | None, Query(description="ISO 8601; naive is UTC")] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601; exclusive")] = None,
    metric: Annotated[
        list[str] | None,
        Query(
            max_length=16,
            description="NAME OP VALUE on a numeric metric, OP one of >= <= > < == !=; "
            "repeat for AND, e.g. metric=r2_min>=0.99&metric=iterations<500",
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        Query(
            alias="filter",
            max_length=2000,
            description="a search over params.KEY, metrics.KEY, tags.KEY, kind, status, name, "
            "created: comparisons = != < <= > >= like, and, or, parentheses, 'strings' and "
            "numbers, e.g. params.n = 200 and metrics.r2_min >= 0.99 (docs/service.md: Search)",
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="FIELD [asc|desc], comma-separated, e.g. metrics.cost asc; then newest "
            "first",
        ),
    ] = None,
    all_users: Annotated[bool, Query(description="admins: every user's jobs")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    count: Annotated[bool, Query(description=COUNT_DESCRIPTION)] = False,
) -> Response:
    """Your jobs, newest first (or in ``order_by``), filtered; ``has_more`` says whether more
    match after this page, and with ``count=true`` ``total`` counts them all (else null).

    A ``filter`` or ``order_by`` that cannot be read is a 422 naming the offending token and its
    position (from 1).
    """
    if all_users and not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins may list every user's jobs")
    try:
        filters = tuple(parse_metric_filter(text) for text in metric or [])
    except MetricFilterError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    query = JobQuery(
        owner_id=None if all_users else user.id,
        kind=kind,
        status=status_,
        created_after=as_utc(created_after, "created_after"),
        created_before=as_utc(created_before, "created_before"),
        metrics=filters,
        filter=filter_ or None,
        order_by=order_by or None,
        limit=limit,
        offset=offset,
        count=count,
    )
    try:
        page = job_page(session, query)
    except SearchError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    listing = {
        "items": [job_fields(row) for row in page.rows],
        "total": page.total,
        "has_more": page.has_more,
        "limit": limit,
        "offset": offset,
    }
    return json_response(JobList.model_validate(listing))


@router.get("/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
def read(job_id: str, session: SessionDep, user: CurrentUser) -> Response:
    """One job, with its artifacts."""
    rows = detail_rows(session, job_id) if is_uuid_text(job_id) else []
    if not rows or not may_see(user, rows[0].owner_id):
        raise not_found("job", job_id)
    return json_response(detail_of(rows))


@router.patch(
    "/{job_id}",
    response_model=JobDetail,
    responses={**NOT_FOUND, 422: problem("a label over its limits")},
)
def relabel(job_id: str, labels: RunLabels, session: SessionDep, user: CurrentUser) -> Response:
    """Change the run's ``name``, ``tags`` (replaced whole) or ``note``: the fields sent are
    set, null clears one, the others stay. Your own jobs only (404 for others')."""
    job = own_job(session, user, job_id)
    label_job(session, job, labels.model_dump(exclude_unset=True))
    return json_response(job_detail(session, job.id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={**NOT_FOUND, 409: problem("the job has finished")},
)
def cancel(job: OwnedJob, session: SessionDep, user: CurrentUser) -> JobOut:
    """Cancel a queued job, or ask a running one to stop (``cancelling``, then ``cancelled``)."""
    try:
        job = request_cancel(session, job, by=on_behalf(user, job.owner_id))
    except TransitionError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"cannot cancel: {error}") from None
    return JobOut.model_validate(job)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **NOT_FOUND,
        409: problem("the job is running, or other jobs read what it made (named)"),
    },
)
def delete(job: OwnedJob, session: SessionDep, store: StoreDep, user: CurrentUser) -> Response:
    """Delete a job with its history, artifacts and networks (cancel a running job first)."""
    admin, owner, job_id = on_behalf(user, job.owner_id), job.owner_id, job.id
    try:
        delete_job(session, job, store)
    except TransitionError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"job {job_id} is {job.status}: cancel it first"
        ) from None
    except DependentsError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if admin:  # the job's history went with it: the server log keeps who did it
        logger.warning("job %s of user %d deleted by %s", job_id, owner, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/events", response_model=list[EventOut], responses=NOT_FOUND)
def events(
    job_id: str,
    session: SessionDep,
    user: CurrentUser,
    after: Annotated[int, Query(ge=0, le=2**62, description="only events after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000, description="at most this many")] = 1000,
    last: Annotated[
        bool, Query(description="the newest `limit` events (still oldest first)")
    ] = False,
) -> list[EventOut]:
    """The job's history: status changes and progress reports, with their times, oldest first.

    Pages of ``limit``: ask again with ``after`` the last id you got until a page is short.
    Progress reports are thinned out once a job has run a minute (one per 10 s, the last kept).
    """
    owned_job(session, user, job_id)
    found = job_events(session, job_id, after, limit=limit, last=last)
    return [EventOut.model_validate(event) for event in found]


@router.get(
    "/{job_id}/events/stream",
    responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}}}},
    response_class=EventSourceResponse,
)
def stream_events(
    job_id: str,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    user: CurrentUser,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**62)] = None,
) -> EventSourceResponse:
    """Server-sent events of the job: its history, live state, and the end.

    - ``status`` and ``progress`` events are the history's entries (as ``GET /events``), each
      with its ``id``: a client that reconnects sends ``Last-Event-ID`` and misses none.
    - ``state`` events (no id) carry the job's live ``status``, ``progress``, ``message``,
      ``elapsed_seconds`` and ``eta_seconds`` whenever they change, also between the entries
      a long job's thinned-out history keeps.
    - ``ping`` every ``LIFRNN_STREAM_PING_SECONDS``; ``end`` (with the final status) after the
      job's last entry; ``reconnect`` when the stream has been open ``LIFRNN_STREAM_MAX_SECONDS``.
    - ``unauthorized`` (``reason``: ``token revoked``, ``token expired`` or ``session ended``,
      and a ``detail``) when the stream's token, checked again at least every
      ``LIFRNN_TOKEN_CACHE_SECONDS``, was revoked, rotated or expired (or its dashboard
      session ended): the stream closes, and opening it again answers 401.
    """
    owned_job(session, user, job_id)
    poll = min(store.settings.poll_seconds, 0.5)
    # the loop below wakes every ``poll``: a check falls due up to that much late
    credential = CredentialRecheck(
        request_credential(request), every=store.settings.token_cache_seconds - poll
    )
    streams: StreamCounter = request.app.state.streams
    if not streams.open(user.id, store.settings.max_streams_per_user):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many open event streams: at most {store.settings.max_streams_per_user} per "
            "user (LIFRNN_MAX_STREAMS_PER_USER); close one first",
        )

    def fetch(after: int) -> tuple[list[EventOut], Job | None, Lapse | None]:
        with store.session() as own:
            lapse = credential.lapse(own)
            if lapse is not None:
                return [], None, lapse
            job, found = job_and_events(own, job_id, after)
            return [EventOut.model_validate(e) for e in found], job, None

    async def generate() -> Any:
        after = last_event_id or 0
        closes = time.monotonic() + store.settings.stream_max_seconds
        shown: tuple[Any, ...] | None = None
        while True:
            found, job, lapse = await run_in_threadpool(fetch, after)
            if lapse is not None:
                credential.forget(request.app.state.token_cache)  # a reconnect answers 401
                yield ServerSentEvent(
                    json.dumps({"reason": lapse.reason, "detail": lapse.detail}),
                    event="unauthorized",
                )
                return
            for event in found:
                after = event.id
                yield ServerSentEvent(event.model_dump_json(), event=event.type, id=str(event.id))
            if job is None or job.status in TERMINAL:
                final = None if job is None else job.status
                yield ServerSentEvent(json.dumps({"status": final}), event="end")
                return
            now = (job.status, job.progress, job.message, job.expected_end_at)
            if now != shown:
                shown = now
                yield ServerSentEvent(live_state(job), event="state")
            if time.monotonic() > closes:  # bounded streams; the client reconnects
                yield ServerSentEvent("{}", event="reconnect")
                return
            await asyncio.sleep(poll)

    return CountedStream(
        generate(),
        on_close=lambda: streams.close(user.id),
        ping=store.settings.stream_ping_seconds,
        ping_message_factory=lambda: ServerSentEvent("{}", event="ping"),
        sep="\n",
        headers={"Cache-Control": "no-cache"},
    )


def live_state(job: Job) -> str:
    """The ``state`` event's JSON: what a progress bar shows of ``job`` now."""
    return json.dumps(
        {
            "status": job.status,
            "progress": job.progress,
            "message": job.message,
            "elapsed_seconds": job.elapsed_seconds,
            "eta_seconds": job.eta_seconds,
        }
    )


@router.get(
    "/{job_id}/series",
    response_model=SeriesOut,
    responses={**NOT_FOUND, 422: {"description": "bad series name"}},
)
def series(
    job_id: str,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[
        list[Annotated[str, StringConstraints(pattern=SERIES_PATTERN)]],
        Query(max_length=16, description="only these curves (repeat the parameter)"),
    ] = [],  # noqa: B006 (FastAPI copies query defaults)
    after: Annotated[
        int, Query(ge=-1, le=2**31 - 1, description="only points after this step (live updates)")
    ] = -1,
) -> SeriesOut:
    """The job's curves by optimiser iteration: ``abscissa`` (SOC), ``cost`` (fits), ``loss``
    (retraining), ... Every step for the first 1,000 points, then every 2nd, 4th, ... step
    (each level 1,000 points), and always the last step; ask again with ``after`` the last
    step you have to follow a running job."""
    owned_job(session, user, job_id)
    curves = job_series(session, job_id, name, after)
    return SeriesOut(
        job_id=job_id,
        series={key: CurveOut(steps=c.steps, values=c.values) for key, c in curves.items()},
    )
