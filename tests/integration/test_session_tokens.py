"""Sessions and event streams end with the token that opened them (SQLite and PostgreSQL).

A dashboard session is bound to the API token used to sign in: rotating, revoking or the expiry
of that token ends it at the next page (a page's JSON poll answers 401). An open event stream
checks its token again at least every ``LIFRNN_TOKEN_CACHE_SECONDS`` and ends with an
``unauthorized`` event saying why; the Python client raises :class:`UnauthorizedError` instead
of reconnecting. The streams are read from a second API process on the same store (``replica``:
no jobs of its own, a 0.5 s token cache), so a revocation made elsewhere must reach it through
the database, not through its cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from helpers.accounts import browser_cookies, new_user, queue_page, short_lived_token, sign_in
from helpers.services import Server, Service
from httpx_sse import ServerSentEvent, connect_sse

from lifrnn.client import Client, UnauthorizedError
from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.users import revoke_user

REPLICA_CACHE_SECONDS = 0.5
TOKEN_SECONDS = 1.2
"""The lifetime of a short-lived token: long enough to sign in or open a stream with it."""
MARGIN_SECONDS = 1.0
"""Time for one poll of the stream's loop, the database and the network."""
GIVE_UP_SECONDS = 5.0
QUEUED_SPEC = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 11}


@pytest.fixture(scope="module")
def replica(service: Service) -> Iterator[Server]:
    """Another API process of ``service``'s store (as ``lifrnn serve --api-workers N`` starts):
    it serves requests only, remembers tokens for 0.5 s and keeps streams open for a minute."""
    env = {
        **service.server.env,
        "LIFRNN_RUNS_JOBS": "false",
        "LIFRNN_WORKERS": "0",
        "LIFRNN_TOKEN_CACHE_SECONDS": str(REPLICA_CACHE_SECONDS),
        "LIFRNN_STREAM_MAX_SECONDS": "60",
    }
    server = Server(service.server.home, env)
    server.log = service.server.home / "replica.log"
    server.start()
    yield server
    server.stop()


def revoke(service: Service, name: str) -> None:
    """``lifrnn users revoke NAME``, in-process (the CLI in a subprocess takes a second)."""
    server = service.server
    store = Store(
        Settings(home=server.home, database_url=server.env.get("LIFRNN_DATABASE_URL", ""))
    )
    try:
        with store.session() as session:
            revoke_user(session, name)
            session.commit()
    finally:
        store.dispose()


def rotate(url: str, token: str) -> str:
    """``POST /me/tokens/rotate`` with ``token``; the new token."""
    answer = httpx.post(
        f"{url}/me/tokens/rotate", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def queued_job(service: Service, token: str) -> str:
    """A job of the token's user (who may run none) that stays queued: its stream stays open."""
    answer = httpx.post(
        f"{service.server.url}/jobs",
        json=QUEUED_SPEC,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code in (200, 201, 202), answer.text
    return str(answer.json()["id"])


def stream_until_the_end(
    url: str, token: str, job_id: str, end_the_token: Callable[[], float]
) -> tuple[ServerSentEvent, float, list[str]]:
    """Open the job's stream and, once it is live, call ``end_the_token()`` (which returns the
    ``time.monotonic()`` at which the token stopped working); read on to the final event. Returns
    that event, the seconds from the token's end to it, and the names of any events after it."""
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=url, headers=headers, timeout=10) as http,
        connect_sse(http, "GET", f"/jobs/{job_id}/events/stream") as source,
    ):
        assert source.response.status_code == 200
        events = source.iter_sse()
        ended_at = None
        for event in events:  # a ping every 0.5 s keeps this loop turning
            if ended_at is None and event.event == "state":  # the stream is live
                ended_at = end_the_token()
            if event.event in ("unauthorized", "end", "reconnect"):
                assert ended_at is not None
                return event, time.monotonic() - ended_at, [later.event for later in events]
            if ended_at is not None and time.monotonic() - ended_at > GIVE_UP_SECONDS:
                raise AssertionError(f"still streaming {GIVE_UP_SECONDS} s after the token ended")
    raise AssertionError("the stream closed without a final event")


