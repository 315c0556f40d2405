"""A served store with the dashboard, and a headless Chromium driven by Playwright.

The server is ``lifrnn serve`` when ``create_app`` mounts the dashboard, else the small launcher
``serve_dashboard.py`` beside this file (``create_app`` + ``mount_dashboard``). Its helpers come
from :mod:`helpers.services`. Chromium is Debian's (``scripts/install-browser.sh``);
without it the browser tests are skipped, saying so. Screenshots go to ``test-output/``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import services

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = ROOT / "test-output"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2e`` marker (until pyproject lists it)."""
    config.addinivalue_line("markers", "e2e: end-to-end tests in a real headless Chromium")


def create_app_mounts_dashboard() -> bool:
    """True once ``lifrnn.api.main.create_app`` mounts the dashboard itself."""
    from lifrnn.api.main import create_app
    from lifrnn.settings import Settings

    app = create_app(Settings(migrate_on_start=False, workers=0))
    return any(getattr(route, "path", "") == "/ui/login" for route in app.routes)


class DashboardServer(services.Server):
    """The integration tests' server, started with the dashboard launcher instead."""

    def command(self, port: int) -> list[str]:
        launcher = Path(__file__).with_name("serve_dashboard.py")
        return [sys.executable, str(launcher), "--port", str(port)]


class Dashboard:
    """A running server with the dashboard, and its users' tokens."""

    def __init__(self, server: Any, tokens: dict[str, str]) -> None:
        self.server = server
        self.url: str = server.url
        self.tokens = tokens

    def api(self, user: str) -> httpx.Client:
        """An API client authenticated as ``user``."""
        client: httpx.Client = self.server.client(self.tokens[user])
        return client


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The service on SQLite with two in-process workers; plain users alice and bob, and the
    admin ``local``."""
    home = tmp_path_factory.mktemp("dashboard")
    env = services.server_env(
        home,
        None,
        workers=2,
        heartbeat_seconds=0.3,
        poll_seconds=0.1,
        progress_interval_seconds=0.1,
    )
    server_class = services.Server if create_app_mounts_dashboard() else DashboardServer
    server = server_class(home, env)
    server.start()
    try:
        tokens = create_users(home, ("alice", "bob"))
        tokens["local"] = (home / "token").read_text().strip()  # the admin of a loopback server
        yield Dashboard(server, tokens)
    finally:
        server.stop()


def create_users(home: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Create plain users in the served store (migrated by the server); their tokens by name.

    In-process, as ``lifrnn users create`` does, without a process start per user.
    """
    from lifrnn.settings import Settings
    from lifrnn.store import Store
    from lifrnn.store.users import create_user

    store = Store(Settings(home=home))
    tokens = {}
    try:
        with store.session() as session:
            for name in names:
                _, tokens[name] = create_user(session, name)
            session.commit()
    finally:
        store.dispose()
    return tokens


def _missing(reason: str) -> None:
    if (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("LIFRNN_REQUIRE_SERVICES") == "1"
    ):
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright (skipped when either is missing, except with
    ``CI=true``, where that fails the tests)."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("playwright is missing: run scripts/install-browser.sh")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """``test-output/`` (gitignored): screenshots for a person to look at."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
