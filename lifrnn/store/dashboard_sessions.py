"""The dashboard's server-side sessions: a signed-in browser holds a random secret (in a signed
cookie, see :mod:`lifrnn.api.dashboard.sessions`); the store keeps only its SHA-256, its user, the
API token that opened it and its expiry.

A session lives as long as the token that opened it: rotating or revoking that token deletes the
session with it (``ON DELETE CASCADE``), its expiry ends the session, and a session is refused
whenever its token is gone or expired (also where no foreign keys are enforced, and for rows
from before sessions named their token). Signing out deletes the row, so a copied cookie stops
working at once; revoking a user (:func:`lifrnn.store.users.revoke_user`) deletes all of theirs.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lifrnn.store.models import ApiToken, DashboardSession, User, utcnow
from lifrnn.store.users import hash_token, is_expired

logger = logging.getLogger(__name__)


def session_expiry(token: ApiToken, lifetime: timedelta, now: datetime) -> datetime:
    """When a session opened ``now`` with ``token`` ends: after ``lifetime``, but never past the
    token's own expiry."""
    expires_at = now + lifetime
    if token.expires_at is not None:
        expires_at = min(expires_at, token.expires_at)
    return expires_at


def open_dashboard_session(session: Session, token: ApiToken, lifetime: timedelta) -> str:
    """A new session of ``token``'s user, bound to ``token`` and lasting ``lifetime`` (see
    :func:`session_expiry`); returns its secret. Sessions that expired are deleted on the way.
    Caller commits."""
    now = utcnow()
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
    secret = secrets.token_urlsafe(32)
    session.add(
        DashboardSession(
            secret_sha256=hash_token(secret),
            user_id=token.user_id,
            token_id=token.id,
            created_at=now,
            expires_at=session_expiry(token, lifetime, now),
        )
    )
    return secret


def dashboard_session(session: Session, secret: str) -> tuple[User, DashboardSession] | None:
    """The user of the session holding ``secret``, with its row, while the session and the token
    that opened it are both unexpired; None otherwise (signed out, expired, token rotated,
    revoked or expired, or a session that names no token)."""
    row = session.execute(
        select(User, DashboardSession, ApiToken)
        .join(DashboardSession, DashboardSession.user_id == User.id)
        .join(ApiToken, ApiToken.id == DashboardSession.token_id)
        .where(DashboardSession.secret_sha256 == hash_token(secret))
    ).first()
    if row is None:
        return None
    user, record, token = row
    now = utcnow()
    if record.expires_at <= now or is_expired(token, now):
        return None
    return user, record


def close_dashboard_session(session: Session, secret: str) -> bool:
    """End the session holding ``secret``; True when there was one. Caller commits."""
    result = session.execute(
        delete(DashboardSession).where(DashboardSession.secret_sha256 == hash_token(secret))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
