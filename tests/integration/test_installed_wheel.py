"""lifrnn as installed, not as checked out: the built wheel in a fresh virtual environment
migrates a new PostgreSQL database and serves the API and the dashboard from outside the
repository (migrations, templates and example specs travel inside the package). The repository's
top-level ``api/``, ``worker/`` and ``migrations/`` install as ``lifrnn.api``, ``lifrnn.worker``
and ``lifrnn/store/migrations`` (issue 32.2), never as top-level packages of their own."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers.services import FINAL, PG_ADMIN_URL, ROOT, free_port, wait_for

pytestmark = pytest.mark.integration


def run(*args: str | Path, **options) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **options
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
    return done


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A venv holding only the built wheel; its dependencies come from the test venv."""
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        ROOT,
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        tmp_path / "dist",
    )
    [wheel] = (tmp_path / "dist").glob("lifrnn-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # the dependencies (torch, fastapi, ...) from this venv, after the wheel's own packages;
    # a path line does not run this venv's .pth files, so the editable checkout stays out
    (Path(site.stdout.strip()) / "dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    return venv


def test_the_wheel_migrates_postgresql_and_serves_from_outside_the_checkout(
    installed: Path, tmp_path: Path
):
    psycopg = pytest.importorskip("psycopg")
    name = f"lifrnn_wheel_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database_url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFRNN_", "PYTHON"))}
    env |= {
        "LIFRNN_HOME": str(tmp_path / "home"),
        "LIFRNN_DATABASE_URL": f"{database_url}/{name}",
        "LIFRNN_MIGRATE_ON_START": "false",
        "MPLBACKEND": "Agg",
    }
    lifrnn = installed / "bin" / "lifrnn"
    server = None
    try:
        where = run(
            installed / "bin" / "python",
            "-c",
            "import importlib.util as u, lifrnn, lifrnn.api.main, lifrnn.worker.tasks; "
            "print(lifrnn.__file__, lifrnn.api.main.__file__, lifrnn.worker.tasks.__file__); "
            "print('top-level:', [n for n in ('api', 'worker', 'migrations') if u.find_spec(n)])",
            cwd=elsewhere,
            env=env,
        ).stdout
        assert str(ROOT) not in where and str(installed) in where
        # api/ and worker/ install inside lifrnn, not as top-level packages that would collide
        assert "lifrnn/api/main.py" in where and "lifrnn/worker/tasks.py" in where
        assert "top-level: []" in where
        upgraded = run(lifrnn, "db", "upgrade", cwd=elsewhere, env=env)
        assert "database at head" in upgraded.stdout
        token = run(lifrnn, "users", "create", "alice", cwd=elsewhere, env=env).stdout.strip()
        port = free_port()
        log = (tmp_path / "serve.log").open("wb")
        server = subprocess.Popen(
            [lifrnn, "serve", "--port", str(port)],
            cwd=elsewhere,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "lifrnn serve did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/ui/login").status_code == 200  # templates
            assert client.get("/ui/static/dashboard.css").status_code == 200
            job = client.post("/jobs", json={"kind": "soc", "n": 30, "radius": 3.0}).json()
            assert wait_for(client, job["id"], FINAL, timeout=90)["status"] == "succeeded"
            with httpx.Client(base_url=url) as browser:  # signs in as the form does
                browser.get("/ui/login")
                form = {"csrf": browser.cookies["lifrnn_csrf"], "token": token}
                assert browser.post("/ui/login", data=form).status_code == 303
                submit = browser.get("/ui/submit", follow_redirects=False)
            assert submit.status_code == 200, submit.text[:500]
            assert "soc.json" in submit.text and "prepare.json" in submit.text  # package data
        examples = run(
            installed / "bin" / "python",
            "-c",
            "import importlib.resources as r; "
            "print(sorted(p.name for p in r.files('lifrnn.examples').iterdir()))",
            cwd=elsewhere,
            env=env,
        ).stdout
        assert "soc.json" in examples and "fit.json" in examples
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
