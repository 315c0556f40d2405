"""Serve the API with the dashboard mounted, as the browser tests need it.

``python tests/e2e/serve_dashboard.py --port PORT``: settings come from the environment
(``LIFRNN_*``) as for ``lifrnn serve``. Once ``create_app`` mounts the dashboard itself, this
launcher leaves it be and ``lifrnn serve`` does the same job.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lifrnn.api.dashboard import mount_dashboard
from lifrnn.api.main import create_app
from lifrnn.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Start uvicorn on ``--port`` with the dashboard mounted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    settings = Settings(port=args.port)
    app = create_app(settings)
    if not any(getattr(route, "path", "") == "/ui/login" for route in app.routes):
        mount_dashboard(app)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
