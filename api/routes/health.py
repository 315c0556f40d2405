"""``/health``: is the service up and can it reach its database."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep
from api.schemas import Health
from lifrnn import __version__

router = APIRouter(prefix="/health", tags=["health"])
logger = logging.getLogger(__name__)


@router.get("", response_model=Health)
def health(request: Request, session: SessionDep) -> Health:
    """``ok`` when the database answers; no token needed."""
    try:
        session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError as error:
        logger.warning("health check: database unreachable: %s", error)
        database = "unreachable"
    pool = getattr(request.app.state, "pool", None)
    return Health(
        status="ok" if database == "ok" else "degraded",
        version=__version__,
        database=database,
        workers=pool.size if pool is not None else 0,
    )
