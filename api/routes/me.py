"""``/me``: the calling user (role, quotas and limits, usage, their token) and rotating that
token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlalchemy import select

from lifrnn.api.deps import (
    CurrentUser,
    SessionDep,
    SettingsDep,
    TokenCache,
    current_user,
    unauthorized,
)
from lifrnn.api.schemas import MeOut, NewToken, Problem, QuotasOut, TokenOut, UsageOut
from lifrnn.settings import Settings
from lifrnn.store import ApiToken, User
from lifrnn.store.jobs import queued_count, running_count
from lifrnn.store.limits import JobLimits
from lifrnn.store.uploads import byte_quota, used_bytes
from lifrnn.store.users import TokenError, parse_expires_in, rotate_token

router = APIRouter(prefix="/me", tags=["me"])

EXPIRES_IN = Query(
    description="lifetime of the new token: 90d, 12h or 30m; default the old token's lifetime "
    "(none if it had none)",
    max_length=20,
)


def quotas(user: User, settings: Settings) -> QuotasOut:
    """The user's quotas and per-job limits: their own where set, else the deployment's."""
    own_columns = {
        "max_queued": user.max_queued,
        "max_running": user.max_running,
        "max_bytes": user.max_bytes,
        "max_job_memory": user.max_job_memory,
        "max_job_output": user.max_job_output,
        "max_job_work": user.max_job_work,
    }
    limits = JobLimits.for_user(settings, user)
    return QuotasOut(
        max_queued=user.max_queued if user.max_queued is not None else settings.default_max_queued,
        max_running=user.max_running
        if user.max_running is not None
        else settings.default_max_running,
        max_bytes=byte_quota(user, settings.default_max_bytes),
        max_job_memory=limits.memory_bytes,
        max_job_output=limits.output_bytes,
        max_job_work=limits.work,
        own=[name for name, value in own_columns.items() if value is not None],
    )


@router.get("", response_model=MeOut, responses={401: {"model": Problem}})
def me(request: Request, caller: CurrentUser, session: SessionDep, settings: SettingsDep) -> MeOut:
    """Who you are: name, role, quotas, what you use now, and the token you called with."""
    user = session.get(User, caller.id)
    if user is None:  # deleted since its token was cached
        raise unauthorized("unknown API token")
    digest = getattr(request.state, "token_sha256", None)
    token = (
        session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest)) if digest else None
    )
    return MeOut(
        name=user.name,
        role=user.role,
        created_at=user.created_at,
        quotas=quotas(user, settings),
        usage=UsageOut(
            queued=queued_count(session, user.id),
            running=running_count(session, user.id),
            bytes=used_bytes(session, user.id),
        ),
        token=TokenOut.model_validate(token) if token is not None else None,
    )


@router.post(
    "/tokens/rotate",
    response_model=NewToken,
    responses={400: {"model": Problem}, 401: {"model": Problem}, 422: {"model": Problem}},
    dependencies=[Depends(current_user)],
)
def rotate(
    request: Request,
    session: SessionDep,
    expires_in: Annotated[str | None, EXPIRES_IN] = None,
) -> NewToken:
    """Swap the token this request came with for a new one (shown once); the old one stops
    working at once on this process, and within ``LIFRNN_TOKEN_CACHE_SECONDS`` on others."""
    digest = getattr(request.state, "token_sha256", None)
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if digest is None or scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "only a request with an API token can rotate it"
        )
    try:
        lifetime = parse_expires_in(expires_in) if expires_in is not None else None
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    try:
        new, record = rotate_token(session, token.strip(), lifetime)
    except TokenError as error:
        raise unauthorized(str(error)) from None
    session.commit()
    cache: TokenCache = request.app.state.token_cache
    cache.discard(digest)
    return NewToken(
        token=new, label=record.label, created_at=record.created_at, expires_at=record.expires_at
    )
