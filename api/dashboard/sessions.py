"""The dashboard's sign-in sessions, and how its pages call the API as the signed-in user.

Signing in with an API token opens a server-side session (:mod:`lifrnn.store.dashboard_sessions`)
bound to that token, and gives the browser a cookie holding only that session's random secret,
signed with HMAC-SHA256 under ``LIFRNN_SESSION_KEY`` (or ``$LIFRNN_HOME/session.key``, made at
first start): the API token itself is never stored in the browser. A cookie whose signature does
not verify is refused without a database query; signing out deletes the session, so a copied
cookie stops working too, and so do rotating, revoking or the expiry of the token that signed in.
Every page request checks the session in the store (no cache): an ended session is refused at
once.

The pages' API requests run in-process (:func:`api_client`), with the signed-in user in the ASGI
scope under :data:`lifrnn.api.deps.DASHBOARD_USER`, which the API's ``current_user`` honours: no
token is needed and none can be forged this way, since an HTTP request has no say over scope keys.
The session's secret rides along under :data:`lifrnn.api.deps.DASHBOARD_SESSION`, so that a long
response (an event stream) can check again that the session is still open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lifrnn.api.deps import DASHBOARD_SESSION, DASHBOARD_USER
from lifrnn.private_files import read_or_create_secret
from lifrnn.settings import Settings
from lifrnn.store import Store, User
from lifrnn.store.dashboard_sessions import (
    close_dashboard_session,
    dashboard_session,
    open_dashboard_session,
    session_expiry,
)
from lifrnn.store.models import utcnow
from lifrnn.store.users import token_holder

logger = logging.getLogger(__name__)

SESSION_COOKIE = "lifrnn_session"
SESSION_KEY_FILE = "session.key"
INTERNAL_BASE = "http://lifrnn.internal"
"""Base URL of the dashboard's in-process API requests (no network is involved)."""
_PURPOSE = b"lifrnn dashboard session\x00"


def load_session_key(settings: Settings) -> bytes:
    """``LIFRNN_SESSION_KEY``, else the key in ``$LIFRNN_HOME/session.key`` (made, mode 600,
    when missing)."""
    configured = settings.session_key.get_secret_value()
    if configured:
        return configured.encode()
    path = settings.home / SESSION_KEY_FILE
    existed = path.is_file()
    key = read_or_create_secret(path).encode()
    if not existed:
        logger.info("made the dashboard's session key %s (mode 600)", path)
    return key


def session_key(request: Request) -> bytes:
    """The app's session key (loaded at start-up; else now, once)."""
    key: bytes | None = getattr(request.app.state, "session_key", None)
    if key is None:
        store: Store = request.app.state.store
        key = request.app.state.session_key = load_session_key(store.settings)
    return key


def _mac(key: bytes, secret: str) -> str:
    digest = hmac.new(key, _PURPOSE + secret.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, secret: str) -> str:
    """The cookie value for session ``secret``: ``secret.signature``."""
    return f"{secret}.{_mac(key, secret)}"


def unsign(key: bytes, value: str) -> str | None:
    """The session secret of a cookie value whose signature verifies under ``key``, else None."""
    secret, dot, signature = value.rpartition(".")
    if not dot or not secret:
        return None
    if not hmac.compare_digest(signature.encode(), _mac(key, secret).encode()):
        return None
    return secret


@dataclass(frozen=True)
class OpenedSession:
    """A dashboard session just opened: its secret (for the cookie) and when it ends."""

    secret: str
    expires_at: datetime


def start_session(store: Store, token: str, lifetime: timedelta) -> OpenedSession:
    """Check API ``token`` and open a session bound to it, lasting ``lifetime`` but never past
    the token's expiry; raises :class:`~lifrnn.store.users.TokenError` saying why not (blocking:
    run in a thread)."""
    with store.session() as session:
        user, record = token_holder(session, token)
        opened = OpenedSession(
            open_dashboard_session(session, record, lifetime),
            session_expiry(record, lifetime, utcnow()),
        )
        name = user.name
        session.commit()
    logger.info("dashboard sign-in of %r", name)
    return opened


def session_user(store: Store, secret: str) -> User | None:
    """The user of the open session ``secret``, detached; None when it ended or expired."""
    with store.session() as session:
        found = dashboard_session(session, secret)
        if found is None:
            return None
        user = found[0]
        session.expunge(user)
        return user


def end_session(store: Store, secret: str) -> bool:
    """Delete session ``secret``; True when it was open (blocking: run in a thread)."""
    with store.session() as session:
        ended = close_dashboard_session(session, secret)
        session.commit()
    return ended


class _AsUser:
    """ASGI wrapper: every request it passes on carries ``user`` under ``DASHBOARD_USER`` (and
    the session's ``secret`` under ``DASHBOARD_SESSION``)."""

    def __init__(self, app: ASGIApp, user: User, secret: str) -> None:
        self.app = app
        self.user = user
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        signed = {DASHBOARD_USER: self.user, DASHBOARD_SESSION: self.secret}
        await self.app({**scope, **signed}, receive, send)


def api_client(app: ASGIApp, user: User, secret: str = "") -> httpx.AsyncClient:
    """An HTTP client of ``app``'s API, in-process, authenticated as ``user`` (no token), for
    the session holding ``secret`` (empty: none to check again)."""
    transport = httpx.ASGITransport(app=_AsUser(app, user, secret))
    return httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE)
