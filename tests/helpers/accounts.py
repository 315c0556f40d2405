"""Users and dashboard sign-ins of a served store, for the integration tests: a new user or a
short-lived token made in-process (as ``lifrnn users`` does), and the dashboard's sign-in form
driven with httpx, as a browser drives it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx

from helpers.services import Server, Service
from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.users import create_user, find_user, issue_token


def new_user(service: Service | Server, **quotas: int) -> tuple[str, str]:
    """A new user of the served store (in-process, as ``lifrnn users create`` does): name, token."""
    server = service.server if isinstance(service, Service) else service
    store = Store(
        Settings(home=server.home, database_url=server.env.get("LIFRNN_DATABASE_URL", ""))
    )
    name = f"user-{uuid.uuid4().hex[:8]}"
    try:
        with store.session() as session:
            _, token = create_user(session, name, **quotas)
            session.commit()
    finally:
        store.dispose()
    return name, token


def short_lived_token(service: Service, name: str, seconds: float) -> str:
    """Another token of user ``name``, expiring in ``seconds``."""
    server = service.server
    store = Store(
        Settings(home=server.home, database_url=server.env.get("LIFRNN_DATABASE_URL", ""))
    )
    try:
        with store.session() as session:
            token = issue_token(
                session, find_user(session, name), expires_in=timedelta(seconds=seconds)
            )
            session.commit()
    finally:
        store.dispose()
    return token


def cookies_set(response: httpx.Response) -> dict[str, str]:
    """Each ``Set-Cookie`` header of ``response`` by cookie name (the whole header line)."""
    found = {}
    for line in response.headers.get_list("set-cookie"):
        name = line.split("=", 1)[0]
        found[name] = line
    return found


def cookie_value(line: str) -> str:
    parsed = SimpleCookie()
    parsed.load(line)
    return next(iter(parsed.values())).value


def sign_in(url: str, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """Sign in through the dashboard's form, as a browser does; the answer to the POST.

    Cookies travel in explicit headers: a ``Secure`` cookie is still sent back to this plain-http
    test server, as the TLS proxy in front of it would.
    """
    page = httpx.get(f"{url}/ui/login", headers=headers, timeout=10)
    assert page.status_code == 200
    csrf = cookie_value(cookies_set(page)["lifrnn_csrf"])
    return httpx.post(
        f"{url}/ui/login",
        data={"csrf": csrf, "token": token, "next": "/ui/jobs"},
        headers={**(headers or {}), "Cookie": f"lifrnn_csrf={csrf}"},
        timeout=10,
    )


def browser_cookies(signed_in: httpx.Response) -> str:
    """The ``Cookie`` header a browser sends after that sign-in."""
    values = {name: cookie_value(line) for name, line in cookies_set(signed_in).items()}
    return f"lifrnn_session={values['lifrnn_session']}; lifrnn_csrf={values['lifrnn_csrf']}"


def queue_page(url: str, cookie: str) -> httpx.Response:
    return httpx.get(f"{url}/ui/jobs", headers={"Cookie": cookie}, timeout=10)
