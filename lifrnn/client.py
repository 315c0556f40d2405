"""Python client of the lifrnn job service (httpx).

    >>> from lifrnn.client import Client, fit, prepare, soc
    >>> client = Client()                        # LIFRNN_URL / LIFRNN_TOKEN, else the local token
    >>> network = client.submit(soc(method="kao2021", n=40))
    >>> reaches = client.submit(fit(network=network, duration=0.2, dt=0.002))  # waits server-side
    >>> trial = client.submit(prepare(network=reaches)).wait()
    >>> reaches.wait().metrics["r2_min"], reaches.artifacts["network.safetensors"].size
    >>> tensors = reaches.network()              # W, h, x_sp, C, x_star as torch tensors

Specs name stored inputs by id. A :class:`Job` given as the ``network`` of a spec stands for the
network it makes (``{"job": id}``): the new job waits on the server, nothing blocks here. Local
files and arrays named in a spec are uploaded by :meth:`Client.submit` (or by hand with
:meth:`Client.upload`). Errors are specific exceptions carrying the server's message, all
:class:`ClientError`:
:class:`Unauthorized` (401), :class:`NotFound` (404), :class:`InvalidSpec` (422, with the field
messages in ``.fields``), :class:`QuotaExceeded` (429), all :class:`LifrnnHTTPError`; and
:class:`JobFailed` / :class:`JobCancelled` (with the server's ``.reason``) from :meth:`Job.wait`.
Each is also importable by its long name (``NotFoundError``, ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx
from httpx_sse import connect_sse
from pydantic import BaseModel

from lifrnn.builders import fit, fit_data, prepare, reference, retrain, soc
from lifrnn.durations import format_duration
from lifrnn.specs.local import replace_local_paths

if TYPE_CHECKING:
    import pandas
    import torch

__all__ = [
    "Artifact",
    "Client",
    "ClientError",
    "Conflict",
    "ConflictError",
    "ConnectionFailedError",
    "File",
    "FileList",
    "Forbidden",
    "ForbiddenError",
    "InvalidSpec",
    "InvalidSpecError",
    "Job",
    "JobCancelled",
    "JobCancelledError",
    "JobFailed",
    "JobFailedError",
    "JobList",
    "LifrnnHTTPError",
    "Network",
    "NetworkList",
    "NetworkTensors",
    "NotFound",
    "NotFoundError",
    "QuotaExceeded",
    "QuotaExceededError",
    "SearchResult",
    "Sweep",
    "SweepList",
    "Unauthorized",
    "UnauthorizedError",
    "WaitTimeoutError",
    "fit",
    "fit_data",
    "prepare",
    "retrain",
    "soc",
]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
JOB_STATUSES = (
    "waiting",
    "queued",
    "running",
    "cancelling",
    "succeeded",
    "failed",
    "cancelled",
)
"""A job's statuses (the service's status machine, docs/service.md "Jobs and their status")."""
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
NETWORK_ARTIFACT = "network.safetensors"
EVENT_PAGE = 1000
HISTORY_EVENTS = frozenset({"status", "progress"})
"""Stream events that are history entries, with their own ids."""
STREAM_READ_SECONDS = 30.0
"""An event stream silent this long (the server pings every 5 s) is opened again."""


# --- errors -------------------------------------------------------------------------------------


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


# --- results ------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass
class Artifact:
    """A file a job produced (download with :meth:`download`).

    A figure is drawn when first downloaded: until then ``pending`` is True and ``size`` and
    ``sha256`` are None (the job's record has them after the first download).
    """

    id: str
    name: str
    media_type: str
    size: int | None
    sha256: str | None
    client: Client = field(repr=False, compare=False)
    pending: bool = False

    def download(self, path: str | Path | None = None) -> Path:
        """Write the file to ``path`` (a file, or an existing folder; default: ./NAME)."""
        return self.client.download_artifact(self.id, path, name=self.name, sha256=self.sha256)

    def read_bytes(self) -> bytes:
        """The file's content."""
        return self.client.artifact_bytes(self.id)

    def reference(self) -> str:
        """Its id: what a spec's file field (or ``network``, for a network file) holds."""
        return self.id


@dataclass
class NetworkTensors:
    """A saved network as torch tensors (``W`` (n, n), and for a fit ``h``, ``x_sp``, ``C``,
    ``x_star``) with its metadata (``tau``, ``dt``, ``gain``, ``n_excitatory``, ...)."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]

    def __getattr__(self, name: str) -> torch.Tensor:
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def meta(self, key: str) -> Any:
        """Metadata value ``key``, decoded from JSON where it is JSON (numbers, lists)."""
        import json

        value = self.metadata[key]
        try:
            return json.loads(value)
        except ValueError:
            return value

    @property
    def n_excitatory(self) -> int:
        """Number of excitatory units (the first ones)."""
        return int(self.metadata["n_excitatory"])


def load_network_file(path: str | Path, device: str = "cpu") -> NetworkTensors:
    """Read a ``.safetensors`` network into torch tensors (no pickle involved)."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt", device=device) as handle:
        metadata = dict(handle.metadata() or {})
        for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensors[name] = handle.get_tensor(name)
    return NetworkTensors(tensors=tensors, metadata=metadata)


