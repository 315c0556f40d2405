"""The dashboard's server-side sessions: a signed-in browser holds a random secret (in a signed
cookie, see :mod:`api.dashboard.sessions`); the store keeps only its SHA-256, its user and its
expiry. Signing out deletes the row, so a copied cookie stops working at once; revoking a user
(:func:`lifrnn.store.users.revoke_user`) deletes all of theirs.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lifrnn.store.models import DashboardSession, User, utcnow
from lifrnn.store.users import hash_token

logger = logging.getLogger(__name__)


def open_dashboard_session(
    session: Session, user: User, lifetime: timedelta, not_after: datetime | None = None
) -> str:
    """A new session of ``user`` lasting ``lifetime`` (but not past ``not_after``, e.g. the
    expiry of the token that signed in); returns its secret. Sessions that expired are deleted
    on the way. Caller commits."""
    now = utcnow()
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
    expires_at = now + lifetime
    if not_after is not None:
        expires_at = min(expires_at, not_after)
    secret = secrets.token_urlsafe(32)
    session.add(
        DashboardSession(
            secret_sha256=hash_token(secret), user_id=user.id, created_at=now, expires_at=expires_at
        )
    )
    return secret


def dashboard_session(session: Session, secret: str) -> tuple[User, DashboardSession] | None:
    """The user of the unexpired session holding ``secret``, with its row; None otherwise."""
    row = session.execute(
        select(User, DashboardSession)
        .join(DashboardSession, DashboardSession.user_id == User.id)
        .where(DashboardSession.secret_sha256 == hash_token(secret))
    ).first()
    if row is None:
        return None
    user, record = row
    if record.expires_at <= utcnow():
        return None
    return user, record


def close_dashboard_session(session: Session, secret: str) -> bool:
    """End the session holding ``secret``; True when there was one. Caller commits."""
    result = session.execute(
        delete(DashboardSession).where(DashboardSession.secret_sha256 == hash_token(secret))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
