"""Pages of the dashboard (``/ui``): sign-in, the queue, a job, networks, a comparison, submit.

The pages are a client of the REST API: every read and write goes to the API's own routes as an
in-process ASGI request made as the signed-in user (:mod:`api.dashboard.sessions`), so spec
validation, quotas and isolation (another user's job answers 404) are the API's by construction,
not a copy. Only what admins see beyond the API (user names, the running/queued load per user) is
read from the store directly.

Sign-in checks the API token once and opens a server-side session: the browser keeps only the
session's signed secret, in an HTTP-only, ``SameSite=Strict`` cookie scoped to ``/ui`` (``Secure``
when the request came over https, e.g. from a trusted TLS proxy); signing out ends the session.
Every POST form also carries a per-browser CSRF token (double-submit: form field == cookie) and is
refused when its ``Origin`` is another site.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from api.dashboard.sessions import (
    INTERNAL_BASE,
    SESSION_COOKIE,
    api_client,
    end_session,
    session_key,
    session_user,
    sign,
    start_session,
    unsign,
)
from api.dashboard.summaries import key_metrics, nlb_table, spec_summary, timing
from lifrnn.spec_docs import spec_fields, summary
from lifrnn.store import TERMINAL, Job, Store, User
from lifrnn.store.models import utcnow
from lifrnn.store.status import STATUSES
from lifrnn.store.users import TokenError

logger = logging.getLogger(__name__)


class _QuietInternalRequests(logging.Filter):
    """Drops httpx's log line of each in-process API request (the page request is logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return INTERNAL_BASE not in record.getMessage()


logging.getLogger("httpx").addFilter(_QuietInternalRequests())

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
EXAMPLES = importlib.resources.files("lifrnn.examples")
"""Example specs offered by the submit form (``lifrnn/examples/*.json``, shipped in the package)."""
STARTS_FROM = {"fit": "fit", "prepare": "prepare", "retrain": "retrain", "fit_data": "fit_data"}
"""``/ui/submit?network=ID&kind=K``: the example each kind of job on a network starts from."""
SWEEP_AXIS = "seed"
"""``/ui/submit?network=ID&kind=K&sweep=1``: the field the offered sweep varies, to edit (every
kind on a network has a ``seed``: a sweep over it tells a result from the draw's luck)."""
SWEEP_WAYS = ("grid", "zip", "random")
JOB_KINDS = ("soc", "fit", "prepare", "retrain", "fit_data")

LEGACY_TOKEN_COOKIE = "lifrnn_token"
"""Where sign-in kept the raw API token before sessions: deleted wherever it is still found."""
CSRF_COOKIE = "lifrnn_csrf"
COOKIE_PATH = "/ui"
PAGE_SIZE = 50
MAX_COMPARE = 20
ACTIVE_STATUSES = ("waiting", "queued", "running", "cancelling")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


# -- errors shown as pages -----------------------------------------------------------------------


class SignInRequiredError(Exception):
    """No open session: the visitor is sent to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in first")
        self.next_url = next_url


class PageError(Exception):
    """An API error to show as a page with the same status (404 for another user's job)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def install_error_pages(app: FastAPI) -> None:
    """Register the handlers that turn the dashboard's exceptions into pages."""

    async def sign_in(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequiredError)
        if request.url.path.endswith(".json"):  # what a page's script polls: no redirect to HTML
            return JSONResponse(
                {"detail": "the dashboard session ended: sign in again"},
                status_code=status.HTTP_401_UNAUTHORIZED,
                headers={"Cache-Control": "no-store"},
            )
        target = f"/ui/login?next={quote(error.next_url, safe='')}"
        return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)

    async def page_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, PageError)
        visitor = getattr(request.state, "visitor", None)
        return render(
            request,
            "error.html",
            {"visitor": visitor, "code": error.status_code, "detail": error.detail},
            status_code=error.status_code,
        )

    app.add_exception_handler(SignInRequiredError, sign_in)
    app.add_exception_handler(PageError, page_error)


