"""Users and their API tokens: tokens are random, shown once, and stored as SHA-256 only."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifrnn.store.models import ApiToken, User

logger = logging.getLogger(__name__)

LOCAL_USER = "local"
"""The user the embedded default creates at first start (and ``lifrnn run`` records under)."""


class UserExistsError(ValueError):
    """A user of that name exists already."""


def hash_token(token: str) -> str:
    """SHA-256 (hex) of a token's text: what the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, label: str = "") -> str:
    """A new token for ``user``; only its hash is stored, so this is the one chance to see it."""
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_sha256=hash_token(token), label=label))
    return token


def create_user(
    session: Session,
    name: str,
    *,
    admin: bool = False,
    max_queued: int | None = None,
    max_running: int | None = None,
    max_bytes: int | None = None,
) -> tuple[User, str]:
    """Create user ``name`` with a first token; returns (user, token). Caller commits."""
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
    return user, issue_token(session, user, label="created with the user")


def user_for_token(session: Session, token: str) -> User | None:
    """The user holding ``token``, or None."""
    return session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_sha256 == hash_token(token))
    )


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` readable by its owner only (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(token + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


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
