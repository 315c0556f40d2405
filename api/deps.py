"""Dependencies of the routes: the store, a database session, the current user, the spec body,
a listing's page, and the row a path names if the user may see it (404 otherwise).

The current user comes from the request's bearer token, or, for the dashboard's in-process
requests, from the ASGI scope key :data:`DASHBOARD_USER` that only the dashboard's own transport
sets (see :mod:`lifrnn.api.dashboard.sessions`): no HTTP request can put a key into its scope. What
signed a request in (:class:`Credential`) can be checked again while a long response lasts: an
event stream ends when its token is revoked, rotated or expires, or its dashboard session ends.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifrnn.api.schemas import RunLabels, problem
from lifrnn.settings import Settings
from lifrnn.specs import SpecBase, describe_validation_error, parse_spec
from lifrnn.store import Artifact, Job, Network, Store, Sweep, User
from lifrnn.store.dashboard_sessions import dashboard_session
from lifrnn.store.models import utcnow
from lifrnn.store.users import (
    TokenError,
    TokenExpiredError,
    hash_token,
    token_holder,
    token_holder_by_hash,
)

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


DASHBOARD_USER = "lifrnn.dashboard_user"
"""ASGI scope key of the signed-in :class:`User` on the dashboard's in-process API requests."""
DASHBOARD_SESSION = "lifrnn.dashboard_session"
"""ASGI scope key of the secret of the dashboard session those requests are made for."""


class TokenCache:
    """Users by token hash for a few seconds, so that most requests skip the token query.

    A new token works at once. A revoked or rotated one keeps working on *another* API process
    for at most ``ttl`` seconds (``LIFRNN_TOKEN_CACHE_SECONDS``; the process that rotates a
    token forgets it at once); an entry never outlives its token's expiry. ``ttl`` 0: no cache.
    """

    def __init__(self, ttl: float = 5.0, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> User | None:
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, user: User, expires_at: datetime | None = None) -> None:
        """Remember ``user`` for ``digest`` for ``ttl`` seconds, but not past ``expires_at``."""
        lifetime = self.ttl
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - utcnow()).total_seconds())
        if lifetime <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + lifetime, user)

    def discard(self, digest: str) -> None:
        """Forget ``digest`` (a token this process just rotated away)."""
        with self._lock:
            self._entries.pop(digest, None)


def check_token(store: Store, token: str) -> tuple[User, datetime | None]:
    """The user holding ``token`` (detached from its session) and the token's expiry; raises
    :class:`~lifrnn.store.users.TokenError` saying why not (unknown, or expired when)."""
    with store.session() as session:
        user, record = token_holder(session, token)
        session.expunge(user)
        return user, record.expires_at