# -- rendering -----------------------------------------------------------------------------------


def short_id(value: str | None) -> str:
    """The first 8 characters of an id (enough to tell jobs apart on a page)."""
    return (value or "")[:8]


def format_time(value: str | datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) of an ISO time; empty for None."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(start: str | None, end: str | None) -> str:
    """Time from ``start`` to ``end`` as ``1h02m``, ``3m05s`` or ``4.2 s``; empty if unknown."""
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def format_value(value: Any) -> str:
    """A metric or spec value, compact: 4 significant digits, short lists inline."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) <= 8 and all(not isinstance(v, list | dict) for v in value):
            return "[" + ", ".join(format_value(v) for v in value) + "]"
        return f"[{len(value)} values]"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def as_table(value: Any) -> tuple[list[str], list[list[Any]]] | None:
    """A metric that is a list of records with the same keys (prepare's controller x movement
    results) as (columns, rows); None for anything else."""
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        return None
    columns = list(value[0])
    if any(list(record) != columns for record in value):
        return None
    return columns, [[record[c] for c in columns] for record in value]


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as ``(dotted.name, leaf)`` pairs, in key order."""
    if isinstance(value, dict):
        pairs: list[tuple[str, Any]] = []
        for key, item in value.items():
            pairs.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return pairs
    return [(prefix, value)]


TEMPLATES.env.filters["short"] = short_id
TEMPLATES.env.filters["when"] = format_time
TEMPLATES.env.filters["value"] = format_value
TEMPLATES.env.globals["duration"] = duration
TEMPLATES.env.filters["spec_summary"] = spec_summary
TEMPLATES.env.filters["key_metrics"] = key_metrics
TEMPLATES.env.filters["timing"] = timing
TEMPLATES.env.globals["flatten"] = flatten
TEMPLATES.env.globals["nlb_table"] = nlb_table


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """Template ``name`` as an HTML response with the dashboard's security headers."""
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


# -- the signed-in visitor and the API client ----------------------------------------------------


@dataclass
class Visitor:
    """The signed-in user, the browser's CSRF token and its session's secret."""

    user: User
    csrf: str
    session_secret: str = ""

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


