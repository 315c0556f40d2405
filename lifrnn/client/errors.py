"""The client's exceptions: one per answer a user acts on differently, all :class:`ClientError`,
each also importable by its long name (``NotFoundError``, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from lifrnn.client.records import Job


class ClientError(Exception):
    """Base of every error the client raises."""


class ConnectionFailedError(ClientError):
    """The service could not be reached (after the retries)."""


class WaitTimeoutError(ClientError, TimeoutError):
    """:meth:`Job.wait` gave up before the job finished (the job goes on)."""


class LifrnnHTTPError(ClientError):
    """The service answered with an error status; ``detail`` is its message."""

    def __init__(self, status_code: int, detail: str, method: str = "", path: str = "") -> None:
        self.status_code = status_code
        self.detail = detail
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"{status_code}{where}: {detail}")


class UnauthorizedError(LifrnnHTTPError):
    """401: no token, an unknown one or an expired one (set LIFRNN_TOKEN or pass ``token=``)."""


class ForbiddenError(LifrnnHTTPError):
    """403: the token's user may not do this (e.g. ``all_users`` without admin)."""


class NotFoundError(LifrnnHTTPError):
    """404: no such job, network or artifact (or not yours)."""


class ConflictError(LifrnnHTTPError):
    """409: e.g. cancelling a finished job, or an Idempotency-Key reused with another spec."""


class InvalidSpecError(LifrnnHTTPError):
    """422: the spec (or a filter) is invalid; ``fields`` maps each field to its problem."""

    def __init__(self, status_code: int, detail: str, method: str = "", path: str = "") -> None:
        super().__init__(status_code, detail, method, path)
        self.fields = parse_field_messages(detail)


class QuotaExceededError(LifrnnHTTPError):
    """429: too many queued jobs; wait for some to finish or cancel some."""


class JobFailedError(ClientError):
    """The job ended ``failed``; ``reason`` is the server's error and ``job`` the job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.reason = job.error or "no reason given"
        super().__init__(f"job {job.id} ({job.kind}) failed: {self.reason}")


class JobCancelledError(ClientError):
    """The job ended ``cancelled``; ``reason`` is the server's note."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.reason = job.error or "cancelled"
        super().__init__(f"job {job.id} ({job.kind}) was cancelled: {self.reason}")


# The short names (``except NotFound:`` reads well in user code).
Unauthorized = UnauthorizedError
Forbidden = ForbiddenError
NotFound = NotFoundError
Conflict = ConflictError
InvalidSpec = InvalidSpecError
QuotaExceeded = QuotaExceededError
JobFailed = JobFailedError
JobCancelled = JobCancelledError


_ERRORS: dict[int, type[LifrnnHTTPError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidSpecError,
    429: QuotaExceededError,
}


def parse_field_messages(detail: str) -> dict[str, str]:
    """``{"field.path": "reason"}`` from the server's ``invalid spec: a: ...; b.c: ...``."""
    text = detail.removeprefix("invalid spec:").strip()
    fields: dict[str, str] = {}
    for part in text.split("; "):
        name, separator, message = part.partition(": ")
        if separator and name and " " not in name:
            fields[name] = message
    return fields


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's own validation errors (query parameters)
        return "; ".join(
            ".".join(str(p) for p in item.get("loc", []) if p not in ("query", "header", "body"))
            + f": {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        )
    return str(detail)
