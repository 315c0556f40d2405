"""A deadline on request headers for uvicorn, which has none of its own.

A client that opens a connection and then sends its request line and headers slowly (or not
at all) would otherwise hold the connection for ever; with ``limit_concurrency`` a few hundred
of them lock everyone out. :func:`http_protocol` returns uvicorn's HTTP protocol class with a
timer: from the moment a connection is idle between requests (opened, or its last response
sent) the next request's headers must be complete within ``seconds``, or the connection is
answered 408 and closed. Bodies have their own deadline in :class:`lifrnn.api.main.BodySizeLimit`.

Written by hand: uvicorn offers keep-alive and graceful-shutdown timeouts but no header
timeout; this subclasses its protocol and relies on its ``cycle`` attribute (the request in
progress), present in both its h11 and httptools implementations.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)

TIMEOUT_BODY = b"the request headers were not complete in time (LIFRNN_REQUEST_TIMEOUT_SECONDS)\n"
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    + f"content-length: {len(TIMEOUT_BODY)}\r\n\r\n".encode()
    + TIMEOUT_BODY
)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


@functools.cache
def _configured_seconds() -> float:
    """``LIFRNN_REQUEST_TIMEOUT_SECONDS`` as this process's settings say (read once)."""
    from lifrnn.settings import Settings

    return Settings().request_timeout_seconds


class HeaderDeadlineProtocol(_Base):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (httptools when installed, else h11) that closes a connection
    whose request headers take longer than ``header_seconds`` (None: the settings' value; a
    module-level class, so that uvicorn's worker processes can load it by name)."""

    header_seconds: float | None = None
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._arm()
        super().data_received(data)
        if not self._between_requests():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _seconds(self) -> float:
        return self.header_seconds if self.header_seconds is not None else _configured_seconds()

    def _between_requests(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is None or bool(cycle.response_complete)

    def _arm(self) -> None:
        if self._header_timer is None and self._between_requests():
            self._header_timer = self.loop.call_later(self._seconds(), self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._between_requests() or self.transport.is_closing():
            return
        logger.info("closed a connection whose request headers took over %g s", self._seconds())
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def http_protocol(seconds: float) -> type[asyncio.Protocol]:
    """:class:`HeaderDeadlineProtocol` with a deadline of ``seconds``."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_seconds": seconds})
