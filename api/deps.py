"""Dependencies of the routes: the store, a database session, the current user, the spec body."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from lifrnn.settings import Settings
from lifrnn.specs import SpecBase, describe_validation_error, parse_spec
from lifrnn.store import Store, User
from lifrnn.store.users import hash_token, user_for_token

bearer = HTTPBearer(
    auto_error=False,
    description="an API token from `lifrnn users create NAME` (or $LIFRNN_HOME/token)",
)


# The cheap dependencies are ``async``: FastAPI runs each sync dependency in a worker thread of
# its own, and those hops cost more than the work. Only the routes (database work) use threads.


async def get_store(request: Request) -> Store:
    """The app's store."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


async def get_settings(store: StoreDep) -> Settings:
    """The app's settings."""
    return store.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(store: StoreDep) -> AsyncIterator[Session]:
    """A database session for one request (it connects lazily, in the route's thread)."""
    session = store.sessions()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


class TokenCache:
    """Users by token hash for a few seconds, so that most requests skip the token query.

    A new token works at once; a deleted one keeps working for at most ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 10.0, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> User | None:
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, user: User) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, user)


def _lookup_user(store: Store, token: str) -> User | None:
    with store.session() as session:
        user = user_for_token(session, token)
        if user is not None:
            session.expunge(user)
        return user


async def current_user(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user whose bearer token came with the request; 401 otherwise."""
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    cache: TokenCache = request.app.state.token_cache
    digest = hash_token(credentials.credentials)
    user = cache.get(digest)
    if user is None:
        user = await run_in_threadpool(_lookup_user, store, credentials.credentials)
        if user is not None:
            cache.put(digest, user)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]

JSON_TYPES = ("application/json",)


def is_json(content_type: str) -> bool:
    """True for ``application/json`` and ``application/*+json`` (any parameters)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def spec_body(request: Request) -> SpecBase:
    """The request body validated as a job spec: 415 unless JSON, 422 naming the bad field."""
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"a job spec is sent as application/json, not {content_type or 'no content type'!r}",
        )
    body = await request.body()
    try:
        return parse_spec(body)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid spec: {describe_validation_error(error)}",
        ) from None
    except (ValueError, ArithmeticError, TypeError) as error:
        # a validator that raised something pydantic does not wrap (e.g. an overflow on an
        # extreme float): still the client's spec, not a server fault
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid spec: {type(error).__name__}: {error}"
        ) from None


SpecBody = Annotated[SpecBase, Depends(spec_body)]
