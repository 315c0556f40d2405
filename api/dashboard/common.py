"""What the dashboard's pages share: templates and their filters, the error pages, the signed-in
visitor, the in-process API client, and the CSRF check of POST forms.

The page modules (:mod:`lifrnn.api.dashboard.login`, :mod:`.jobs`,
:mod:`.networks`, :mod:`.sweeps`, :mod:`.submit`)
import from here; this module registers no routes.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from fastapi import Depends, FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lifrnn.api.dashboard.sessions import (
    INTERNAL_BASE,
    SESSION_COOKIE,
    api_client,
    session_key,
    session_user,
    unsign,
)
from lifrnn.api.dashboard.summaries import key_metrics, nlb_table, spec_summary, timing
from lifrnn.store import Store, User

logger = logging.getLogger(__name__)


class _QuietInternalRequests(logging.Filter):
    """Drops httpx's log line of each in-process API request (the page request is logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return INTERNAL_BASE not in record.getMessage()


logging.getLogger("httpx").addFilter(_QuietInternalRequests())

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
JOB_KINDS = ("soc", "fit", "prepare", "retrain", "fit_data", "simulate_spiking")

CSRF_COOKIE = "lifrnn_csrf"
PAGE_SIZE = 50
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


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


def is_figure(artifact: dict[str, Any]) -> bool:
    """True for the PNG figures a job wrote (shown inline)."""
    return bool(artifact["media_type"] == "image/png")


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