class _Record:
    """A server object held as its JSON; attributes read from it."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        """The object as the server last sent it (JSON)."""
        return dict(self._data)

    @property
    def id(self) -> str:
        """The object's id (a UUID)."""
        return str(self._data["id"])


class Job(_Record):
    """A job of the service; :meth:`refresh` reads it again, :meth:`wait` follows it."""

    @property
    def kind(self) -> str:
        """``soc``, ``fit``, ``prepare`` or ``retrain``."""
        return str(self._data["kind"])

    @property
    def status(self) -> str:
        """``waiting`` (for a parent job), ``queued``, ``running``, ``cancelling``, ``succeeded``,
        ``failed`` or ``cancelled``."""
        return str(self._data["status"])

    @property
    def done(self) -> bool:
        """True once the status is final."""
        return self.status in FINAL_STATUSES

    @property
    def reused(self) -> bool:
        """True when :meth:`Client.submit` got an earlier run of the same spec back."""
        return bool(self._data.get("reused", False))

    @property
    def progress(self) -> float:
        """Fraction done, 0 to 1."""
        return float(self._data.get("progress") or 0.0)

    @property
    def elapsed_seconds(self) -> float | None:
        """Seconds since the run started (to its end once finished); None before."""
        value = self._data.get("elapsed_seconds")
        return None if value is None else float(value)

    @property
    def eta_seconds(self) -> float | None:
        """The runner's estimate of the seconds left while running (None: none yet)."""
        value = self._data.get("eta_seconds")
        return None if value is None else float(value)

    @property
    def message(self) -> str:
        """The last progress message."""
        return str(self._data.get("message") or "")

    @property
    def error(self) -> str | None:
        """Why the job failed or was cancelled (None otherwise)."""
        return self._data.get("error")

    @property
    def metrics(self) -> dict[str, Any]:
        """The job's metrics (empty until it finishes)."""
        return dict(self._data.get("metrics") or {})

    @property
    def spec(self) -> dict[str, Any]:
        """The resolved spec the server stored."""
        return dict(self._data.get("spec") or {})

    @property
    def name(self) -> str | None:
        """What you called the run (None: unnamed)."""
        return self._data.get("name")

    @property
    def tags(self) -> dict[str, str]:
        """The run's ``key: value`` tags."""
        return dict(self._data.get("tags") or {})

    @property
    def note(self) -> str | None:
        """The run's note."""
        return self._data.get("note")

    @property
    def params(self) -> dict[str, Any]:
        """The resolved spec flattened to dotted keys (``network.seed``), as search sees it."""
        return dict(self._data.get("params") or {})

    @property
    def flat_metrics(self) -> dict[str, Any]:
        """The metrics flattened to dotted keys, lists indexed and reduced (``r2.min``), as
        search sees them."""
        return dict(self._data.get("flat_metrics") or {})

    def label(self, **labels: Any) -> Job:
        """Change the run's ``name``, ``tags`` (replaced whole) or ``note``; None clears one.
        Returns itself, updated."""
        self._data = self._client._request("PATCH", f"/jobs/{self.id}", json=labels).json()
        return self

    @property
    def queued_at(self) -> datetime | None:
        """When the job was submitted (UTC)."""
        return _time(self._data.get("queued_at"))

    @property
    def started_at(self) -> datetime | None:
        """When the job started running (UTC)."""
        return _time(self._data.get("started_at"))

    @property
    def finished_at(self) -> datetime | None:
        """When the job reached its final status (UTC)."""
        return _time(self._data.get("finished_at"))

    def _detail(self) -> dict[str, Any]:
        # a listing row lacks the artifacts; an unfinished job's may still come
        if "artifacts" not in self._data or not self.done:
            self.refresh()
        return self._data

    @property
    def artifacts(self) -> dict[str, Artifact]:
        """The job's files by name (``network.safetensors``, ``fit.png``, ``spec.json``, ...)."""
        return {
            item["name"]: Artifact(
                id=item["id"],
                name=item["name"],
                media_type=item["media_type"],
                size=item["size"],
                sha256=item["sha256"],
                client=self._client,
                pending=bool(item.get("pending", False)),
            )
            for item in self._detail().get("artifacts", [])
        }

    @property
    def network_ids(self) -> list[str]:
        """Ids of the networks this job made (one for a succeeded soc/fit/retrain job)."""
        return list(self._detail().get("network_ids", []))

    def refresh(self) -> Job:
        """Read the job again from the service; returns itself."""
        self._data = self._client._get_json(f"/jobs/{self.id}")
        return self

    def wait(self, timeout: float | None = None, progress: bool = True) -> Job:
        """Wait until the job finishes; returns itself when it succeeded.

        Follows the job's server-sent event stream (reconnecting with ``Last-Event-ID`` when
        the connection drops or the server closes a long stream), so nothing is polled.
        ``progress``: show a progress bar with the time left (tqdm if installed, else rich;
        both work in notebooks). Raises :class:`JobFailedError` or :class:`JobCancelledError`
        with the server's reason, and :class:`WaitTimeoutError` after ``timeout`` seconds
        (within the stream's ping interval, 5 s; the job itself goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with _progress_bar(f"{self.kind} {self.id[:8]}", enabled=progress) as bar:
            self.refresh()
            bar.update(self.progress, _progress_text(self._data))
            if not self.done:
                for event in self._client.stream(self.id, deadline=deadline):
                    if event.name in ("state", "progress", "status"):
                        bar.update(event.data.get("progress") or 0.0, _progress_text(event.data))
                if time.monotonic() >= (deadline or float("inf")):
                    self.refresh()
                    if not self.done:
                        raise WaitTimeoutError(
                            f"job {self.id} still {self.status} after {timeout} s "
                            f"({self.progress:.0%}: {self.message})"
                        )
                self.refresh()
            bar.update(self.progress, _progress_text(self._data))
        if self.status == "failed":
            raise JobFailedError(self)
        if self.status == "cancelled":
            raise JobCancelledError(self)
        return self

    def series(self, *names: str) -> dict[str, Curve]:
        """The job's curves (``abscissa``, ``cost``, ``loss``, ...; all without ``names``) by
        optimiser iteration, as :class:`Curve` (``steps``, ``values``; numpy via
        ``np.asarray``)."""
        return self._client.series(self.id, *names)

    def cancel(self) -> Job:
        """Cancel a queued job or ask a running one to stop; returns itself, refreshed."""
        self._client._request("POST", f"/jobs/{self.id}/cancel")
        return self.refresh()

    def delete(self) -> None:
        """Delete the job with its history, artifacts and networks (cancel a running one first)."""
        self._client._request("DELETE", f"/jobs/{self.id}")

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """The job's history: status changes and progress reports, oldest first."""
        return self._client.events(self.id, after=after)

    def download(self, name: str, path: str | Path | None = None) -> Path:
        """Download artifact ``name`` to ``path`` (a file or an existing folder; default ./NAME)."""
        artifacts = self.artifacts
        if name not in artifacts:
            known = ", ".join(sorted(artifacts)) or "none"
            raise NotFoundError(404, f"job {self.id} has no artifact {name!r} (it has: {known})")
        return artifacts[name].download(path)

    def network(self, name: str = NETWORK_ARTIFACT, device: str = "cpu") -> NetworkTensors:
        """The job's network as torch tensors (safetensors, never pickle), ready for
        ``lifrnn_core.dynamics.simulate``."""
        with tempfile.TemporaryDirectory(prefix="lifrnn-") as folder:
            path = self.download(name, Path(folder) / name)
            return load_network_file(path, device=device)

    def reference(self) -> dict[str, str]:
        """``{"job": id}``: the network this job makes, as a spec's ``network`` (the job that
        names it waits for this one on the server)."""
        return {"job": self.id}

    @overload
    def figures(self, directory: None = None) -> list[Artifact]: ...

    @overload
    def figures(self, directory: str | Path) -> list[Path]: ...

    def figures(self, directory: str | Path | None = None) -> list[Artifact] | list[Path]:
        """The job's PNG figures; with ``directory``, downloaded there (paths returned)."""
        pngs = [a for a in self.artifacts.values() if a.media_type == "image/png"]
        if directory is None:
            return pngs
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        return [artifact.download(folder / artifact.name) for artifact in pngs]

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"