def _next_url(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


def _session_secret(request: Request) -> str | None:
    """The secret of the session cookie, if its signature verifies."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return unsign(session_key(request), cookie) if cookie else None


async def signed_in(request: Request) -> Visitor:
    """The visitor whose session cookie names an open session; otherwise off to sign in."""
    secret = _session_secret(request)
    csrf = request.cookies.get(CSRF_COOKIE, "")
    if secret is None or not csrf:
        raise SignInRequiredError(_next_url(request))
    store: Store = request.app.state.store
    user = await run_in_threadpool(session_user, store, secret)
    if user is None:  # signed out, expired, its token rotated, revoked or expired
        raise SignInRequiredError(_next_url(request))
    visitor = Visitor(user=user, csrf=csrf, session_secret=secret)
    request.state.visitor = visitor
    return visitor


VisitorDep = Annotated[Visitor, Depends(signed_in)]


async def call_api(
    request: Request,
    visitor: Visitor,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | list[tuple[str, Any]] | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``method path`` on this app's API as ``visitor`` (in-process, no network, no token)."""
    async with api_client(request.app, visitor.user, visitor.session_secret) as api:
        return await api.request(method, path, params=params, content=content, headers=headers)


def problem(response: httpx.Response) -> str:
    """The ``detail`` of an API error response (its text if it is not a problem document)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500]
    if isinstance(detail, list):  # FastAPI's own 422 for query parameters
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}" for item in detail
        )
    return str(detail)


async def api_json(request: Request, visitor: Visitor, path: str, **params: Any) -> Any:
    """GET ``path`` on the API as JSON; an API error becomes a page with its status."""
    response = await call_api(request, visitor, "GET", path, params=params or None)
    if response.status_code != status.HTTP_200_OK:
        raise PageError(response.status_code, problem(response))
    return response.json()


# -- CSRF ----------------------------------------------------------------------------------------


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST, after the CSRF and same-origin checks (403 otherwise)."""
    origin = request.headers.get("origin")
    # host only, not the scheme: behind a TLS-terminating proxy the app itself sees http
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise PageError(status.HTTP_403_FORBIDDEN, "cross-site form refused")
    body = (await request.body()).decode("utf-8", errors="replace")
    form = {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(form.get("csrf", ""), cookie):
        raise PageError(
            status.HTTP_403_FORBIDDEN,
            "the form's CSRF token does not match this session: reload the page and try again",
        )
    return form


def set_session_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None = None
) -> None:
    """An HTTP-only, SameSite=Strict cookie for the dashboard's paths; ``Secure`` when the
    request came over https (directly, or from a proxy in ``LIFRNN_FORWARDED_ALLOW_IPS``)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
    )


def forget_cookies(response: Response, *names: str) -> None:
    """Tell the browser to drop the dashboard's cookies ``names``."""
    for name in names:
        response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict")


def safe_next(target: str | None) -> str:
    """``target`` if it is a dashboard path (no open redirects), else the queue."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/jobs"


# -- sign-in -------------------------------------------------------------------------------------


@router.get("")
async def home() -> RedirectResponse:
    """The queue is the dashboard's front page."""
    return RedirectResponse("/ui/jobs", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/login")
async def login_page(
    request: Request, next_url: Annotated[str, Query(alias="next")] = "/ui/jobs"
) -> Response:
    """The sign-in form (paste an API token)."""
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", login_context(request, next_url, csrf))
    set_session_cookie(response, request, CSRF_COOKIE, csrf)
    return response


def login_context(
    request: Request, next_url: str | None, csrf: str, error: str | None = None
) -> dict[str, Any]:
    """What the sign-in page shows."""
    hours = request.app.state.store.settings.dashboard_session_hours
    context: dict[str, Any] = {
        "visitor": None,
        "next": safe_next(next_url),
        "csrf": csrf,
        "session_hours": f"{hours:g}",
    }
    if error:
        context["error"] = error
    return context


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token once; on success open a session bound to it and give the browser its
    signed cookie (the token itself is not kept)."""
    form = await read_form(request)
    token = form.get("token", "").strip()
    store: Store = request.app.state.store
    lifetime = timedelta(hours=store.settings.dashboard_session_hours)
    try:
        if not token:
            raise TokenError("paste your API token")
        # bound to the token: it ends when the token is rotated, revoked or expires
        opened = await run_in_threadpool(start_session, store, token, lifetime)
    except TokenError as error:
        csrf = request.cookies.get(CSRF_COOKIE, "")
        context = login_context(request, form.get("next"), csrf, str(error))
        return render(request, "login.html", context, status_code=status.HTTP_401_UNAUTHORIZED)
    response = RedirectResponse(safe_next(form.get("next")), status_code=status.HTTP_303_SEE_OTHER)
    max_age = int((opened.expires_at - utcnow()).total_seconds())
    cookie = sign(session_key(request), opened.secret)
    set_session_cookie(response, request, SESSION_COOKIE, cookie, max_age)
    set_session_cookie(response, request, CSRF_COOKIE, secrets.token_urlsafe(32))  # new session
    forget_cookies(response, LEGACY_TOKEN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its cookie stops working, wherever it was copied) and forget the
    cookies."""
    await read_form(request)
    secret = _session_secret(request)
    if secret is not None:
        await run_in_threadpool(end_session, request.app.state.store, secret)
    response = RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)
    forget_cookies(response, SESSION_COOKIE, CSRF_COOKIE, LEGACY_TOKEN_COOKIE)
    return response


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


def is_figure(artifact: dict[str, Any]) -> bool:
    """True for the PNG figures a job wrote (shown inline)."""
    return bool(artifact["media_type"] == "image/png")


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


@router.get("/artifacts/{artifact_id}")
async def artifact(
    request: Request, artifact_id: str, visitor: VisitorDep, download: bool = False
) -> Response:
    """A job's file, from the API's ``/artifacts``; figures inline, ``?download=1`` saves it."""
    response = await call_api(request, visitor, "GET", f"/artifacts/{artifact_id}")
    if response.status_code != status.HTTP_200_OK:
        raise PageError(response.status_code, problem(response))
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    }
    if "x-content-sha256" in response.headers:
        headers["X-Content-SHA256"] = response.headers["x-content-sha256"]
    disposition = response.headers.get("content-disposition", "")
    if download and disposition:
        headers["Content-Disposition"] = disposition
    elif disposition:
        headers["Content-Disposition"] = disposition.replace("attachment", "inline", 1)
    return Response(
        response.content,
        media_type=response.headers.get("content-type", "application/octet-stream"),
        headers=headers,
    )


