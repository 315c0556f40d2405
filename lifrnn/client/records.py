"""What the service stores, as the client shows it: jobs, networks, files and artifacts, with
their accessors and actions; a network's tensors loaded locally."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from lifrnn.client.errors import JobCancelledError, JobFailedError, NotFoundError, WaitTimeoutError
from lifrnn.client.progress import Curve, _progress_bar, _progress_text

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