@pytest.fixture
def queued(service: Service, replica: Server) -> tuple[str, str, str]:
    """A new user who may run no job, their token, and a job of theirs that stays queued."""
    name, token = new_user(service, max_running=0, max_queued=5)
    return name, token, queued_job(service, token)


# -- dashboard sessions ---------------------------------------------------------------------------


def test_a_dashboard_session_ends_when_its_token_is_rotated_not_another(service):
    url = service.server.url
    _, token = new_user(service)
    _, other = new_user(service)
    cookie = browser_cookies(sign_in(url, token))
    rotate(url, other)  # someone else's token: nothing to do with this session
    assert queue_page(url, cookie).status_code == 200

    rotate(url, token)

    page = queue_page(url, cookie)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")


def test_a_dashboard_session_ends_when_its_token_is_revoked(service):
    url = service.server.url
    name, token = new_user(service)
    cookie = browser_cookies(sign_in(url, token))
    assert queue_page(url, cookie).status_code == 200

    revoke(service, name)

    page = queue_page(url, cookie)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    poll = httpx.get(f"{url}/ui/jobs/{'0' * 36}/status.json", headers={"Cookie": cookie})
    assert poll.status_code == 401 and "sign in again" in poll.json()["detail"]


def test_a_dashboard_session_ends_when_its_token_expires(service):
    url = service.server.url
    name, _ = new_user(service)
    token = short_lived_token(service, name, seconds=TOKEN_SECONDS)
    expires = time.monotonic() + TOKEN_SECONDS  # at the latest
    cookie = browser_cookies(sign_in(url, token))
    assert queue_page(url, cookie).status_code == 200

    time.sleep(max(0.0, expires - time.monotonic()) + 0.1)

    page = queue_page(url, cookie)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")


# -- event streams --------------------------------------------------------------------------------


def test_an_open_stream_ends_when_its_token_is_revoked(service, replica, queued):
    name, token, job_id = queued

    final, seconds, after = stream_until_the_end(
        replica.url, token, job_id, lambda: (revoke(service, name), time.monotonic())[1]
    )

    assert final.event == "unauthorized" and final.json()["reason"] == "token revoked"
    assert seconds <= REPLICA_CACHE_SECONDS + MARGIN_SECONDS
    assert after == []  # and the stream closed
    again = httpx.get(
        f"{replica.url}/jobs/{job_id}/events/stream", headers={"Authorization": f"Bearer {token}"}
    )
    assert again.status_code == 401  # the replica forgot the token: no reconnecting


def test_an_open_stream_ends_when_its_token_is_rotated_on_another_process(service, replica, queued):
    _, token, job_id = queued

    final, seconds, after = stream_until_the_end(
        replica.url, token, job_id, lambda: (rotate(service.server.url, token), time.monotonic())[1]
    )

    assert final.event == "unauthorized" and final.json()["reason"] == "token revoked"
    assert "rotated" in final.json()["detail"]
    assert seconds <= REPLICA_CACHE_SECONDS + MARGIN_SECONDS
    assert after == []


def test_an_open_stream_ends_when_its_token_expires(service, replica):
    name, _ = new_user(service, max_running=0, max_queued=5)
    expires = time.monotonic() + TOKEN_SECONDS  # at the earliest: the delay is not undercounted
    token = short_lived_token(service, name, seconds=TOKEN_SECONDS)
    job_id = queued_job(service, token)

    final, seconds, after = stream_until_the_end(replica.url, token, job_id, lambda: expires)

    assert final.event == "unauthorized" and final.json()["reason"] == "token expired"
    assert "API token expired at" in final.json()["detail"]
    assert seconds <= REPLICA_CACHE_SECONDS + MARGIN_SECONDS
    assert after == []


def test_the_client_says_the_token_was_revoked_instead_of_reconnecting(service, replica, queued):
    name, token, job_id = queued
    revoked_at = None

    with (
        Client(replica.url, token=token, retries=0) as client,
        pytest.raises(UnauthorizedError, match="revoked") as raised,
    ):
        for event in client.stream(job_id, deadline=time.monotonic() + 10):
            if event.name == "state" and revoked_at is None:
                revoke(service, name)
                revoked_at = time.monotonic()

    assert raised.value.status_code == 401
    assert revoked_at is not None
    assert time.monotonic() - revoked_at <= REPLICA_CACHE_SECONDS + MARGIN_SECONDS
