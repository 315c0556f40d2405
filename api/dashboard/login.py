"""The dashboard's sign-in: the front page's redirect, the sign-in form, signing in and out.

Sign-in checks the API token once and opens a server-side session: the browser keeps only the
session's signed secret, in an HTTP-only, ``SameSite=Strict`` cookie scoped to ``/ui`` (``Secure``
when the request came over https, e.g. from a trusted TLS proxy); signing out ends the session.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lifrnn.api.dashboard.common import (
    CSRF_COOKIE,
    _session_secret,
    read_form,
    render,
)
from lifrnn.api.dashboard.sessions import (
    SESSION_COOKIE,
    end_session,
    session_key,
    sign,
    start_session,
)
from lifrnn.store import Store
from lifrnn.store.models import utcnow
from lifrnn.store.users import TokenError

LEGACY_TOKEN_COOKIE = "lifrnn_token"
"""Where sign-in kept the raw API token before sessions: deleted wherever it is still found."""
COOKIE_PATH = "/ui"

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


# -- cookies -------------------------------------------------------------------------------------


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
