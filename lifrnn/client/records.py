"""What the service stores, as the client shows it: jobs, networks, files and artifacts, with
their accessors and actions; a network's tensors loaded locally."""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Never, TypeVar, overload

from lifrnn.client.errors import JobCancelledError, JobFailedError, NotFoundError, WaitTimeoutError
from lifrnn.client.progress import Curve, _progress_bar, _progress_text
from lifrnn.networks import NetworkMetadata

if TYPE_CHECKING:
    import torch

    from lifrnn.client.connection import Client


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
class NetworkTensors(NetworkMetadata):
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


def load_network_file(path: str | Path, device: str = "cpu") -> NetworkTensors:
    """Read a ``.safetensors`` network into torch tensors (no pickle involved)."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt", device=device) as handle:
        metadata = dict(handle.metadata() or {})
        for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensors[name] = handle.get_tensor(name)
    return NetworkTensors(tensors=tensors, metadata=metadata)


T = TypeVar("T")


@functools.cache
def _attribute_docs(owner: type) -> dict[str, str]:
    """The docstrings written under ``owner``'s attributes in its source (Python keeps none);
    read once per class, when a docstring is first asked for (not at import)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(owner)))
    except (OSError, TypeError, SyntaxError):  # no source at hand: no docstrings
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.targets[0].id] = inspect.cleandoc(after.value.value)
    return docs


class _Field(Generic[T]):
    """A read-only attribute of a :class:`_Record`: ``read`` of the record's JSON and the
    attribute's name (the JSON key)."""

    def __init__(self, read: Callable[[dict[str, Any], str], T]) -> None:
        self._read = read
        self._key = ""
        self._owner: type = object

    def __set_name__(self, owner: type, name: str) -> None:
        self._key = name
        self._owner = owner

    @property  # type: ignore[misc]
    def __doc__(self) -> str | None:  # type: ignore[override]
        """The docstring written under the field (help(Job), ``Job.kind?`` in a notebook)."""
        return _attribute_docs(self._owner).get(self._key)

    @overload
    def __get__(self, record: None, owner: type) -> _Field[T]: ...

    @overload
    def __get__(self, record: _Record, owner: type) -> T: ...

    def __get__(self, record: _Record | None, owner: type) -> _Field[T] | T:
        if record is None:
            return self
        return self._read(record._data, self._key)

    def __set__(self, record: _Record, value: Never) -> None:
        owner = type(record).__name__
        raise AttributeError(f"property {self._key!r} of {owner!r} object has no setter")


def _required(convert: Callable[[Any], T]) -> _Field[T]:
    """The field as ``convert`` makes it (a ``KeyError`` when the server sent none)."""
    return _Field(lambda data, key: convert(data[key]))


def _defaulted(convert: Callable[[Any], T], empty: Any) -> _Field[T]:
    """The field as ``convert`` makes it, or of ``empty`` when it is missing, null or empty."""
    return _Field(lambda data, key: convert(data.get(key) or empty))


def _optional(convert: Callable[[Any], T | None]) -> _Field[T | None]:
    """The field as ``convert`` makes it, None when it is missing or null."""

    def read(data: dict[str, Any], key: str) -> T | None:
        value = data.get(key)
        return None if value is None else convert(value)

    return _Field(read)


class _Record:
    """A server object held as its JSON; attributes read from it (:class:`_Field`)."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        """The object as the server last sent it (JSON)."""
        return dict(self._data)

    id = _required(str)
    """The object's id (a UUID)."""


class Job(_Record):
    """A job of the service; :meth:`refresh` reads it again, :meth:`wait` follows it."""

    kind = _required(str)
    """``soc``, ``fit``, ``prepare``, ``retrain``, ``fit_data`` or ``simulate_spiking``."""

    status = _required(str)
    """``waiting`` (for a parent job), ``queued``, ``running``, ``cancelling``, ``succeeded``,
    ``failed`` or ``cancelled``."""

    @property
    def done(self) -> bool:
        """True once the status is final."""
        return self.status in FINAL_STATUSES

    reused = _defaulted(bool, False)
    """True when :meth:`Client.submit` got an earlier run of the same spec back."""

    progress = _defaulted(float, 0.0)
    """Fraction done, 0 to 1."""

    elapsed_seconds = _optional(float)
    """Seconds since the run started (to its end once finished); None before."""

    eta_seconds = _optional(float)
    """The runner's estimate of the seconds left while running (None: none yet)."""

    message = _defaulted(str, "")
    """The last progress message."""

    error = _optional(str)
    """Why the job failed or was cancelled (None otherwise)."""

    metrics = _defaulted(dict[str, Any], {})
    """The job's metrics (empty until it finishes)."""

    spec = _defaulted(dict[str, Any], {})
    """The resolved spec the server stored."""

    name = _optional(str)
    """What you called the run (None: unnamed)."""

    tags = _defaulted(dict[str, str], {})
    """The run's ``key: value`` tags."""

    note = _optional(str)
    """The run's note."""

    params = _defaulted(dict[str, Any], {})
    """The resolved spec flattened to dotted keys (``network.seed``), as search sees it."""

    flat_metrics = _defaulted(dict[str, Any], {})
    """The metrics flattened to dotted keys, lists indexed and reduced (``r2.min``), as
    search sees them."""

    def label(self, **labels: Any) -> Job:
        """Change the run's ``name``, ``tags`` (replaced whole) or ``note``; None clears one.
        Returns itself, updated."""
        self._data = self._client._request("PATCH", f"/jobs/{self.id}", json=labels).json()
        return self

    queued_at = _optional(_time)
    """When the job was submitted (UTC)."""

    started_at = _optional(_time)
    """When the job started running (UTC)."""

    finished_at = _optional(_time)
    """When the job reached its final status (UTC)."""

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

    kind = _required(str)
    """Kind of the job that made it."""

    n = _required(int)
    """Number of units."""

    method = _optional(str)
    """SOC method (``hennequin2014``/``kao2021``) when known."""

    metrics = _defaulted(dict[str, Any], {})
    """Metrics of the job that made it."""

    job_id = _required(str)
    """Id of the job that made it."""

    artifact_id = _required(str)
    """Id of its ``network.safetensors`` artifact."""

    parent_network_id = _optional(str)
    """The network it was built on, if any."""

    created_at = _optional(_time)
    """When it was stored (UTC)."""

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

    name = _required(str)
    """Its file name."""

    size = _required(int)
    """Bytes."""

    sha256 = _required(str)
    """SHA-256 of its bytes."""

    format = _defaulted(str, "")
    """``safetensors``, ``npy``, ..."""

    shape = _optional(list[int])
    """Shape of its one tensor (a ``.npy`` file's array), else None."""

    tensors = _defaulted(dict[str, Any], {})
    """Every tensor: ``{name: {"dtype": ..., "shape": [...]}}``."""

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
