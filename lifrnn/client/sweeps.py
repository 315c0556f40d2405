"""Sweeps as the client shows them: the grid's axes, its jobs and their summary table."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lifrnn.client.errors import WaitTimeoutError
from lifrnn.client.pages import _Page, _pandas
from lifrnn.client.progress import _progress_bar
from lifrnn.client.records import Job, _defaulted, _optional, _Record, _time

if TYPE_CHECKING:
    import pandas


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

    name = _optional(str)
    """What you called the sweep."""

    points = _defaulted(int, 0)
    """How many points (jobs) it was created with."""

    axes = _defaulted(dict[str, Any], {})
    """The axes as sent: ``{"grid": ...}``, ``{"zip": ...}`` or ``{"random": ...}``."""

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

    created_at = _optional(_time)
    """When the sweep was created (UTC)."""

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
        pd = _pandas()
        frame = pd.DataFrame(self.summary())
        if frame.empty:
            frame = pd.DataFrame(columns=["point", "job_id", "status", "error"])
        return frame.set_index("point")

    def __repr__(self) -> str:
        return f"Sweep(id={self.id!r}, points={self.points}, done={self.fraction:.0%})"


class SweepList(_Page):
    """Sweeps, newest first; ``total`` counts them all."""

    columns = ("id", "name", "points", "created_at")
    record = Sweep
