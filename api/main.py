"""The FastAPI application: :func:`create_app` wires the store, the routes and the worker pool.

At start-up (embedded default) the app applies the database migrations, creates the local user
and its token file when it listens on loopback only, re-queues jobs whose worker died, and starts
the in-process worker pool. OpenAPI lives at ``/openapi.json``, the docs at ``/docs``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import TypeAdapter
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifrnn import __version__
from lifrnn.api.dashboard import mount_dashboard
from lifrnn.api.dashboard.sessions import load_session_key
from lifrnn.api.deps import TokenCache
from lifrnn.api.routes import artifacts, files, health, jobs, me, networks, sweeps
from lifrnn.api.routes.jobs import StreamCounter
from lifrnn.api.storable import StorableInput
from lifrnn.dispatch import Dispatcher, celery_dispatcher
from lifrnn.executor import WorkerPool
from lifrnn.settings import Settings
from lifrnn.specs import JobSpec
from lifrnn.store import Store
from lifrnn.store.jobs import requeue_stale
from lifrnn.store.objects import ObjectStoreUnavailableError
from lifrnn.store.users import ensure_local_user

logger = logging.getLogger(__name__)

OBJECT_STORE_RETRY_AFTER_SECONDS = 5
"""``Retry-After`` of a 503 sent while the object store cannot be reached."""


class BodyTooLargeError(HTTPException):
    """A request body over the limit (413)."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body larger than {limit} bytes ({setting})",
        )


class BodyTimeoutError(HTTPException):
    """A request body that stalled (408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            status.HTTP_408_REQUEST_TIMEOUT,
            f"the request body stalled for {seconds:g} s (LIFRNN_REQUEST_TIMEOUT_SECONDS)",
        )


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, declared or streamed; 408 when the
    body stalls for ``timeout`` seconds (a slow client holds no worker thread for long).

    Uploads (``POST /files``) have their own, larger limit, ``upload_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].rstrip("/") == "/files":
            limit, setting = (
                self.upload_bytes,
                "LIFRNN_MAX_UPLOAD_BYTES or LIFRNN_MAX_RECORDING_BYTES",
            )
        else:
            limit, setting = self.max_bytes, "LIFRNN_MAX_BODY_BYTES"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False
            if too_large:
                error = BodyTooLargeError(limit, setting)
                response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
                await response(scope, receive, send)
                return
        received = 0
        body_done = False

        async def limited() -> Message:
            nonlocal received, body_done
            if body_done:  # afterwards only a disconnect comes (long responses wait for it)
                return await receive()
            try:
                with anyio.fail_after(self.timeout):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError(self.timeout) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit, setting)
            return message

        await self.app(scope, limited, send)


def renderable(value: Any) -> Any:
    """``value`` (JSON-like) with what JSON text cannot hold made text: NaN and infinities as
    ``"nan"``, ``"inf"``; lone surrogates escaped (``"\\ud800"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, dict):
        return {renderable(key): renderable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [renderable(item) for item in value]
    return value


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the job-spec union as ``components.schemas.JobSpec``."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    spec_schema = TypeAdapter(JobSpec).json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in spec_schema.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["JobSpec"] = spec_schema
    app.openapi_schema = document
    return document


def prepare_store(store: Store) -> None:
    """What a serving process does to its store before it runs jobs: migrations (unless
    ``migrate_on_start`` is off), the local user's token on a loopback server, stale jobs back
    to the queue."""
    settings = store.settings
    if settings.migrate_on_start:
        store.migrate()
    with store.session() as session:
        if settings.is_loopback:
            ensure_local_user(session, settings.token_path)
            session.commit()
        requeue_stale(session, settings.stale_after_seconds, settings.max_attempts)


def start_jobs(store: Store) -> WorkerPool | Dispatcher | None:
    """Start what runs the jobs: the Celery dispatcher in distributed mode, else the embedded
    worker threads (none with ``workers`` 0)."""
    settings = store.settings
    pool: WorkerPool | Dispatcher | None = None
    if settings.broker_url:
        # Distributed mode: Celery workers run the jobs; this process only dispatches.
        pool = celery_dispatcher(store)
        pool.start()
    elif settings.workers > 0:
        pool = WorkerPool(store, settings.workers)
        pool.start()
    return pool


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """The API over ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    store = store or Store(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in AnyIO's thread pool; a small one keeps the GIL hand-offs few.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if settings.runs_jobs:
            prepare_store(store)
        app.state.session_key = load_session_key(settings)
        pool = start_jobs(store) if settings.runs_jobs else None
        app.state.pool = pool
        try:
            yield
        finally:
            if pool is not None:
                pool.stop()
            store.dispose()

    app = FastAPI(
        title="lifrnn job service",
        version=__version__,
        description="Submit lifrnn job specs, follow them, and fetch their metrics, networks "
        "and artifacts. Authenticate with `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.state.streams = StreamCounter()
    app.state.pool = None
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(networks.router)
    app.include_router(artifacts.router)
    app.include_router(files.router)
    app.include_router(me.router)
    app.include_router(sweeps.router)
    mount_dashboard(app)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """People who open the server's address land on the dashboard."""
        return RedirectResponse("/ui", status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    app.add_middleware(StorableInput)  # inside BodySizeLimit: it sees bounded bodies only
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        upload_bytes=max(settings.max_upload_bytes, settings.max_recording_bytes),
        timeout=settings.request_timeout_seconds,
    )

    @app.exception_handler(OperationalError)
    async def database_busy(_request: Request, error: OperationalError) -> JSONResponse:
        logger.warning("database error: %s", error)
        return JSONResponse(
            {"detail": "the database is busy or unreachable; retry shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(ObjectStoreUnavailableError)
    async def object_store_down(
        _request: Request, error: ObjectStoreUnavailableError
    ) -> JSONResponse:
        logger.warning("%s", error)  # its address and cause stay in the log
        return JSONResponse(
            {"detail": "the object store cannot be reached right now; retry shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(OBJECT_STORE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, but one that can always be written: it echoes the input
        return JSONResponse(
            {"detail": renderable(jsonable_encoder(error.errors()))},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def openapi_json() -> str:
    """The OpenAPI document as JSON text (for tooling)."""
    return json.dumps(create_app(Settings(migrate_on_start=False)).openapi(), indent=2)
