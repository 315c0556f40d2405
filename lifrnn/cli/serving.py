"""``lifrnn serve``: the HTTP server, in one process or several.

One process (the default) serves the API and runs the jobs (the embedded worker threads, or the
Celery dispatcher in distributed mode). With ``api_workers`` N > 1, uvicorn starts N API
processes that share the listening socket and only serve requests (``runs_jobs`` false); this
process migrates the store, writes the local token, and runs or dispatches the jobs, so that
exactly one pool claims them. The API processes learn nothing of new jobs directly: the pool
finds them within ``poll_seconds``. Each API process keeps its own token cache and its own count
of open event streams (so a user's stream limit applies per process).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lifrnn.settings import Settings

logger = logging.getLogger(__name__)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "log_config": None,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": 10,
        "limit_concurrency": settings.limit_concurrency,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }


def _environment(settings: Settings) -> dict[str, str]:
    """The settings the API processes must share with this one, as ``LIFRNN_*`` variables
    (they read their settings from the environment)."""
    names = ("home", "database_url", "artifact_url", "host", "port", "broker_url")
    found = {f"LIFRNN_{name.upper()}": str(getattr(settings, name) or "") for name in names}
    found.update(
        {
            "LIFRNN_WORKERS": "0",
            "LIFRNN_RUNS_JOBS": "false",
            "LIFRNN_MIGRATE_ON_START": "false",
            "LIFRNN_API_WORKERS": "1",
        }
    )
    return {name: value for name, value in found.items() if value}


def serve(settings: Settings) -> None:
    """Serve the API (and run the jobs) until interrupted."""
    import uvicorn

    from lifrnn.api.dashboard.sessions import load_session_key
    from lifrnn.api.main import create_app, prepare_store, start_jobs
    from lifrnn.api.slow_clients import HeaderDeadlineProtocol, http_protocol
    from lifrnn.store import Store

    if settings.api_workers <= 1:
        uvicorn.run(
            create_app(settings),
            http=http_protocol(settings.request_timeout_seconds),
            **_uvicorn_options(settings),
        )
        return
    store = Store(settings)
    prepare_store(store)
    load_session_key(settings)  # made here once, read by every API process
    pool = start_jobs(store)
    os.environ.update(_environment(settings))
    logger.info("%d API processes; jobs run in this one", settings.api_workers)
    try:
        uvicorn.run(
            "lifrnn.api.main:create_app",
            factory=True,
            workers=settings.api_workers,
            http=HeaderDeadlineProtocol,
            **_uvicorn_options(settings),
        )
    finally:
        if pool is not None:
            pool.stop()
        store.dispose()
