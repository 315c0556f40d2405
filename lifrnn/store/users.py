"""Users and their API tokens: tokens are random, shown once, and stored as SHA-256 only.

A token may expire (``expires_in``: ``90d``, ``12h``, ``30m``); an expired token is refused and
said to be expired. :func:`rotate_token` swaps a token for a new one; :func:`revoke_user` deletes
every token and dashboard session of a user (their jobs and files stay). A dashboard session is
bound to the token that opened it and ends with it (see :mod:`lifrnn.store.dashboard_sessions`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lifrnn.private_files import write_private_text
from lifrnn.store.models import ApiToken, DashboardSession, User, utcnow

logger = logging.getLogger(__name__)

LOCAL_USER = "local"
"""The user the embedded default creates at first start (and ``lifrnn run`` records under)."""


class UserExistsError(ValueError):
    """A user of that name exists already."""


class UnknownUserError(LookupError):
    """No user of that name."""


class TokenError(Exception):
    """A token that cannot be used; the message says why."""


class UnknownTokenError(TokenError):
    """No such token (never issued, rotated away, or revoked)."""


class TokenExpiredError(TokenError):
    """The token expired."""


_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
MAX_LIFETIME = timedelta(days=100 * 366)


def parse_expires_in(text: str) -> timedelta:
    """A token lifetime from ``90d`` (days), ``12h`` (hours) or ``30m`` (minutes); ValueError
    otherwise (zero, negative, over a century, or another unit)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expires-in {text!r}: expected a number and a unit, like 90d, 12h or 30m")
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0 or amount > MAX_LIFETIME / timedelta(**{_UNITS[unit]: 1}):
        raise ValueError(f"expires-in {text!r}: must be more than 0 and at most 100 years")
    return timedelta(**{_UNITS[unit]: amount})


def hash_token(token: str) -> str:
    """SHA-256 (hex) of a token's text: what the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, user: User, label: str = "", expires_in: timedelta | None = None
) -> str:
    """A new token for ``user`` (expiring after ``expires_in``, else never); only its hash is
    stored, so this is the one chance to see it. Caller commits."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ApiToken(
            user_id=user.id,
            token_sha256=hash_token(token),
            label=label[:64],
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
    )
    return token


def create_user(
    session: Session,
    name: str,
    *,
    admin: bool = False,
    max_queued: int | None = None,
    max_running: int | None = None,
    max_bytes: int | None = None,
    expires_in: timedelta | None = None,
) -> tuple[User, str]:
    """Create user ``name`` with a first token (expiring after ``expires_in``, else never);
    returns (user, token). Caller commits."""
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise UserExistsError(f"a user named {name!r} exists already")
    user = User(
        name=name,
        role="admin" if admin else "user",
        max_queued=max_queued,
        max_running=max_running,
        max_bytes=max_bytes,
    )
    session.add(user)
    session.flush()
    return user, issue_token(session, user, label="created with the user", expires_in=expires_in)


def is_expired(token: ApiToken, now: datetime | None = None) -> bool:
    """True once ``token``'s expiry has passed."""
    return token.expires_at is not None and token.expires_at <= (now or utcnow())


def token_holder(session: Session, token: str) -> tuple[User, ApiToken]:
    """The user holding ``token`` and the token's row; raises :class:`UnknownTokenError` or
    :class:`TokenExpiredError` (whose message says when, and what to do)."""
    return token_holder_by_hash(session, hash_token(token))


def token_holder_by_hash(session: Session, token_sha256: str) -> tuple[User, ApiToken]:
    """:func:`token_holder` of the token whose SHA-256 is ``token_sha256`` (what a server keeps
    of a request's token, to check it again while a long response lasts)."""
    row = session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_sha256 == token_sha256)
    ).first()
    if row is None:
        raise UnknownTokenError("unknown API token")
    user, record = row
    if is_expired(record):
        assert record.expires_at is not None
        raise TokenExpiredError(
            f"API token expired at {record.expires_at:%Y-%m-%d %H:%M:%S} UTC: ask an admin for "
            f"a new one (`lifrnn users token {user.name}`)"
        )
    return user, record


def user_for_token(session: Session, token: str) -> User | None:
    """The user holding ``token`` (unexpired), or None."""
    try:
        return token_holder(session, token)[0]
    except TokenError:
        return None


def find_user(session: Session, name: str) -> User:
    """User ``name``; raises :class:`UnknownUserError`."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UnknownUserError(f"no user named {name!r}")
    return user


def rotate_token(
    session: Session, token: str, expires_in: timedelta | None = None
) -> tuple[str, ApiToken]:
    """Swap ``token`` for a new one of the same user and label, and delete the old one.

    The new token expires after ``expires_in``; without it, a token that had a lifetime gets the
    same lifetime again and one without keeps none. Returns (new token, its row). Raises what
    :func:`token_holder` raises (an expired token cannot be rotated). Caller commits.
    """
    user, old = token_holder(session, token)
    if expires_in is None and old.expires_at is not None:
        expires_in = old.expires_at - old.created_at
    deleted = session.execute(delete(ApiToken).where(ApiToken.id == old.id))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise UnknownTokenError("unknown API token (rotated or revoked meanwhile)")
    new = issue_token(session, user, label=old.label, expires_in=expires_in)
    session.flush()
    return new, token_holder(session, new)[1]


@dataclass(frozen=True)
class Revoked:
    """What :func:`revoke_user` deleted."""

    tokens: int
    dashboard_sessions: int


def revoke_user(session: Session, name: str) -> Revoked:
    """Delete every API token and dashboard session of user ``name``; their jobs, networks and
    files stay. Raises :class:`UnknownUserError`. Caller commits."""
    user = find_user(session, name)
    # sessions first: deleting a token deletes its sessions too, and they would go uncounted
    browsers = session.execute(delete(DashboardSession).where(DashboardSession.user_id == user.id))
    tokens = session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    return Revoked(tokens.rowcount or 0, browsers.rowcount or 0)  # type: ignore[attr-defined]


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` readable by its owner only (mode 600, folder 700)."""
    write_private_text(path, token + "\n")


def ensure_local_user(session: Session, token_file: Path | None) -> User:
    """The local user, created when missing; with ``token_file``, a token is written there once.

    Caller commits.
    """
    user = session.scalar(select(User).where(User.name == LOCAL_USER))
    if user is None:
        user = User(name=LOCAL_USER, role="admin")
        session.add(user)
        session.flush()
        logger.info("created the local user %r", LOCAL_USER)
    if token_file is not None and not token_file.is_file():
        write_token_file(token_file, issue_token(session, user, label="local token file"))
        logger.info("wrote the local user's API token to %s (mode 600)", token_file)
    return user