# -- networks and their lineage ------------------------------------------------------------------


@dataclass
class TreeNode:
    """A network and the networks made from it."""

    network: dict[str, Any]
    children: list[TreeNode] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Jobs on this network that make no network of their own (prepare), oldest first."""


def lineage_forest(
    networks: list[dict[str, Any]], runs: list[dict[str, Any]] | None = None
) -> list[TreeNode]:
    """Networks as trees along ``parent_network_id``: roots newest first, children oldest first;
    each of ``runs`` (jobs that make no network: prepare) hangs under the network it ran on.

    A network whose parent is not in the list (deleted, another user's) is a root; so is one on a
    cycle of parent links, which a tree cannot draw. A run whose network is not shown is left out.
    """
    by_id = {network["id"]: network for network in networks}

    def on_cycle(network_id: str) -> bool:
        seen = {network_id}
        current: str | None = by_id[network_id].get("parent_network_id")
        while current is not None and current in by_id:
            if current in seen:
                return True
            seen.add(current)
            current = by_id[current].get("parent_network_id")
        return False

    nodes = {network_id: TreeNode(network) for network_id, network in by_id.items()}
    roots: list[TreeNode] = []
    for network in sorted(networks, key=lambda n: (n["created_at"], n["id"])):
        node = nodes[network["id"]]
        parent = network.get("parent_network_id")
        if parent in nodes and not on_cycle(network["id"]):
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    for run in sorted(runs or [], key=lambda job: (job["queued_at"], job["id"])):
        if run.get("parent_network_id") in nodes:
            nodes[run["parent_network_id"]].runs.append(run)
    roots.reverse()
    return roots


@router.get("/networks")
async def networks_page(
    request: Request, visitor: VisitorDep, scope: str | None = None
) -> Response:
    """Trained networks, drawn as lineage trees (SOC -> fit -> prepare / retrain)."""
    everyone = visitor.is_admin and scope == "all"
    params: dict[str, Any] = {"limit": 1000}
    if everyone:
        params["all_users"] = "true"
    page = await api_json(request, visitor, "/networks", count="true", **params)
    runs = await api_json(request, visitor, "/jobs", kind="prepare", **params)
    context = {
        "visitor": visitor,
        "forest": lineage_forest(page["items"], runs["items"]),
        "total": page["total"],
        "shown": len(page["items"]),
        "everyone": everyone,
    }
    return render(request, "networks.html", context)


# -- sweeps --------------------------------------------------------------------------------------


@router.get("/sweeps")
async def sweeps_page(
    request: Request, visitor: VisitorDep, offset: Annotated[int, Query(ge=0)] = 0
) -> Response:
    """Your sweeps, newest first, with how far each is."""
    page = await api_json(request, visitor, "/sweeps", limit=PAGE_SIZE, offset=offset, count="true")
    context = {"visitor": visitor, "page": page, "page_size": PAGE_SIZE}
    return render(request, "sweeps.html", context)


def sweep_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The swept fields and the metrics of a sweep's table, each in first-seen order."""
    fields: list[str] = []
    metrics: list[str] = []
    for row in rows:
        fields.extend(name for name in row["values"] if name not in fields)
        metrics.extend(name for name in row["metrics"] if name not in metrics)
    return fields, metrics


@router.get("/sweeps/{sweep_id}")
async def sweep_page(request: Request, sweep_id: str, visitor: VisitorDep) -> Response:
    """A sweep: its axes, progress and one row per point (values, status, metrics); its
    succeeded jobs open in the compare view."""
    sweep = await api_json(request, visitor, f"/sweeps/{sweep_id}")
    fields, metrics = sweep_columns(sweep["rows"])
    succeeded = [row["job_id"] for row in sweep["rows"] if row["status"] == "succeeded"]
    context = {
        "visitor": visitor,
        "sweep": sweep,
        "fields": fields,
        "metrics": metrics,
        "compare_ids": succeeded[:MAX_COMPARE],
        "max_compare": MAX_COMPARE,
        "active": sweep["progress"]["finished"] < sweep["progress"]["total"],
        "base_spec": json.dumps(sweep["spec"], indent=2),
        "axes": json.dumps(sweep["axes"], indent=2),
    }
    return render(request, "sweep.html", context)


@router.post("/sweeps/{sweep_id}/cancel")
async def cancel_sweep(request: Request, sweep_id: str, visitor: VisitorDep) -> Response:
    """Cancel the sweep's unfinished jobs through the API."""
    await read_form(request)
    response = await call_api(request, visitor, "POST", f"/sweeps/{sweep_id}/cancel")
    if not response.is_success:
        raise PageError(response.status_code, problem(response))
    return RedirectResponse(f"/ui/sweeps/{sweep_id}", status_code=status.HTTP_303_SEE_OTHER)


# -- comparing runs ------------------------------------------------------------------------------


def side_by_side(jobs: list[dict[str, Any]], key: str) -> list[tuple[str, list[Any], bool]]:
    """Rows ``(name, value of each job, values differ)`` over the union of ``key``'s fields."""
    columns = [dict(flatten(job.get(key) or {})) for job in jobs]
    names: list[str] = []
    for column in columns:
        names.extend(name for name in column if name not in names)
    rows = []
    for name in names:
        values = [column.get(name) for column in columns]
        rows.append((name, values, any(v != values[0] for v in values[1:])))
    return rows


def is_plottable(value: Any) -> bool:
    """A finite number (not a bool): what a scatter plot can place."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def job_label(job: dict[str, Any]) -> str:
    """How a job is named in a legend: its name if it has one, else its short id."""
    return str(job.get("name") or short_id(job["id"]))


def scatter_data(
    jobs: list[dict[str, Any]],
    spec_rows: list[tuple[str, list[Any], bool]],
    metric_rows: list[tuple[str, list[Any], bool]],
) -> dict[str, Any]:
    """What the compare view's metric-vs-parameter scatter plots: the numeric parameters (those
    that differ first) and numeric metrics of each job, read from the side-by-side rows, as JSON
    for the page's script."""
    numeric_params = [row for row in spec_rows if any(is_plottable(v) for v in row[1])]
    numeric_params.sort(key=lambda row: not row[2])  # stable: the varied ones first
    numeric_metrics = [row for row in metric_rows if any(is_plottable(v) for v in row[1])]

    def plottable(rows: list[tuple[str, list[Any], bool]], index: int) -> dict[str, Any]:
        return {name: values[index] for name, values, _ in rows if is_plottable(values[index])}

    return {
        "params": [name for name, _, _ in numeric_params],
        "metrics": [name for name, _, _ in numeric_metrics],
        "jobs": [
            {
                "id": job["id"],
                "label": job_label(job),
                "params": plottable(numeric_params, index),
                "metrics": plottable(numeric_metrics, index),
            }
            for index, job in enumerate(jobs)
        ],
    }


