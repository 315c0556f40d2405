"""Pages of the dashboard (``/ui``): sign-in, the queue, a job, networks, a comparison, submit.

The pages are a client of the REST API: every read and write goes to the API's own routes as an
in-process ASGI request carrying the signed-in user's token, so spec validation, quotas and
isolation (another user's job answers 404) are the API's by construction, not a copy. Tokens are
checked by the API's own ``current_user``. Only what admins see beyond the API (user names, the
running/queued load per user) is read from the store directly.

Sign-in keeps the API token in an HTTP-only, ``SameSite=Strict`` cookie scoped to ``/ui``; every
POST form also carries a per-session CSRF token (double-submit: form field == cookie) and is
refused when its ``Origin`` is another site.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from api.deps import current_user
from lifrnn.store import TERMINAL, Job, Store, User

logger = logging.getLogger(__name__)

INTERNAL_BASE = "http://lifrnn.internal"
"""Base URL of the dashboard's in-process API requests (no network is involved)."""


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
STARTS_FROM = {"fit": "fit", "prepare": "prepare", "retrain": "retrain"}
"""``/ui/submit?network=ID&kind=K``: the example each kind of job on a network starts from."""

TOKEN_COOKIE = "lifrnn_token"
CSRF_COOKIE = "lifrnn_csrf"
COOKIE_PATH = "/ui"
PAGE_SIZE = 50
MAX_COMPARE = 8
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
    """No valid token cookie: the visitor is sent to the sign-in page."""

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
TEMPLATES.env.globals["flatten"] = flatten


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
    """The signed-in user, their token (from the cookie) and the session's CSRF token."""

    user: User
    token: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


def _next_url(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


async def signed_in(request: Request) -> Visitor:
    """The visitor whose token cookie names a user; otherwise off to the sign-in page."""
    token = request.cookies.get(TOKEN_COOKIE, "")
    csrf = request.cookies.get(CSRF_COOKIE, "")
    if not token or not csrf:
        raise SignInRequiredError(_next_url(request))
    store: Store = request.app.state.store
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    try:
        user = await current_user(request, store, credentials)
    except HTTPException:
        raise SignInRequiredError(_next_url(request)) from None
    visitor = Visitor(user=user, token=token, csrf=csrf)
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
    """``method path`` on this app's API as ``visitor`` (in-process, no network)."""
    transport = httpx.ASGITransport(app=request.app)
    sent = {"Authorization": f"Bearer {visitor.token}", **(headers or {})}
    async with httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE) as api:
        return await api.request(method, path, params=params, content=content, headers=sent)


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


def set_session_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """An HTTP-only, SameSite=Strict cookie for the dashboard's paths."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
    )


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
    context = {"visitor": None, "next": safe_next(next_url), "csrf": csrf}
    response = render(request, "login.html", context)
    set_session_cookie(response, request, CSRF_COOKIE, csrf)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token against the API's users; on success keep it in an HTTP-only cookie."""
    form = await read_form(request)
    token = form.get("token", "").strip()
    target = safe_next(form.get("next"))
    store: Store = request.app.state.store
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    try:
        if not token:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "paste your API token")
        await current_user(request, store, credentials)
    except HTTPException as error:
        csrf = request.cookies.get(CSRF_COOKIE, "")
        context = {"visitor": None, "next": target, "csrf": csrf, "error": error.detail}
        return render(request, "login.html", context, status_code=status.HTTP_401_UNAUTHORIZED)
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, request, TOKEN_COOKIE, token)
    set_session_cookie(response, request, CSRF_COOKIE, secrets.token_urlsafe(32))  # new session
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the token cookie and the session's CSRF token."""
    await read_form(request)
    response = RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)
    for name in (TOKEN_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict")
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
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The queue: your jobs (admins: everyone's, with each user's load), newest first."""
    everyone = visitor.is_admin and scope != "mine"
    params: dict[str, Any] = {"limit": PAGE_SIZE, "offset": offset}
    if status_:
        params["status"] = status_
    if kind:
        params["kind"] = kind
    if everyone:
        params["all_users"] = "true"
    page = await api_json(request, visitor, "/jobs", **params)
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
        "filters": {"status": status_ or "", "kind": kind or "", "scope": scope or ""},
        "statuses": (
            "waiting",
            "queued",
            "running",
            "cancelling",
            "succeeded",
            "failed",
            "cancelled",
        ),
        "kinds": ("soc", "fit", "prepare", "retrain"),
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
    context = {
        "visitor": visitor,
        "job": job,
        "owner": owner,
        "parent": parent,
        "events": events,
        "networks": networks,
        "figures": [a for a in job["artifacts"] if is_figure(a)],
        "metrics": flatten(job["metrics"] or {}),
        "spec_text": json.dumps(job["spec"], indent=2),
        "terminal": job["status"] in TERMINAL,
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
        "terminal": job["status"] in TERMINAL,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


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


def lineage_forest(networks: list[dict[str, Any]]) -> list[TreeNode]:
    """Networks as trees along ``parent_network_id``: roots newest first, children oldest first.

    A network whose parent is not in the list (deleted, another user's) is a root; so is one on a
    cycle of parent links, which a tree cannot draw.
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
    page = await api_json(request, visitor, "/networks", **params)
    context = {
        "visitor": visitor,
        "forest": lineage_forest(page["items"]),
        "total": page["total"],
        "shown": len(page["items"]),
        "everyone": everyone,
    }
    return render(request, "networks.html", context)


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


@router.get("/compare")
async def compare(
    request: Request,
    visitor: VisitorDep,
    ids: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Selected runs side by side: spec, metrics and figures (same figure name in one row)."""
    chosen = list(dict.fromkeys(ids or []))[:MAX_COMPARE]
    jobs = [await api_json(request, visitor, f"/jobs/{job_id}") for job_id in chosen]
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
    context = {
        "visitor": visitor,
        "jobs": jobs,
        "spec_rows": side_by_side(jobs, "spec"),
        "metric_rows": side_by_side(jobs, "metrics"),
        "figures": figures,
        "max_compare": MAX_COMPARE,
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
    context = {
        "visitor": visitor,
        "examples": list(example_specs()),
        "example": example,
        "spec_text": spec_text,
        "error": error,
        "submission": secrets.token_urlsafe(16),
    }
    return render(request, "submit.html", context, status_code=status_code)


@router.get("/submit")
async def submit_page(
    request: Request,
    visitor: VisitorDep,
    example: str | None = None,
    from_job: Annotated[str | None, Query(alias="from")] = None,
    network: str | None = None,
    kind: Annotated[str, Query(pattern="^(fit|prepare|retrain)$")] = "fit",
) -> Response:
    """The submit form, filled from an example, an earlier job's spec, or to build on a network.

    ``?network=ID&kind=fit|prepare|retrain`` starts from that kind's example with the network's
    id as its ``network``, so the new job records the network as its lineage parent.
    """
    examples = example_specs()
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
        text = json.dumps({"kind": kind, **spec, "network": parent["id"]}, indent=2)
    else:
        chosen = example if example in examples else ("soc" if "soc" in examples else "")
        text = examples.get(chosen, '{\n  "kind": "soc"\n}\n')
        text = await with_network(request, visitor, text, None)
    return submit_form(request, visitor, example=chosen, spec_text=text)


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
    response = await call_api(
        request, visitor, "POST", "/jobs", content=spec_text.encode(), headers=headers
    )
    if response.is_success:
        job_id = response.json()["id"]
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=status.HTTP_303_SEE_OTHER)
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
