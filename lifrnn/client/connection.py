"""The connection to a service (:class:`Client`): authentication, retries and backoff, errors
mapped to exceptions, and every call of the HTTP API."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse
from pydantic import BaseModel

from lifrnn.builders import reference
from lifrnn.client.errors import (
    _ERRORS,
    ClientError,
    ConnectionFailedError,
    LifrnnHTTPError,
    UnauthorizedError,
    _error_detail,
)
from lifrnn.client.pages import FileList, JobList, NetworkList, SearchResult
from lifrnn.client.progress import Curve, StreamEvent, _json_or_empty
from lifrnn.client.records import File, Job, Network
from lifrnn.client.sweeps import Sweep, SweepList, _random_axes, _sweep_axis
from lifrnn.specs.local import replace_local_paths

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
EVENT_PAGE = 1000
HISTORY_EVENTS = frozenset({"status", "progress"})
"""Stream events that are history entries, with their own ids."""
STREAM_READ_SECONDS = 30.0
"""An event stream silent this long (the server pings every 5 s) is opened again."""


def _local_token() -> tuple[str, Path] | None:
    """The token the local server wrote (``$LIFRNN_HOME/token``) and its file, when readable."""
    from lifrnn.settings import Settings

    try:
        path = Settings().token_path
        token = path.read_text().strip()
    except (OSError, ValueError):
        return None
    return (token, path) if token else None


def _spec_json(spec: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The spec as JSON data; jobs, networks and files given in a dict become references."""
    if isinstance(spec, BaseModel):
        return spec.model_dump(mode="json")
    data = dict(spec)
    if "network" in data:
        data["network"] = reference(data["network"])
    for name in ("initial_weights",):
        if name in data:
            data[name] = reference(data[name])
    return data


def _retry_after(response: httpx.Response, default: float) -> float:
    """The server's ``Retry-After`` in seconds (capped at a minute), else ``default``."""
    try:
        return min(float(response.headers.get("Retry-After", default)), 60.0)
    except ValueError:  # an HTTP date: not worth parsing for a busy database
        return default


def _since(value: datetime | timedelta | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, timedelta):
        value = datetime.now(UTC) - value
    return value.isoformat()