@router.get("/compare")
async def compare(
    request: Request,
    visitor: VisitorDep,
    ids: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Selected runs side by side: the parameters that differ (the rest folded away), metrics,
    overlaid curves, a metric-vs-parameter scatter and figures (same figure name in one row)."""
    chosen = list(dict.fromkeys(ids or []))
    if len(chosen) > MAX_COMPARE:
        raise PageError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"compare takes at most {MAX_COMPARE} jobs; {len(chosen)} were ticked",
        )
    jobs = list(
        await asyncio.gather(*(api_json(request, visitor, f"/jobs/{job_id}") for job_id in chosen))
    )
    figure_names: list[str] = []
    for job in jobs:
        figure_names.extend(
            a["name"] for a in job["artifacts"] if is_figure(a) and a["name"] not in figure_names
        )
    figures = [
        (
            name,
            [next((a for a in job["artifacts"] if a["name"] == name), None) for job in jobs],
        )
        for name in figure_names
    ]
    spec_rows = side_by_side(jobs, "spec")
    metric_rows = side_by_side(jobs, "metrics")
    context = {
        "visitor": visitor,
        "jobs": jobs,
        "spec_differs": [row for row in spec_rows if row[2]],
        "spec_same": [row for row in spec_rows if not row[2]],
        "metric_rows": metric_rows,
        "figures": figures,
        "max_compare": MAX_COMPARE,
        "plot": {
            "series": [
                {
                    "id": job["id"],
                    "label": job_label(job),
                    "url": f"/ui/jobs/{job['id']}/series.json",
                }
                for job in jobs
            ],
            **scatter_data(jobs, spec_rows, metric_rows),
        },
    }
    return render(request, "compare.html", context)


# -- submitting a job ----------------------------------------------------------------------------


def example_specs() -> dict[str, str]:
    """The example specs by file stem, as JSON text."""
    found = {
        entry.name.removesuffix(".json"): entry.read_text()
        for entry in EXAMPLES.iterdir()
        if entry.name.endswith(".json")
    }
    return dict(sorted(found.items()))


async def with_network(
    request: Request, visitor: Visitor, text: str, network_id: str | None
) -> str:
    """An example's text with its ``network`` naming ``network_id``, else your newest network
    that fits it (fitted for prepare and retrain); examples name local files, which only
    ``lifrnn run`` reads."""
    try:
        spec = json.loads(text)
    except ValueError:
        return text
    if not isinstance(spec, dict) or not isinstance(spec.get("network"), str):
        return text
    if network_id is None:
        kinds = ("fit", "retrain") if spec.get("kind") in ("prepare", "retrain") else (None,)
        for kind in kinds:
            params = {"limit": 1, **({"kind": kind} if kind else {})}
            page = await api_json(request, visitor, "/networks", **params)
            if page["items"]:
                network_id = page["items"][0]["id"]
                break
    spec["network"] = network_id or "<the id of one of your networks: see Networks>"
    if "data" in spec:  # the example names a local file; the service takes an upload's id
        spec["data"] = "<the id of a recording you uploaded: `lifrnn upload FILE.nwb`>"
    return json.dumps(spec, indent=2)


def submit_form(
    request: Request,
    visitor: Visitor,
    *,
    example: str,
    spec_text: str,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    kind, is_sweep = spec_kind(spec_text)
    context = {
        "visitor": visitor,
        "examples": list(example_specs()),
        "example": example,
        "spec_text": spec_text,
        "error": error,
        "submission": secrets.token_urlsafe(16),
        "kind": kind,
        "is_sweep": is_sweep,
        "kind_summary": summary(kind) if kind else "",
        "fields": spec_fields(kind) if kind else [],
    }
    return render(request, "submit.html", context, status_code=status_code)


def spec_kind(text: str) -> tuple[str | None, bool]:
    """The job kind a form's JSON is about (a sweep's: its base spec's), and whether it is a
    sweep definition; ``(None, False)`` when it names no known kind."""
    try:
        spec = json.loads(text)
    except ValueError:
        return None, False
    is_sweep = is_sweep_definition(spec)
    if is_sweep:
        spec = spec["spec"]
    kind = spec.get("kind") if isinstance(spec, dict) else None
    return (kind if kind in JOB_KINDS else None), is_sweep


def is_sweep_definition(value: Any) -> bool:
    """A ``POST /sweeps`` body (a base ``spec`` and axes) rather than a job spec."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("spec"), dict)
        and any(way in value for way in SWEEP_WAYS)
    )


