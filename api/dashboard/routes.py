"""Pages of the dashboard (``/ui``): sign-in, the queue, a job, networks, a comparison, submit.

The pages are a client of the REST API: every read and write goes to the API's own routes as an
in-process ASGI request made as the signed-in user (:mod:`lifrnn.api.dashboard.sessions`), so spec
validation, quotas and isolation (another user's job answers 404) are the API's by construction,
not a copy. Only what admins see beyond the API (user names, the running/queued load per user) is
read from the store directly.

Sign-in checks the API token once and opens a server-side session: the browser keeps only the
session's signed secret, in an HTTP-only, ``SameSite=Strict`` cookie scoped to ``/ui`` (``Secure``
when the request came over https, e.g. from a trusted TLS proxy); signing out ends the session.
Every POST form also carries a per-browser CSRF token (double-submit: form field == cookie) and is
refused when its ``Origin`` is another site.

This module only combines the page modules' routers, in the order their routes were always
registered, into :data:`router`, which :func:`lifrnn.api.dashboard.mount_dashboard` includes. The
pages live in :mod:`.login`, :mod:`.jobs`, :mod:`.networks`, :mod:`.sweeps` and :mod:`.submit`; what
they share in :mod:`.common`. The helpers re-exported below keep their old import path.
"""

from __future__ import annotations

from fastapi import APIRouter

from lifrnn.api.dashboard import jobs, login, networks, submit, sweeps
from lifrnn.api.dashboard.common import (
    STATIC_DIR,
    TEMPLATES,
    as_table,
    flatten,
    format_value,
    install_error_pages,
)
from lifrnn.api.dashboard.login import safe_next
from lifrnn.api.dashboard.networks import lineage_forest
from lifrnn.api.dashboard.submit import spec_kind
from lifrnn.api.dashboard.sweeps import scatter_data, side_by_side, sweep_columns

__all__ = [
    "STATIC_DIR",
    "TEMPLATES",
    "as_table",
    "flatten",
    "format_value",
    "install_error_pages",
    "lineage_forest",
    "router",
    "safe_next",
    "scatter_data",
    "side_by_side",
    "spec_kind",
    "sweep_columns",
]

router = APIRouter()
"""Every dashboard page, each module's routes in turn (the order of registration is kept)."""
for pages in (login, jobs, networks, sweeps, submit):
    router.include_router(pages.router)