class Network(_Record):
    """A trained network the service keeps (made by a succeeded soc, fit or retrain job)."""

    @property
    def kind(self) -> str:
        """Kind of the job that made it."""
        return str(self._data["kind"])

    @property
    def n(self) -> int:
        """Number of units."""
        return int(self._data["n"])

    @property
    def method(self) -> str | None:
        """SOC method (``hennequin2014``/``kao2021``) when known."""
        return self._data.get("method")

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics of the job that made it."""
        return dict(self._data.get("metrics") or {})

    @property
    def job_id(self) -> str:
        """Id of the job that made it."""
        return str(self._data["job_id"])

    @property
    def artifact_id(self) -> str:
        """Id of its ``network.safetensors`` artifact."""
        return str(self._data["artifact_id"])

    @property
    def parent_network_id(self) -> str | None:
        """The network it was built on, if any."""
        return self._data.get("parent_network_id")

    @property
    def created_at(self) -> datetime | None:
        """When it was stored (UTC)."""
        return _time(self._data.get("created_at"))

    @property
    def lineage(self) -> list[Network]:
        """Its ancestors, parent first."""
        if "lineage" not in self._data:
            self.refresh()
        return [Network(self._client, item) for item in self._data.get("lineage", [])]

    def refresh(self) -> Network:
        """Read the network again from the service; returns itself."""
        self._data = self._client._get_json(f"/networks/{self.id}")
        return self

    def job(self) -> Job:
        """The job that made it."""
        return self._client.job(self.job_id)

    def reference(self) -> str:
        """Its id: what a spec's ``network`` holds."""
        return self.id

    def download(self, path: str | Path | None = None) -> Path:
        """Download its ``network.safetensors`` (default ./network.safetensors)."""
        return self._client.download_artifact(self.artifact_id, path, name=NETWORK_ARTIFACT)

    def load(self, device: str = "cpu") -> NetworkTensors:
        """Its tensors (torch, from safetensors)."""
        with tempfile.TemporaryDirectory(prefix="lifrnn-") as folder:
            return load_network_file(self.download(Path(folder) / NETWORK_ARTIFACT), device)

    def __repr__(self) -> str:
        return f"Network(id={self.id!r}, kind={self.kind!r}, n={self.n})"


