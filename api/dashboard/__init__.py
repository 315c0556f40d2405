"""The lab dashboard: server-rendered pages (Jinja2) over the job API, under ``/ui``.

:func:`mount_dashboard` adds the pages and their static files (CSS, a few lines of JS) to the
app that :func:`lifrnn.api.main.create_app` builds; nothing is fetched from elsewhere.

The package holds the page modules, one ``APIRouter`` each (:mod:`.login`: sign-in
and out; :mod:`.jobs`: the queue and a job; :mod:`.networks`: networks
and a job's files; :mod:`.sweeps`: sweeps and the compare view;
:mod:`.submit`: the submit form), what they share (:mod:`.common`:
templates, error pages, the signed-in visitor, the API client, CSRF), :mod:`.routes`,
which combines their routers in registration order, :mod:`.sessions` (dashboard
sessions, the in-process API transport) and :mod:`.summaries` (one-line job
summaries, the NLB table), with ``templates/`` and ``static/``.

It may import :mod:`lifrnn`, :mod:`lifrnn_core` and the rest of :mod:`api`; never :mod:`worker`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from lifrnn.api.dashboard.routes import STATIC_DIR, install_error_pages, router

__all__ = ["mount_dashboard"]


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: pages under ``/ui``, assets under ``/ui/static``."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    install_error_pages(app)
