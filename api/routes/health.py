"""``/health``: is the process up, and can it reach the parts it needs.

- ``/health/live``: the process answers; nothing else is checked (restart it when this fails).
- ``/health/ready``: the database, the broker (when ``LIFRNN_BROKER_URL`` names one) and the
  object store each answer within ``LIFRNN_HEALTH_TIMEOUT_SECONDS``: 200, else 503 naming each
  part that is down (send traffic elsewhere meanwhile).
- ``/health``: the process and its database only (cheap: what clients and benchmarks poll), 503
  when the database is down.

No token needed. The parts are checked at once, each in a daemon thread of its own, and the
answer never waits longer than the timeout: a part that has not answered by then counts as
``timed out``. Its check may go on in the background (a silent database can hold a connection
attempt for minutes), but it holds no thread that serves requests and does not delay the
process's exit; while :data:`MAX_LATE_CHECKS` checks of one part are late, that part counts as
``timed out`` without a new one. What went wrong is logged, not shown: these endpoints answer
anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import ClassVar

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lifrnn import __version__
from lifrnn.api.schemas import Health, Liveness
from lifrnn.store import Store
from lifrnn.store.objects import ObjectStoreUnavailableError

router = APIRouter(prefix="/health", tags=["health"])
logger = logging.getLogger(__name__)

MAX_LATE_CHECKS = 4
"""Checks of one part still running after their answer went out, before no more are started."""

OK = "ok"
NOT_CONFIGURED = "not configured"

UNAVAILABLE: dict[int | str, dict[str, object]] = {
    503: {"model": Health, "description": "a part named in the answer is down"}
}


def _database(store: Store) -> None:
    with store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _broker(url: str, timeout: float) -> None:
    from kombu import Connection

    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "max_retries": 0}
    with Connection(url, connect_timeout=timeout, transport_options=options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)


def _object_store(store: Store) -> None:
    store.objects.check()


def _outcome(part: str, check: Callable[[], None]) -> str:
    """``ok``, ``unreachable`` (no connection, a timeout, a 5xx) or ``error`` (it answered,
    refusing: credentials, a missing bucket, ...)."""
    from kombu.exceptions import OperationalError as BrokerError

    try:
        check()
    except (ObjectStoreUnavailableError, SQLAlchemyError, BrokerError, OSError) as error:
        logger.warning("readiness: the %s is unreachable: %s", part, error)
        return "unreachable"
    except Exception as error:
        logger.warning("readiness: the %s answers with an error: %r", part, error)
        return "error"
    return OK


class _Probe:
    """One check of one part in a daemon thread; counted as late once its answer went out
    without it, until it returns."""

    late_checks: ClassVar[dict[str, int]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, part: str, check: Callable[[], None]) -> None:
        self.part = part
        self.check = check
        self.loop = asyncio.get_running_loop()
        self.outcome: asyncio.Future[str] = self.loop.create_future()
        self.returned = False
        self.late = False

    def start(self) -> asyncio.Future[str]:
        """Start the check; its future outcome."""
        with self.lock:
            if self.late_checks.get(self.part, 0) >= MAX_LATE_CHECKS:
                self.outcome.set_result("timed out")
                return self.outcome
        threading.Thread(target=self._run, name=f"lifrnn-health-{self.part}", daemon=True).start()
        return self.outcome

    def give_up(self) -> None:
        """The answer goes out without this check: count it as late while it runs."""
        with self.lock:
            if not self.returned and not self.late:
                self.late = True
                self.late_checks[self.part] = self.late_checks.get(self.part, 0) + 1

    def _run(self) -> None:
        outcome = _outcome(self.part, self.check)
        with self.lock:
            self.returned = True
            if self.late:
                self.late_checks[self.part] -= 1
        with contextlib.suppress(RuntimeError):  # the event loop may be closed by now
            self.loop.call_soon_threadsafe(self._deliver, outcome)

    def _deliver(self, outcome: str) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)


async def _check(checks: dict[str, Callable[[], None]], timeout: float) -> dict[str, str]:
    """Run ``checks`` at once; each part's outcome, ``timed out`` when it took too long."""
    probes = {part: _Probe(part.replace("_", " "), check) for part, check in checks.items()}
    futures = {part: probe.start() for part, probe in probes.items()}
    _, pending = await asyncio.wait(futures.values(), timeout=timeout)
    outcomes = {}
    for part, future in futures.items():
        if future in pending:
            probes[part].give_up()
            outcomes[part] = "timed out"
        else:
            outcomes[part] = future.result()
    return outcomes


def _answer(response: Response, health: Health) -> Health:
    if health.status != OK:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return health


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """``ok`` while the process answers; checks nothing else."""
    return Liveness(status="ok", version=__version__)


@router.get("/ready", response_model=Health, responses=UNAVAILABLE)
async def ready(request: Request, response: Response) -> Health:
    """``ok`` when the database, the broker (if configured) and the object store all answer;
    503 ``unavailable`` naming each part that does not."""
    store: Store = request.app.state.store
    settings = store.settings
    checks: dict[str, Callable[[], None]] = {
        "database": lambda: _database(store),
        "object_store": lambda: _object_store(store),
    }
    if settings.broker_url:
        url, timeout = settings.broker_url, settings.health_timeout_seconds
        checks["broker"] = lambda: _broker(url, timeout)
    parts = await _check(checks, settings.health_timeout_seconds)
    parts.setdefault("broker", NOT_CONFIGURED)
    down = any(outcome not in (OK, NOT_CONFIGURED) for outcome in parts.values())
    return _answer(
        response,
        Health(
            status="unavailable" if down else "ok",
            version=__version__,
            workers=_workers(request),
            **parts,
        ),
    )


@router.get(
    "",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "the database is down"}},
)
async def health(request: Request, response: Response) -> Health:
    """``ok`` when the database answers (503 ``unavailable`` when it does not); see
    ``/health/ready`` for every part."""
    store: Store = request.app.state.store
    parts = await _check(
        {"database": lambda: _database(store)}, store.settings.health_timeout_seconds
    )
    return _answer(
        response,
        Health(
            status="ok" if parts["database"] == OK else "unavailable",
            version=__version__,
            database=parts["database"],
            workers=_workers(request),
        ),
    )


def _workers(request: Request) -> int:
    pool = getattr(request.app.state, "pool", None)
    return pool.size if pool is not None else 0