class File(_Record):
    """A stored file: one you uploaded (:meth:`Client.upload`) or an artifact of your jobs."""

    @property
    def name(self) -> str:
        """Its file name."""
        return str(self._data["name"])

    @property
    def size(self) -> int:
        """Bytes."""
        return int(self._data["size"])

    @property
    def sha256(self) -> str:
        """SHA-256 of its bytes."""
        return str(self._data["sha256"])

    @property
    def format(self) -> str:
        """``safetensors``, ``npy``, ..."""
        return str(self._data.get("format") or "")

    @property
    def shape(self) -> list[int] | None:
        """Shape of its one tensor (a ``.npy`` file's array), else None."""
        shape = self._data.get("shape")
        return list(shape) if shape is not None else None

    @property
    def tensors(self) -> dict[str, Any]:
        """Every tensor: ``{name: {"dtype": ..., "shape": [...]}}``."""
        return dict(self._data.get("tensors") or {})

    def reference(self) -> str:
        """Its id: what a spec's file field holds."""
        return self.id

    def download(self, path: str | Path | None = None) -> Path:
        """Write the file to ``path`` (a file, or an existing folder; default ./NAME)."""
        return self._client.download_file(self.id, path, name=self.name, sha256=self.sha256)

    def delete(self) -> None:
        """Delete it (409 while a job that has not finished reads it)."""
        self._client.delete_file(self.id)

    def __repr__(self) -> str:
        return f"File(id={self.id!r}, name={self.name!r}, size={self.size})"