def unauthorized(detail: str) -> HTTPException:
    """A 401 with ``detail`` and the ``WWW-Authenticate: Bearer`` challenge."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def token_user(request: Request, store: Store, token: str) -> User:
    """The user holding ``token``, through the app's :class:`TokenCache`; 401 saying why not.

    The token's hash is left in ``request.state.token_sha256`` (``GET /me`` shows the token).
    """
    cache: TokenCache = request.app.state.token_cache
    digest = hash_token(token)
    cached = cache.get(digest)
    if cached is not None:
        request.state.token_sha256 = digest
        return cached
    try:
        user, expires_at = await run_in_threadpool(check_token, store, token)
    except TokenError as error:
        raise unauthorized(str(error)) from None
    cache.put(digest, user, expires_at)
    request.state.token_sha256 = digest
    return user


async def current_user(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user whose bearer token came with the request (or the dashboard's signed-in user on
    its in-process requests); 401 otherwise, saying whether the token is unknown or expired."""
    visitor = request.scope.get(DASHBOARD_USER)
    if isinstance(visitor, User):
        return visitor
    if credentials is None or not credentials.credentials:
        raise unauthorized("missing API token: send 'Authorization: Bearer <token>'")
    return await token_user(request, store, credentials.credentials)


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass(frozen=True)
class Lapse:
    """Why a credential stopped working: a short ``reason`` (``token revoked``, ``token
    expired``, ``session ended``) and a ``detail`` saying what to do."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Credential:
    """What signed a request in, to check again while a long response lasts: the SHA-256 of its
    API token, or the secret of the dashboard session it was made for (empty: nothing to check,
    e.g. an in-process request of a test)."""

    token_sha256: str = ""
    dashboard_secret: str = ""

    def lapse(self, session: Session) -> Lapse | None:
        """Why this credential no longer works; None while it does. Reads the database, never
        the token cache, so a revocation on another API process counts at once."""
        if self.token_sha256:
            try:
                token_holder_by_hash(session, self.token_sha256)
            except TokenExpiredError as error:
                return Lapse("token expired", str(error))
            except TokenError:
                return Lapse(
                    "token revoked",
                    "API token revoked or rotated away: use your current token (`lifrnn me`)",
                )
        if self.dashboard_secret and dashboard_session(session, self.dashboard_secret) is None:
            return Lapse(
                "session ended",
                "dashboard session ended (signed out, expired, or its API token was rotated, "
                "revoked or expired): sign in again",
            )
        return None


def request_credential(request: Request) -> Credential:
    """The :class:`Credential` of a request that :func:`current_user` let in."""
    if isinstance(request.scope.get(DASHBOARD_USER), User):
        secret = request.scope.get(DASHBOARD_SESSION)
        return Credential(dashboard_secret=secret if isinstance(secret, str) else "")
    return Credential(token_sha256=getattr(request.state, "token_sha256", "") or "")


JSON_TYPES = ("application/json",)


def is_json(content_type: str) -> bool:
    """True for ``application/json`` and ``application/*+json`` (any parameters)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


LABEL_FIELDS = ("name", "tags", "note")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def split_labels(body: bytes) -> tuple[bytes, RunLabels]:
    """The body without the run's ``name``, ``tags`` and ``note`` (not part of the spec or its
    hash), and those labels validated; 422 naming the field. A body without them, or one that
    is not a JSON object, is returned as it came, for the spec's own validation to judge."""
    if not any(f'"{field}"'.encode() in body for field in LABEL_FIELDS):
        return body, RunLabels()
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return body, RunLabels()
    if not isinstance(data, dict) or not any(field in data for field in LABEL_FIELDS):
        return body, RunLabels()
    labels = {field: data.pop(field) for field in LABEL_FIELDS if field in data}
    try:
        return json.dumps(data).encode(), RunLabels.model_validate(labels)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid spec: {describe_validation_error(error)}",
        ) from None


async def spec_body(request: Request) -> SpecBase:
    """The request body validated as a job spec: 415 unless JSON, 422 naming the bad field."""
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"a job spec is sent as application/json, not {content_type or 'no content type'!r}",
        )
    body = await request.body()
    body, request.state.run_labels = split_labels(body)
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


async def run_labels(request: Request, _spec: SpecBody) -> RunLabels:
    """The ``name``, ``tags`` and ``note`` sent beside the spec's fields (see :func:`spec_body`)."""
    labels: RunLabels = getattr(request.state, "run_labels", None) or RunLabels()
    return labels


LabelsBody = Annotated[RunLabels, Depends(run_labels)]


COUNT_DESCRIPTION = (
    "also count every match (total); without it total is null, has_more still says whether "
    "another page follows"
)

T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    """Which page of a listing to answer: ``limit`` rows from ``offset``, and whether to count
    every match (``total``; else null)."""

    limit: int
    offset: int
    count: bool

    def newest_first(
        self, session: Session, model: type[T], *conditions: Any
    ) -> tuple[list[T], dict[str, Any]]:
        """This page of the ``model`` rows that match ``conditions``, newest first, and the
        listing's :meth:`fields`."""
        table: Any = model
        total = None
        if self.count:
            total = session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
        rows = session.scalars(
            select(table)
            .where(*conditions)
            .order_by(table.created_at.desc(), table.id)
            .limit(self.limit + 1)
            .offset(self.offset)
        ).all()
        return list(rows[: self.limit]), self.fields(rows, total)

    def fields(self, found: Sequence[object], total: int | None) -> dict[str, Any]:
        """A listing's ``total``, ``has_more`` (``found`` was read with one row more than
        ``limit``: it holds that row when more follow), ``limit`` and ``offset``."""
        more = len(found) > self.limit
        return {"total": total, "has_more": more, "limit": self.limit, "offset": self.offset}


async def paging(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    count: Annotated[bool, Query(description=COUNT_DESCRIPTION)] = False,
) -> Paging:
    """The query parameters ``limit``, ``offset`` and ``count`` of a listing."""
    return Paging(limit=limit, offset=offset, count=count)


PageDep = Annotated[Paging, Depends(paging)]


def is_uuid_text(value: str) -> bool:
    """True for the canonical 36-character text of a UUID (the ids of jobs and networks)."""
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


class Owned(Protocol):
    """A row that belongs to a user."""

    @property
    def owner_id(self) -> int: ...


RowT = TypeVar("RowT", bound=Owned)


def not_found(what: str, key: str) -> HTTPException:
    """The 404 of a ``what`` that does not exist, or that the user may not see: ``no WHAT KEY``."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {key}")


def not_found_response(what: str) -> dict[int | str, dict[str, Any]]:
    """The documented 404 of a route whose path names a ``what``."""
    return {404: problem(f"no such {what} (or not yours)")}


def may_see(user: User, owner_id: int, admins: bool = True) -> bool:
    """True when ``user`` may see what ``owner_id`` owns: their own; an admin's any, unless not
    ``admins``."""
    return owner_id == user.id or (admins and user.is_admin)


def owner_check(
    model: type[RowT], what: str, admins: bool = True
) -> Callable[[Session, User, str], RowT]:
    """The check of the ``model`` row that the path parameter ``{what}_id`` names: the row if
    the user may see it (their own; an admin's any, unless not ``admins``), else 404 ``no WHAT
    ID``. A dependency; a route with inputs of its own (query, header, body) calls it instead,
    ``check(session, user, id)``: FastAPI runs dependencies before it validates those, so as a
    dependency its 404 would come before their 422."""
    name = f"{what}_id"

    def check(
        session: SessionDep,
        user: CurrentUser,
        key: str = Path(alias=name, title=name.replace("_", " ").title()),
    ) -> RowT:
        row = session.get(model, key) if is_uuid_text(key) else None
        if row is None or not may_see(user, row.owner_id, admins):
            raise not_found(what, key)
        return row

    return check


owned_job = owner_check(Job, "job")
"""Job ``job_id`` if the user may see it (their own; admins: any), else 404."""
own_job = owner_check(Job, "job", admins=False)
"""Job ``job_id`` if it is the user's own (admins too: only their own), else 404."""
OwnedJob = Annotated[Job, Depends(owned_job)]
OwnedSweep = Annotated[Sweep, Depends(owner_check(Sweep, "sweep"))]
OwnedNetwork = Annotated[Network, Depends(owner_check(Network, "network"))]
OwnedArtifact = Annotated[Artifact, Depends(owner_check(Artifact, "artifact"))]
OwnedFile = Annotated[Artifact, Depends(owner_check(Artifact, "file", admins=False))]
"""A file is its owner's only (an upload or an artifact): an admin sees no other's."""
