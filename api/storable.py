"""Input no store can keep, refused at the door: :class:`StorableInput` answers 422 for NaN and
infinities, NUL characters and lone surrogates in a JSON body, and NUL characters in a query
parameter, naming where, before any route reads them (so before anything is written).

Why at the door: Python's JSON parser (Starlette's) takes ``NaN`` and ``Infinity``, which no
JSON column can hold and no JSON response can echo; PostgreSQL's text cannot hold a NUL (SQLite's
can: the same request must not succeed on one deployment and fail on the other); a lone
surrogate has no UTF-8. One check of every body covers every route, present and future, that
writes what it is sent; the wire schemas check the same (:data:`lifrnn.specs.StorableText`) for
callers that do not come through HTTP.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifrnn.api.deps import is_json
from lifrnn.specs import unstorable
from lifrnn.specs.base import shown_key, text_problem

SUSPECT = re.compile(rb"NaN|Infinity|[eE]\+?[0-9]{3}|\\u0000|\\u[dD][89a-fA-F]")
"""What every unstorable JSON body contains somewhere: a non-finite constant, an exponent that
may overflow (``1e400`` is parsed as infinity), an escaped NUL or surrogate (JSON text escapes
them); a body without any is passed on unparsed."""
NUL_ESCAPE = re.compile(rb"%00")


class UnstorableInputError(HTTPException):
    """Input a store cannot keep (422): ``problems`` are ``where: reason`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(problems))


def _non_finite(name: str) -> Any:
    return float(name)  # NaN, Infinity, -Infinity: parsed, to be named with their place


def body_problems(body: bytes) -> list[str]:
    """``field.path: reason`` for each unstorable part of the JSON text ``body``; empty when
    there is none, or when ``body`` is not JSON at all (the route's own parser says so)."""
    if not SUSPECT.search(body):
        return []
    try:
        value = json.loads(body, parse_constant=_non_finite)
    except (ValueError, RecursionError):
        return []
    return unstorable(value, max_depth=None)  # how deep a body may nest is the route's call


def query_problems(query_string: bytes) -> list[str]:
    """``query parameter NAME: reason`` for each query parameter holding a NUL character."""
    if not NUL_ESCAPE.search(query_string):
        return []
    problems = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        reason = text_problem(name) or text_problem(value)
        if reason is not None:
            problems.append(f"query parameter {shown_key(name)}: {reason}")
    return problems


class StorableInput:
    """ASGI middleware: 422 for a query parameter with a NUL, or a JSON body (``application/json``
    or ``application/*+json``) with a non-finite number, a NUL or a lone surrogate in it.

    The body is checked as the route reads it, once its last chunk has come: its size stays
    bounded by the limits around this middleware, and the 422 is raised inside the route's
    reading, where the app's exception handling answers it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = query_problems(scope.get("query_string", b""))
        if problems:
            error = UnstorableInputError(problems)
            response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
            await response(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        if not is_json(content_type):  # FastAPI reads no other body as JSON
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def checked() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    chunks.clear()
                    problems = body_problems(body)
                    if problems:
                        raise UnstorableInputError(problems)
            return message

        await self.app(scope, checked, send)