class _Page(list[Any]):
    """A page of a listing: a list, plus ``total`` (all matches; None when asked with
    ``count=False``), ``has_more`` (another page follows) and :meth:`to_dataframe`."""

    total: int | None = None
    has_more: bool = False
    columns: tuple[str, ...] = ()

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per item: the listing's columns, then each scalar metric."""
        rows = []
        for item in self:
            data = item.data
            row = {column: data.get(column) for column in self.columns}
            for name, value in (data.get("metrics") or {}).items():
                if isinstance(value, int | float | str | bool) or value is None:
                    row.setdefault(name, value)
            rows.append(row)
        return rows

    def to_dataframe(self) -> pandas.DataFrame:
        """The page as a pandas DataFrame (``pip install lifrnn[pandas]``), indexed by id."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_dataframe needs pandas: pip install 'lifrnn[pandas]' (or pandas)"
            ) from None
        frame = pandas.DataFrame(self.rows())
        for column in self.columns:
            if column.endswith("_at") and column in frame.columns:
                frame[column] = pandas.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame.set_index("id") if "id" in frame.columns else frame


PageT = TypeVar("PageT", bound=_Page)


def _fill_page(page: PageT, data: dict[str, Any]) -> PageT:
    """``page`` with the listing's ``total`` (None when not counted) and ``has_more``."""
    total = data.get("total")
    page.total = None if total is None else int(total)
    page.has_more = bool(data.get("has_more", False))
    return page


class SearchResult:
    """The jobs matching a search (:meth:`Client.search`); iterating pages through all of them
    lazily (``page_size`` per request), ``total`` counts them, :meth:`to_dataframe` makes one
    table of them."""

    def __init__(self, client: Client, query: dict[str, Any], page_size: int = 200) -> None:
        self._client = client
        self._query = query
        self._page_size = page_size
        self._first: dict[str, Any] | None = None

    def _page(self, offset: int) -> dict[str, Any]:
        if offset == 0 and self._first is not None:
            return self._first
        page: dict[str, Any] = self._client._get_json(
            "/jobs",
            **self._query,
            limit=self._page_size,
            offset=offset,
            count=offset == 0 or None,  # the first page counts every match, once
        )
        if offset == 0:
            self._first = page
        return page

    @property
    def total(self) -> int:
        """How many jobs match (when the first page was read)."""
        return int(self._page(0)["total"])

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[Job]:
        seen: set[str] = set()
        offset = 0
        while True:
            items = self._page(offset)["items"]
            for item in items:
                if item["id"] not in seen:  # a job submitted meanwhile shifts the pages
                    seen.add(item["id"])
                    yield Job(self._client, item)
            if len(items) < self._page_size:
                return
            offset += len(items)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per job: ``id, name, kind, status, created, seconds`` (its run's wall
        time), then ``params.*``, ``metrics.*`` (flattened) and ``tags.*``."""
        rows = []
        for job in self:
            started, finished = job.started_at, job.finished_at
            row: dict[str, Any] = {
                "id": job.id,
                "name": job.name,
                "kind": job.kind,
                "status": job.status,
                "created": job.data.get("queued_at"),
                "seconds": (finished - started).total_seconds() if started and finished else None,
            }
            row.update({f"params.{key}": value for key, value in job.params.items()})
            row.update({f"metrics.{key}": value for key, value in job.flat_metrics.items()})
            row.update({f"tags.{key}": value for key, value in job.tags.items()})
            rows.append(row)
        return rows

    def to_dataframe(self) -> pandas.DataFrame:
        """Every match as a pandas DataFrame (``pip install lifrnn[pandas]``), indexed by id."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_dataframe needs pandas: pip install 'lifrnn[pandas]' (or pandas)"
            ) from None
        base = ["id", "name", "kind", "status", "created", "seconds"]
        frame = pandas.DataFrame(self.rows())
        if frame.empty:
            frame = pandas.DataFrame(columns=base)
        frame["created"] = pandas.to_datetime(frame["created"], utc=True, format="ISO8601")
        return frame.set_index("id")

    def __repr__(self) -> str:
        return f"SearchResult({self._query!r})"


class JobList(_Page):
    """Jobs, newest first; ``total`` counts every match of the filters."""

    columns = ("id", "kind", "status", "progress", "queued_at", "finished_at", "error")