class Client:
    """A connection to a lifrnn service.

    ``url``: default ``$LIFRNN_URL``, else ``http://127.0.0.1:8000``. ``token``: default
    ``$LIFRNN_TOKEN``, else the local server's token file (``$LIFRNN_HOME/token``; then
    ``token_file`` is that file, which :meth:`rotate_token` rewrites).
    ``timeout``: seconds per HTTP request. ``retries``: how often a request that could not
    reach the service (or got 503) is tried again, with exponential backoff from ``backoff`` s.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("LIFRNN_URL") or DEFAULT_URL).rstrip("/")
        self.token = token or os.environ.get("LIFRNN_TOKEN")
        self.token_file: Path | None = None
        if not self.token and (local := _local_token()) is not None:
            self.token, self.token_file = local
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # the HTTP layer

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry_unsent_only: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; raise the specific error for a 4xx/5xx answer.

        ``retry_unsent_only``: retry only when the request surely did not arrive (a connection
        that could not be opened), for requests that must not run twice; no retry on 503.
        """
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt >= self.retries or (retry_unsent_only and not unsent):
                    raise ConnectionFailedError(
                        f"cannot reach the lifrnn service at {self.url} ({method} {path}): "
                        f"{type(error).__name__}: {error}; is `lifrnn serve` running, "
                        "and is LIFRNN_URL right?"
                    ) from error
                delay = self.backoff * 2**attempt
            else:
                if response.status_code == 503 and attempt < self.retries and not retry_unsent_only:
                    delay = _retry_after(response, self.backoff * 2**attempt)
                elif response.is_error:
                    raise self._error(response, method, path)
                else:
                    return response
            attempt += 1
            logger.warning("%s %s: retry %d in %.1f s", method, path, attempt, delay)
            time.sleep(delay)

    @staticmethod
    def _error(response: httpx.Response, method: str, path: str) -> LifrnnHTTPError:
        kind = _ERRORS.get(response.status_code, LifrnnHTTPError)
        return kind(response.status_code, _error_detail(response), method, path)

    def _get_json(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self._request("GET", path, params=query).json()

    # jobs

    def submit(
        self,
        spec: BaseModel | Mapping[str, Any],
        idempotency_key: str | None = None,
        reuse: bool = True,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        note: str | None = None,
    ) -> Job:
        """Queue a job; ``spec`` is a spec model (see :mod:`lifrnn.builders`) or a dict.

        A repeat with the same ``idempotency_key`` returns the job the first one created (and
        makes the submission safe to retry on any network error). With ``reuse`` (the default)
        your succeeded run of the same spec and code version comes back instead of a new run
        (``job.reused``); ``reuse=False`` always runs it again. ``name``, ``tags`` and ``note``
        label the run (not part of the spec; :meth:`Job.label` changes them later).
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = replace_local_paths(_spec_json(spec), lambda field, kind, path: self.upload(path).id)
        labels = {"name": name, "tags": dict(tags) if tags else None, "note": note}
        body.update({key: value for key, value in labels.items() if value is not None})
        response = self._request(
            "POST",
            "/jobs",
            json=body,
            headers=headers,
            params={"reuse": "true"} if reuse else None,
            retry_unsent_only=idempotency_key is None,
        )
        job = Job(self, response.json())
        logger.debug("submitted %s job %s", job.kind, job.id)
        return job

    def job(self, job_id: str) -> Job:
        """One job (raises :class:`NotFoundError`)."""
        return Job(self, self._get_json(f"/jobs/{job_id}"))

    def jobs(
        self,
        kind: str | None = None,
        status: str | None = None,
        since: datetime | timedelta | str | None = None,
        before: datetime | str | None = None,
        metric: str | Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        all_users: bool = False,
        filter: str | None = None,
        order_by: str | None = None,
        count: bool = True,
    ) -> JobList:
        """One page of your jobs, newest first (or in ``order_by``), filtered.

        ``since``/``before``: created at or after / before (a datetime, ISO text, or a timedelta
        back from now); ``metric``: ``"r2_min>=0.99"`` (a list combines with AND); ``filter`` and
        ``order_by``: the search grammar (see :meth:`search`, which pages through every match);
        ``count=False``: the page's ``total`` is None (the service skips counting every match),
        ``has_more`` still says whether another page follows.
        """
        data = self._get_json(
            "/jobs",
            kind=kind,
            status=status,
            created_after=_since(since),
            created_before=_since(before),
            metric=[metric] if isinstance(metric, str) else (list(metric) if metric else None),
            filter=filter,
            order_by=order_by,
            limit=limit,
            offset=offset,
            all_users=all_users or None,
            count=count or None,
        )
        return JobList._read(self, data)

    def search(
        self,
        filter: str | None = None,
        order_by: str | None = None,
        *,
        kind: str | None = None,
        status: str | None = None,
        page_size: int = 200,
        all_users: bool = False,
    ) -> SearchResult:
        """Your jobs matching ``filter``, in ``order_by`` (then newest first), like
        ``mlflow.search_runs``: ``client.search("params.n = 200 and metrics.r2_min >= 0.99",
        "metrics.cost asc").to_dataframe()``. The grammar is the service's (docs/service.md:
        Search); a bad filter raises :class:`InvalidSpec` naming the token and its position.
        Nothing is read until the result is iterated (or ``total`` asked for)."""
        query = {
            "filter": filter,
            "order_by": order_by,
            "kind": kind,
            "status": status,
            "all_users": all_users or None,
        }
        return SearchResult(self, query, page_size=page_size)

    def label(self, job_id: str, **labels: Any) -> Job:
        """Change job ``job_id``'s ``name``, ``tags`` or ``note`` (see :meth:`Job.label`)."""
        return Job(self, self._request("PATCH", f"/jobs/{job_id}", json=labels).json())

    def cancel(self, job_id: str) -> Job:
        """Cancel job ``job_id`` (see :meth:`Job.cancel`)."""
        return Job(self, self._request("POST", f"/jobs/{job_id}/cancel").json())

    def delete(self, job_id: str) -> None:
        """Delete job ``job_id`` with its history, artifacts and networks."""
        self._request("DELETE", f"/jobs/{job_id}")

    def events(self, job_id: str, after: int = 0) -> list[dict[str, Any]]:
        """Job ``job_id``'s history (``id``, ``at``, ``type``, ``status``, ``progress``, ...),
        every page of it from event ``after`` on."""
        events: list[dict[str, Any]] = []
        while True:
            page: list[dict[str, Any]] = self._get_json(
                f"/jobs/{job_id}/events", after=after, limit=EVENT_PAGE
            )
            events += page
            if len(page) < EVENT_PAGE:
                return events
            after = int(page[-1]["id"])

    def follow(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Yield job ``job_id``'s history entries as they happen, until its final status
        (following its event stream; a dropped connection resumes where it stopped)."""
        for event in self.stream(job_id):
            if event.id is not None:
                yield event.data

    def stream(
        self, job_id: str, after: int = 0, deadline: float | None = None
    ) -> Iterator[StreamEvent]:
        """The server-sent events of job ``job_id`` (see ``GET /jobs/{id}/events/stream``):
        history entries after id ``after`` (each with its ``id``), live ``state`` and ``ping``,
        up to ``end``. A stream the server closes, or a connection that drops, is opened again
        with ``Last-Event-ID`` (``retries`` times in a row at most, with backoff). Stops
        quietly at ``deadline`` (a ``time.monotonic()`` value). Raises :class:`UnauthorizedError`
        when the server ends the stream because its token was revoked, rotated or expired."""
        path = f"/jobs/{job_id}/events/stream"
        failures = 0
        while deadline is None or time.monotonic() < deadline:
            left = STREAM_READ_SECONDS if deadline is None else deadline - time.monotonic()
            timeout = httpx.Timeout(self.timeout, read=max(0.1, min(left, STREAM_READ_SECONDS)))
            headers = {"Last-Event-ID": str(after)} if after else {}
            try:
                with connect_sse(self._http, "GET", path, headers=headers, timeout=timeout) as sse:
                    if sse.response.is_error:
                        sse.response.read()
                        raise self._error(sse.response, "GET", path)
                    for item in sse.iter_sse():
                        failures = 0
                        if item.event == "unauthorized":  # token revoked, rotated or expired
                            ended = _json_or_empty(item.data)
                            detail = ended.get("detail") or ended.get("reason") or item.data
                            raise UnauthorizedError(401, str(detail), "GET", path)
                        entry = item.event in HISTORY_EVENTS and item.id  # live ones repeat the id
                        event = StreamEvent(
                            item.event, int(item.id) if entry else None, _json_or_empty(item.data)
                        )
                        after = event.id if event.id is not None else after
                        yield event
                        if event.name == "end":
                            return
                        if deadline is not None and time.monotonic() >= deadline:
                            return
            except httpx.ReadTimeout:
                continue  # silent longer than the pings allow, or the deadline: open again
            except httpx.TransportError as error:
                failures += 1
                if failures > self.retries:
                    raise ConnectionFailedError(
                        f"lost the event stream of job {job_id} at {self.url}: "
                        f"{type(error).__name__}: {error}"
                    ) from error
                delay = self.backoff * 2 ** (failures - 1)
                logger.warning("event stream of job %s: reconnecting in %.1f s", job_id, delay)
                time.sleep(delay)

    def series(self, job_id: str, *names: str, after: int = -1) -> dict[str, Curve]:
        """Job ``job_id``'s curves by name (all without ``names``), points after step
        ``after``."""
        data = self._get_json(f"/jobs/{job_id}/series", name=list(names) or None, after=after)
        return {
            key: Curve(list(curve["steps"]), list(curve["values"]))
            for key, curve in data["series"].items()
        }

    # networks and artifacts

    def network(self, network_id: str) -> Network:
        """One network with its lineage (raises :class:`NotFoundError`)."""
        return Network(self, self._get_json(f"/networks/{network_id}"))

    def networks(
        self,
        kind: str | None = None,
        n: int | None = None,
        method: str | None = None,
        metric: str | Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
        all_users: bool = False,
        count: bool = True,
    ) -> NetworkList:
        """Your networks, newest first, filtered (``metric`` and ``count`` as for :meth:`jobs`)."""
        data = self._get_json(
            "/networks",
            kind=kind,
            n=n,
            method=method,
            metric=[metric] if isinstance(metric, str) else (list(metric) if metric else None),
            limit=limit,
            offset=offset,
            all_users=all_users or None,
            count=count or None,
        )
        return NetworkList._read(self, data)

    # files

    def upload(self, source: str | Path | Any, name: str | None = None) -> File:
        """Upload a ``.safetensors`` or ``.npy`` file, or an array (saved as ``.npy``).

        ``source``: a local path, a numpy array or a torch tensor. Returns the stored
        :class:`File`; use it (or its id) as a spec's ``initial_weights``,
        ``movements.targets_file`` or, for a network file, ``network``.
        """
        if not isinstance(source, str | Path):
            source = reference(source)  # an array: written to a temporary .npy file
        path = Path(source).expanduser()
        with path.open("rb") as stream:
            response = self._request(
                "POST",
                "/files",
                params={"name": name or path.name},
                content=stream,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(path.stat().st_size),
                },
                retry_unsent_only=True,
            )
        uploaded = File(self, response.json())
        logger.debug("uploaded %s as %s", path, uploaded.id)
        return uploaded

    def file(self, file_id: str) -> File:
        """One of your files (an upload or an artifact) by id."""
        return File(self, self._get_json(f"/files/{file_id}"))

    def files(self, limit: int = 50, offset: int = 0, count: bool = True) -> FileList:
        """Your uploaded files, newest first (``used_bytes``: all you store, for the quota;
        ``count`` as for :meth:`jobs`)."""
        data = self._get_json("/files", limit=limit, offset=offset, count=count or None)
        return FileList._read(self, data)

    def delete_file(self, file_id: str) -> None:
        """Delete an uploaded file (409 while an unfinished job reads it)."""
        self._request("DELETE", f"/files/{file_id}")

    def download_file(
        self,
        file_id: str,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        sha256: str | None = None,
    ) -> Path:
        """Write file ``file_id`` to ``path`` (checked against its SHA-256)."""
        return self._download(f"/files/{file_id}/content", file_id, path, name, sha256)

    def artifact_bytes(self, artifact_id: str) -> bytes:
        """The content of artifact ``artifact_id``."""
        return self._request("GET", f"/artifacts/{artifact_id}").content

    def download_artifact(
        self,
        artifact_id: str,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        sha256: str | None = None,
    ) -> Path:
        """Write artifact ``artifact_id`` to ``path`` (a file or an existing folder).

        The file is written through a temporary name and checked against its SHA-256 (the
        server's ``X-Content-SHA256``, or ``sha256``) before it takes its name.
        """
        return self._download(f"/artifacts/{artifact_id}", artifact_id, path, name, sha256)

    def _download(
        self,
        url: str,
        identifier: str,
        path: str | Path | None,
        name: str | None,
        sha256: str | None,
    ) -> Path:
        target = Path(path) if path is not None else Path(name or identifier)
        if target.is_dir():
            target = target / (name or identifier)
        target.parent.mkdir(parents=True, exist_ok=True)
        response = self._request("GET", url)
        content = response.content
        expected = sha256 or response.headers.get("X-Content-SHA256")
        if expected and hashlib.sha256(content).hexdigest() != expected:
            raise ClientError(f"file {identifier}: downloaded bytes do not match its SHA-256")
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(content)
        partial.replace(target)
        return target

    # you and your token

    def me(self) -> dict[str, Any]:
        """Who you are (``GET /me``): ``name``, ``role``, ``quotas`` (``max_queued``,
        ``max_running``, ``max_bytes``, ``max_job_*``), ``usage`` (``queued``, ``running``,
        ``bytes``) and ``token`` (``label``, ``created_at``, ``expires_at``)."""
        me: dict[str, Any] = self._get_json("/me")
        return me

    def rotate_token(self, expires_in: str | None = None) -> dict[str, Any]:
        """Swap this client's token for a new one (``expires_in``: ``90d``, ``12h``, ``30m``;
        default the old token's lifetime) and use it from now on; the old one stops working.

        When the token came from the local token file (:attr:`token_file`), the new one is
        written there (mode 600). Returns the server's answer: ``token`` (shown this once),
        ``label``, ``created_at``, ``expires_at``.
        """
        params = {"expires_in": expires_in} if expires_in is not None else None
        answer: dict[str, Any] = self._request(
            "POST", "/me/tokens/rotate", params=params, retry_unsent_only=True
        ).json()
        self.token = str(answer["token"])
        self._http.headers["Authorization"] = f"Bearer {self.token}"
        if self.token_file is not None:
            from lifrnn.private_files import write_private_text

            try:
                write_private_text(self.token_file, self.token + "\n")
            except OSError as error:  # the old token is gone: the caller must still see the new
                logger.error("could not write the new token to %s: %s", self.token_file, error)
            else:
                logger.info("wrote the new token to %s", self.token_file)
        return answer

    def health(self) -> dict[str, Any]:
        """The service's ``/health`` (no token needed)."""
        health: dict[str, Any] = self._get_json("/health")
        return health

    # sweeps

    def sweep(
        self,
        spec: BaseModel | Mapping[str, Any],
        grid: Mapping[str, Any] | None = None,
        zip: Mapping[str, Any] | None = None,
        random: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> Sweep:
        """Submit one job per point of the axes over ``spec``'s dotted fields (docs/service.md:
        Sweeps).

        Exactly one of ``grid`` (every combination: ``{"seed": range(3), "radius": [8, 10,
        12]}``), ``zip`` (lists of one length, side by side) or ``random`` (``{"n": 20, "seed":
        0, "axes": {"radius": {"uniform": [5, 15]}}}``). A :class:`Sweep` as an axis stands for
        the networks of its jobs (``grid={"network": soc_sweep, "seed": [0, 1]}``), a
        :class:`Job` for its network. Every point is checked before any job is created; a bad
        one raises :class:`InvalidSpec` naming it. Returns the sweep (``.wait()``,
        ``.to_dataframe()``).
        """
        if isinstance(spec, BaseModel):  # only what was given: a swept n or method re-resolves
            base = spec.model_dump(mode="json", exclude_unset=True)
            base["kind"] = getattr(spec, "kind", None)
        else:
            base = _spec_json(spec)
        body: dict[str, Any] = {
            "spec": replace_local_paths(base, lambda field, kind, path: self.upload(path).id)
        }
        for way, axes in (("grid", grid), ("zip", zip)):
            if axes is not None:
                body[way] = {field: _sweep_axis(values) for field, values in axes.items()}
        if random is not None:
            body["random"] = _random_axes(random)
        if name is not None:
            body["name"] = name
        response = self._request("POST", "/sweeps", json=body, retry_unsent_only=True)
        return Sweep(self, response.json())

    def get_sweep(self, sweep_id: str) -> Sweep:
        """One of your sweeps, with its table (raises :class:`NotFoundError`)."""
        return Sweep(self, self._get_json(f"/sweeps/{sweep_id}"))

    def sweeps(self, limit: int = 50, offset: int = 0, count: bool = True) -> SweepList:
        """Your sweeps, newest first, with their progress (``total``: all of them; ``count``
        as for :meth:`jobs`)."""
        data = self._get_json("/sweeps", limit=limit, offset=offset, count=count or None)
        return SweepList._read(self, data)
