"""``lifrnn serve --api-workers N``: several API processes share the port, one pool runs the jobs.

A real server with two API processes on SQLite and on PostgreSQL: both processes answer, a job
submitted through either runs once (in the parent's pool) and succeeds, the dashboard's session
works whichever process answers, and stopping the server leaves no process behind.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.services import Server, fresh_postgres_database, server_env

SMALL_SOC = {"kind": "soc", "n": 40, "radius": 4}


class MultiServer(Server):  # type: ignore[misc]
    """``lifrnn serve --api-workers 2``."""

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "lifrnn", "serve", "--port", str(port), "--api-workers", "2"]


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def api_processes(pid: int) -> list[int]:
    """The children of ``pid`` that serve HTTP (not multiprocessing's resource tracker)."""
    return [
        child
        for child in children(pid)
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MultiServer, str]]:
    """One server per database for the module's tests (the last one stops it)."""
    home = tmp_path_factory.mktemp(f"api-workers-{request.param}")
    with contextlib.ExitStack() as stack:
        url = None  # its own database: the local user it creates is not the service's
        if request.param == "postgresql":
            url = stack.enter_context(fresh_postgres_database("lifrnn_api_workers"))
        env = server_env(home, url, workers=1, poll_seconds=0.1, heartbeat_seconds=0.3)
        server = MultiServer(home, env)
        server.start()
        try:
            yield server, (home / "token").read_text().strip()
        finally:
            server.stop()


def test_two_api_processes_serve_and_one_pool_runs_the_job(served: Any) -> None:
    server, token = served
    assert server.process is not None
    deadline = time.monotonic() + 30
    while len(api_processes(server.process.pid)) < 2:
        assert time.monotonic() < deadline, "two API processes did not start"
        time.sleep(0.1)
    with server.client(token) as api:
        job = api.post("/jobs", json=SMALL_SOC).json()["id"]
        deadline = time.monotonic() + 120
        while (status := api.get(f"/jobs/{job}").json()["status"]) != "succeeded":
            assert status in ("queued", "running"), status
            assert time.monotonic() < deadline, "the job did not run"
            time.sleep(0.1)
        # ran once: one worker, one attempt, every event from the parent's pool
        assert api.get(f"/jobs/{job}").json()["attempts"] == 1
        answers = [api.get("/health") for _ in range(40)]
        assert all(answer.status_code == 200 for answer in answers)
        assert all(answer.json()["workers"] == 0 for answer in answers)  # API processes only


def test_a_dashboard_session_works_on_every_api_process(served: Any) -> None:
    server, token = served
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        page = browser.get("/ui/login")
        csrf = page.cookies.get("lifrnn_csrf") or browser.cookies.get("lifrnn_csrf")
        signed = browser.post(
            "/ui/login",
            data={"token": token, "csrf": csrf or ""},
            headers={"Origin": server.url},
        )
        assert signed.status_code == 303, signed.text
        # each request may land on either process: the session key is the same in both
        assert all(browser.get("/ui/jobs").status_code == 200 for _ in range(20))


def test_stopping_the_server_stops_every_process(served: Any) -> None:
    server, _ = served
    assert server.process is not None
    workers = api_processes(server.process.pid)
    assert len(workers) >= 2
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    for pid in workers:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
            assert time.monotonic() < deadline, f"API process {pid} outlived the server"
            time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