class NetworkList(_Page):
    """Networks, newest first; ``total`` counts every match of the filters."""

    columns = ("id", "kind", "n", "method", "job_id", "parent_network_id", "created_at")


class FileList(_Page):
    """Uploaded files, newest first; ``total`` counts them, ``used_bytes`` is your usage."""

    columns = ("id", "name", "size", "format", "shape", "sha256", "created_at")
    used_bytes: int = 0


# --- progress -----------------------------------------------------------------------------------


class _Bar:
    def update(self, fraction: float, message: str) -> None:
        pass

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _TqdmBar(_Bar):
    def __init__(self, label: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=1.0,
            desc=label,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
            leave=True,
            file=sys.stderr,
        )

    def update(self, fraction: float, message: str) -> None:
        self.bar.n = min(max(fraction, 0.0), 1.0)
        self.bar.set_postfix_str(message[:60], refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


class _RichBar(_Bar):
    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[message]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(label, total=1.0, message="")

    def update(self, fraction: float, message: str) -> None:
        self.progress.update(self.task, completed=fraction, message=message[:60])

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _progress_text(data: Mapping[str, Any]) -> str:
    """A progress bar's text: the message (or status) and the time left when known."""
    text = str(data.get("message") or data.get("status") or "")
    eta = data.get("eta_seconds")
    if isinstance(eta, int | float) and data.get("status") in ("running", "cancelling"):
        text = f"{text[:48]}, ~{format_duration(eta)} left"
    return text


def _json_or_empty(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a job: ``name`` (``status``, ``progress``, ``state``,
    ``ping``, ``reconnect``, ``end``), its history ``id`` (None for live ones), its data."""

    name: str
    id: int | None
    data: dict[str, Any]


@dataclass(frozen=True)
class Curve:
    """One curve of a job: ``values`` at optimiser iterations ``steps``."""

    steps: list[int]
    values: list[float]


def _progress_bar(label: str, enabled: bool) -> _Bar:
    if not enabled:
        return _Bar()
    try:
        return _TqdmBar(label)
    except ImportError:
        return _RichBar(label)


# --- the client ---------------------------------------------------------------------------------


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
        return _fill_page(JobList(Job(self, item) for item in data["items"]), data)

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
        return _fill_page(NetworkList(Network(self, item) for item in data["items"]), data)

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
        page = _fill_page(FileList(File(self, item) for item in data["items"]), data)
        page.used_bytes = int(data["used_bytes"])
        return page

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
        return _fill_page(SweepList(Sweep(self, item) for item in data["items"]), data)


def _sweep_value(value: Any) -> Any:
    """An axis value as JSON: a sweep ``{"sweep": id}``, a job ``{"job": id}``, numpy scalars
    as numbers."""
    from lifrnn.builders import Referable

    if isinstance(value, Referable):
        return value.reference()
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _sweep_axis(values: Any) -> Any:
    if isinstance(values, Sweep | Mapping):
        return _sweep_value(values)
    return [_sweep_value(value) for value in values]


def _random_axes(random: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(random)
    axes = {}
    for field_name, axis in dict(body.get("axes") or {}).items():
        if isinstance(axis, Mapping) and "choice" in axis:
            axis = {**axis, "choice": _sweep_axis(axis["choice"])}
        axes[field_name] = axis
    body["axes"] = axes
    return body


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    """``{"network": {"job": id}}`` as ``{"params.network.job": id}``: one column per leaf."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(f"{prefix}.{key}", item))
        return flat
    return {prefix: value}


class Sweep(_Record):
    """A sweep of the service: one job per point of its axes; :meth:`refresh` reads it again,
    :meth:`wait` follows it, :meth:`to_dataframe` tabulates its points."""

    @property
    def name(self) -> str | None:
        """What you called the sweep."""
        return self._data.get("name")

    @property
    def points(self) -> int:
        """How many points (jobs) it was created with."""
        return int(self._data.get("points") or 0)

    @property
    def axes(self) -> dict[str, Any]:
        """The axes as sent: ``{"grid": ...}``, ``{"zip": ...}`` or ``{"random": ...}``."""
        return dict(self._data.get("axes") or {})

    @property
    def counts(self) -> dict[str, int]:
        """Its jobs per status (every status, zeros too)."""
        return dict(self._data.get("progress", {}).get("counts") or {})

    @property
    def fraction(self) -> float:
        """Finished jobs over all jobs, 0 to 1."""
        return float(self._data.get("progress", {}).get("fraction") or 0.0)

    @property
    def done(self) -> bool:
        """True once every job has a final status."""
        progress = self._data.get("progress", {})
        return int(progress.get("finished", 0)) >= int(progress.get("total", 0))

    @property
    def created_at(self) -> datetime | None:
        """When the sweep was created (UTC)."""
        return _time(self._data.get("created_at"))

    def _rows(self) -> list[dict[str, Any]]:
        if "rows" not in self._data:  # a listing's item has no table
            self.refresh()
        return list(self._data.get("rows") or [])

    @property
    def job_ids(self) -> list[str]:
        """The ids of its jobs, in point order."""
        return [str(row["job_id"]) for row in self._rows()]

    @property
    def jobs(self) -> list[Job]:
        """Its jobs in point order, read in pages (a search on the ``sweep`` tag each carries;
        one request more per job whose tag was changed)."""
        ids = self.job_ids
        found = {job.id: job for job in self._client.search(f"tags.sweep = '{self.id}'")}
        return [found[job_id] if job_id in found else self._client.job(job_id) for job_id in ids]

    def reference(self) -> dict[str, str]:
        """``{"sweep": id}``: the networks of its jobs, as an axis of another sweep."""
        return {"sweep": self.id}

    def refresh(self) -> Sweep:
        """Read the sweep again (progress and table); returns itself."""
        self._data = self._client._get_json(f"/sweeps/{self.id}")
        return self

    def wait(self, timeout: float | None = None, progress: bool = True, poll: float = 1.0) -> Sweep:
        """Wait until every job has finished; returns itself. Jobs that failed or were
        cancelled do not raise: see :attr:`counts` and :meth:`summary`. Raises
        :class:`WaitTimeoutError` after ``timeout`` seconds (the jobs go on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with _progress_bar(f"sweep {self.id[:8]}", enabled=progress) as bar:
            while True:
                self.refresh()
                counts = {status: n for status, n in self.counts.items() if n}
                bar.update(self.fraction, ", ".join(f"{n} {s}" for s, n in counts.items()))
                if self.done:
                    return self
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeoutError(
                        f"sweep {self.id} not finished after {timeout} s ({self.fraction:.0%})"
                    )
                pause = poll if deadline is None else min(poll, deadline - time.monotonic())
                time.sleep(max(pause, 0.0))

    def cancel(self) -> Sweep:
        """Cancel every unfinished job; returns itself, refreshed."""
        self._data = self._client._request("POST", f"/sweeps/{self.id}/cancel").json()
        return self

    def delete(self) -> None:
        """Delete the sweep and its jobs (cancel a running sweep first)."""
        self._client._request("DELETE", f"/sweeps/{self.id}")

    def summary(self) -> list[dict[str, Any]]:
        """One flat dict per point: ``point, job_id, status``, the swept values as
        ``params.*`` (nested ones dotted: ``params.network.job``), the job's top-level numeric
        metrics as ``metrics.*``, and ``error``."""
        rows = []
        for row in self._rows():
            flat: dict[str, Any] = {
                "point": row["point"],
                "job_id": row["job_id"],
                "status": row["status"],
            }
            for field_name, value in row["values"].items():
                flat.update(_flat(f"params.{field_name}", value))
            flat.update({f"metrics.{key}": value for key, value in row["metrics"].items()})
            flat["error"] = row.get("error")
            rows.append(flat)
        return rows

    def to_dataframe(self) -> pandas.DataFrame:
        """:meth:`summary` as a pandas DataFrame indexed by point (``pip install
        lifrnn[pandas]``)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_dataframe needs pandas: pip install 'lifrnn[pandas]' (or pandas)"
            ) from None
        frame = pandas.DataFrame(self.summary())
        if frame.empty:
            frame = pandas.DataFrame(columns=["point", "job_id", "status", "error"])
        return frame.set_index("point")

    def __repr__(self) -> str:
        return f"Sweep(id={self.id!r}, points={self.points}, done={self.fraction:.0%})"


class SweepList(_Page):
    """Sweeps, newest first; ``total`` counts them all."""

    columns = ("id", "name", "points", "created_at")