@router.get("/submit")
async def submit_page(
    request: Request,
    visitor: VisitorDep,
    example: str | None = None,
    from_job: Annotated[str | None, Query(alias="from")] = None,
    network: str | None = None,
    kind: Annotated[str, Query(pattern="^(fit|prepare|retrain)$")] = "fit",
    sweep: bool = False,
) -> Response:
    """The submit form, filled from an example, an earlier job's spec, or to build on a network.

    ``?network=ID&kind=fit|prepare|retrain`` starts from that kind's example with the network's
    id as its ``network``, so the new job records the network as its lineage parent; with
    ``&sweep=1`` the form holds a sweep over that spec (``POST /sweeps``) with a first axis to
    edit.
    """
    examples = example_specs()
    error = None
    if from_job:
        job = await api_json(request, visitor, f"/jobs/{from_job}")
        text = json.dumps(job["spec"], indent=2)
        chosen = ""
    elif network:
        parent = await api_json(request, visitor, f"/networks/{network}")
        chosen = STARTS_FROM[kind]
        try:
            spec = json.loads(examples.get(chosen, "{}"))
        except ValueError:
            spec = {}
        spec = {"kind": kind, **spec, "network": parent["id"]}
        if sweep:
            spec = {"spec": spec, "grid": {SWEEP_AXIS: [0, 1, 2]}}
        text = json.dumps(spec, indent=2)
    else:
        name = (example or "").removesuffix(".json")  # ?example=fit.json names it too
        chosen = name if name in examples else ("soc" if "soc" in examples else "")
        if name and name not in examples:
            error = (
                f"no example named {example!r} (there are: {', '.join(examples)}); showing {chosen}"
            )
        text = examples.get(chosen, '{\n  "kind": "soc"\n}\n')
        text = await with_network(request, visitor, text, None)
    return submit_form(request, visitor, example=chosen, spec_text=text, error=error)


