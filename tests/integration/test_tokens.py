"""Tokens and dashboard sessions against a real ``lifrnn serve`` (SQLite and PostgreSQL):
``GET /me``, ``lifrnn users revoke``, ``lifrnn tokens rotate``, expiry, dashboard sign-in and
sign-out, and ``Secure`` cookies behind a trusted TLS proxy."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import typer
from helpers.accounts import (
    browser_cookies,
    cookie_value,
    cookies_set,
    new_user,
    queue_page,
    short_lived_token,
    sign_in,
)
from helpers.services import Server, cli, server_env
from typer.testing import CliRunner

from lifrnn.cli import register_service_commands as register
from lifrnn.client import Client
from lifrnn.settings import Settings

TOKEN_CACHE_SECONDS = Settings.model_fields["token_cache_seconds"].default


def me(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


# -- GET /me ---------------------------------------------------------------------------------------


def test_me_shows_role_quotas_usage_and_the_calling_token(service):
    url = service.server.url
    name, token = new_user(service, max_queued=7)
    array = io.BytesIO()
    np.save(array, np.zeros(10, dtype=np.float32))
    uploaded = httpx.post(
        f"{url}/files",
        params={"name": "w.npy"},
        content=array.getvalue(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 201, uploaded.text

    answer = me(url, token)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["name"], body["role"]) == (name, "user")
    defaults = Settings()
    assert body["quotas"] == {
        "max_queued": 7,  # the user's own
        "max_running": 2,  # the deployment's defaults
        "max_bytes": 10 * 2**30,
        "max_job_memory": defaults.max_job_memory_bytes,
        "max_job_output": defaults.max_job_output_bytes,
        "max_job_work": defaults.max_job_work,
        "own": ["max_queued"],
    }
    assert body["usage"] == {"queued": 0, "running": 0, "bytes": uploaded.json()["size"]}
    assert body["token"]["label"] == "created with the user"
    assert body["token"]["expires_at"] is None
    admin = me(url, service.tokens["local"]).json()
    assert admin["role"] == "admin" and admin["token"]["label"] == "local token file"
    frank = me(url, service.tokens["frank"]).json()["quotas"]  # his own limit on artifacts
    assert frank["max_job_output"] == 50 * 2**20
    assert set(frank["own"]) == {"max_running", "max_queued", "max_job_output"}


def test_lifrnn_me_prints_the_same_as_json(service):
    name, token = new_user(service)
    app = typer.Typer()
    register(app)
    done = CliRunner().invoke(
        app, ["me", "--json"], env={"LIFRNN_URL": service.server.url, "LIFRNN_TOKEN": token}
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["name"] == name
    readable = CliRunner().invoke(
        app, ["me"], env={"LIFRNN_URL": service.server.url, "LIFRNN_TOKEN": token}
    )
    assert readable.exit_code == 0, readable.output
    assert "queued jobs" in readable.stdout and "one job's work" in readable.stdout


# -- revoke, rotate, expire -----------------------------------------------------------------------


def test_revoke_ends_tokens_within_the_cache_delay_and_dashboard_sessions_at_once(service):
    url = service.server.url
    name, token = new_user(service)
    assert me(url, token).status_code == 200  # now cached by the server
    cookie = browser_cookies(sign_in(url, token))
    assert queue_page(url, cookie).status_code == 200

    done = cli(service.server.env, "users", "revoke", name)
    revoked_at = time.monotonic()

    assert done.returncode == 0, done.stderr
    assert "1 API tokens and 1 dashboard sessions" in done.stderr
    page = queue_page(url, cookie)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    while (answer := me(url, token)).status_code == 200:
        assert time.monotonic() - revoked_at < TOKEN_CACHE_SECONDS + 2, "still accepted"
        time.sleep(0.2)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "unknown API token"


def test_rotate_swaps_the_token_at_once(service):
    url = service.server.url
    name, old = new_user(service)
    assert me(url, old).status_code == 200
    app = typer.Typer()
    register(app)

    done = CliRunner().invoke(
        app,
        ["tokens", "rotate", "--expires-in", "1d"],
        env={"LIFRNN_URL": url, "LIFRNN_TOKEN": old},
    )

    assert done.exit_code == 0, done.output
    new = done.stdout.strip()
    assert new and new != old
    assert "LIFRNN_TOKEN" in done.stderr  # the token came from there: the user must update it
    refused = me(url, old)
    assert refused.status_code == 401 and refused.json()["detail"] == "unknown API token"
    body = me(url, new).json()
    assert body["name"] == name
    expires = datetime.fromisoformat(body["token"]["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)
    again = CliRunner().invoke(
        app, ["tokens", "rotate"], env={"LIFRNN_URL": url, "LIFRNN_TOKEN": old}
    )
    assert again.exit_code == 1 and "unknown API token" in again.output


def test_rotating_the_local_token_file_rewrites_it(service, tmp_path, monkeypatch):
    url = service.server.url
    _, token = new_user(service)
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text(token + "\n")
    monkeypatch.setenv("LIFRNN_HOME", str(home))
    monkeypatch.delenv("LIFRNN_TOKEN", raising=False)
    with Client(url) as client:
        assert client.token_file == home / "token"
        answer = client.rotate_token()
        assert client.me()["token"]["label"] == "created with the user"  # the client moved on
    written = (home / "token").read_text().strip()
    assert written == answer["token"] != token
    assert (home / "token").stat().st_mode & 0o777 == 0o600
    assert me(url, token).status_code == 401


def test_an_expired_token_is_refused_saying_it_expired(service):
    url = service.server.url
    name, _ = new_user(service)
    token = short_lived_token(service, name, seconds=1.5)
    assert me(url, token).status_code == 200  # cached, but not past its expiry
    time.sleep(1.6)
    answer = me(url, token)
    assert answer.status_code == 401
    assert "API token expired at" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"
    signed_in = sign_in(url, token)  # nor does it open a dashboard session
    assert signed_in.status_code == 401 and "expired" in signed_in.text
    unknown = me(url, "no-such-token")
    assert unknown.status_code == 401 and unknown.json()["detail"] == "unknown API token"


def test_rotation_needs_a_valid_duration(service):
    _, token = new_user(service)
    answer = httpx.post(
        f"{service.server.url}/me/tokens/rotate",
        params={"expires_in": "1y"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 422 and "90d, 12h or 30m" in answer.json()["detail"]
    assert me(service.server.url, token).status_code == 200  # nothing was rotated


# -- dashboard sessions ---------------------------------------------------------------------------


def test_the_dashboard_keeps_a_session_not_the_token_and_sign_out_ends_it(service):
    url = service.server.url
    name, token = new_user(service)

    signed_in = sign_in(url, token)

    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/jobs"
    cookies = cookies_set(signed_in)
    session_cookie = cookie_value(cookies["lifrnn_session"])
    assert all(token not in line for line in cookies.values())
    assert (
        "HttpOnly" in cookies["lifrnn_session"] and "SameSite=strict" in cookies["lifrnn_session"]
    )
    assert "Secure" not in cookies["lifrnn_session"]  # plain http, no proxy
    secret = session_cookie.rsplit(".", 1)[0]
    assert me(url, secret).status_code == 401  # the cookie is no API token either
    cookie = browser_cookies(signed_in)
    page = queue_page(url, cookie)
    assert page.status_code == 200 and name in page.text
    forged = queue_page(url, cookie.replace(session_cookie, secret + ".forged-signature"))
    assert forged.status_code == 303

    csrf = cookie_value(cookies["lifrnn_csrf"])
    signed_out = httpx.post(
        f"{url}/ui/logout", data={"csrf": csrf}, headers={"Cookie": cookie}, timeout=10
    )

    assert signed_out.status_code == 303
    assert 'lifrnn_session=""' in signed_out.headers["set-cookie"]
    again = queue_page(url, cookie)  # the old cookie, kept (copied) after signing out
    assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")


def test_cookies_are_secure_behind_a_trusted_tls_proxy(service):
    url = service.server.url
    _, token = new_user(service)
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}

    signed_in = sign_in(url, token, headers=proxied)

    assert signed_in.status_code == 303
    for name in ("lifrnn_session", "lifrnn_csrf"):
        assert "Secure" in cookies_set(signed_in)[name], name
    page = httpx.get(
        f"{url}/ui/jobs", headers={**proxied, "Cookie": browser_cookies(signed_in)}, timeout=10
    )
    assert page.status_code == 200


@pytest.fixture(scope="module")
def untrusting_server(tmp_path_factory: pytest.TempPathFactory):
    """A SQLite server that trusts only a proxy at 192.0.2.1 (not this test, at 127.0.0.1)."""
    home = tmp_path_factory.mktemp("untrusting")
    env = server_env(home, None, workers=0, forwarded_allow_ips="192.0.2.1", access_log="false")
    server = Server(home, env)
    server.start()
    try:
        yield server, new_user(server)[1]
    finally:
        server.stop()


def test_forwarded_https_from_an_untrusted_address_does_not_make_cookies_secure(
    untrusting_server,
):
    server, token = untrusting_server
    signed_in = sign_in(server.url, token, headers={"X-Forwarded-Proto": "https"})
    assert signed_in.status_code == 303
    assert "Secure" not in cookies_set(signed_in)["lifrnn_session"]
    key = Path(server.home) / "session.key"  # made at first start, for the owner only
    assert key.stat().st_mode & 0o777 == 0o600
