"""The lab dashboard: server-rendered pages (Jinja2) over the job API, under ``/ui``.

:func:`mount_dashboard` adds the pages and their static files (CSS, a few lines of JS) to the
app that :func:`api.main.create_app` builds; nothing is fetched from elsewhere.

The package holds the page modules, one ``APIRouter`` each (:mod:`~api.dashboard.login`: sign-in
and out; :mod:`~api.dashboard.jobs`: the queue and a job; :mod:`~api.dashboard.networks`: networks
and a job's files; :mod:`~api.dashboard.sweeps`: sweeps and the compare view;
:mod:`~api.dashboard.submit`: the submit form), what they share (:mod:`~api.dashboard.common`:
templates, error pages, the signed-in visitor, the API client, CSRF), :mod:`~api.dashboard.routes`,
which combines their routers in registration order, :mod:`~api.dashboard.sessions` (dashboard
sessions, the in-process API transport) and :mod:`~api.dashboard.summaries` (one-line job
summaries, the NLB table), with ``templates/`` and ``static/``.

It may import :mod:`lifrnn`, :mod:`lifrnn_core` and the rest of :mod:`api`; never :mod:`worker`.
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