@router.post("/submit")
async def submit(request: Request, visitor: VisitorDep) -> Response:
    """POST the textarea to the API's ``POST /jobs``; its 4xx detail is shown on the form."""
    form = await read_form(request)
    spec_text = form.get("spec", "")
    example = form.get("example", "")
    headers = {"Content-Type": "application/json"}
    if form.get("submission"):
        # a double click or a re-sent form returns the job the first click made
        headers["Idempotency-Key"] = form["submission"]
    try:
        is_sweep = is_sweep_definition(json.loads(spec_text))
    except ValueError:
        is_sweep = False  # the API names what is wrong with the JSON
    target = "/sweeps" if is_sweep else "/jobs"
    response = await call_api(
        request, visitor, "POST", target, content=spec_text.encode(), headers=headers
    )
    if response.is_success:
        made = response.json()["id"]
        page = f"/ui/sweeps/{made}" if is_sweep else f"/ui/jobs/{made}"
        return RedirectResponse(page, status_code=status.HTTP_303_SEE_OTHER)
    detail = problem(response)
    if response.status_code == status.HTTP_409_CONFLICT:
        detail += " (this form was sent before with another spec: submit again for a new job)"
    return submit_form(
        request,
        visitor,
        example=example,
        spec_text=spec_text,
        error=detail,
        status_code=response.status_code,
    )
