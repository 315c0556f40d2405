"""A git revision's code in a temporary worktree: the baseline the benchmarks measure beside
this code, in the same run and with the same interpreter (``PYTHONPATH`` set to the worktree);
and what serves either for a benchmark: a fresh database, a free port, ``lifrnn serve``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """The code of ``revision`` in a temporary git worktree, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="lifrnn-baseline-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), revision],
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def database(kind: str, home: Path, postgres: str) -> Iterator[str]:
    """A fresh database URL of ``kind`` (sqlite or postgresql), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{home / 'lifrnn.db'}"
        return
    name = f"lifrnn_bench_{os.getpid()}_{home.name[-6:].lower()}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(code: Path, home: Path, url: str, api_workers: int = 1) -> Iterator[str]:
    """``lifrnn serve`` from the code in ``code`` on a free port; its base URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")},
        "LIFRNN_HOME": str(home),
        "LIFRNN_DATABASE_URL": url,
        "LIFRNN_WORKERS": "0",
        "LIFRNN_ACCESS_LOG": "false",
        "LIFRNN_MIGRATE_ON_START": "false",
        "PYTHONPATH": str(code),
    }
    command = [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)]
    if api_workers > 1:
        command += ["--api-workers", str(api_workers)]
    process = subprocess.Popen(
        command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the server from {code} did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
