"""The lab dashboard: server-rendered pages (Jinja2) over the job API, under ``/ui``.

:func:`mount_dashboard` adds the pages and their static files (CSS, a few lines of JS) to the
app that :func:`api.main.create_app` builds; nothing is fetched from elsewhere.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.dashboard.routes import STATIC_DIR, install_error_pages, router

__all__ = ["mount_dashboard"]


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: pages under ``/ui``, assets under ``/ui/static``."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    install_error_pages(app)
