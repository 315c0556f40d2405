"""What every job runner shares: the context it runs in and the result it returns.

A runner is ``run(spec, context) -> JobResult``. It reads its stored inputs from
``context.inputs`` (local copies, by spec field), reports progress and checks for cancellation
through the context, saves checkpoints to ``context.checkpoints`` (an object store every worker
reaches), writes artifacts into ``context.out_dir``, and turns expected failures (invalid input,
no convergence, divergence) into a failed result with a readable reason.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifrnn.figure_recipes import FigureRecipe, encode_recipe, render_recipe
from lifrnn.files import atomic_write, read_safetensors_bytes, write_safetensors
from lifrnn.store.objects import ObjectNotFoundError, ObjectStore, delete_prefix
from lifrnn_core.errors import InvalidNetworkError


class JobCancelledError(Exception):
    """Raised inside a runner when the job was asked to stop."""


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink: ignore."""


def _no_series(series: str, step: int, value: float) -> None:
    """Default curve sink: ignore."""


def _never_cancelled() -> bool:
    return False


class Checkpoints:
    """One job's checkpoints: safetensors objects under ``prefix`` in an object store.

    They outlive the process running the job, and live where every worker reaches them, so a
    job run again after its worker died resumes instead of starting over, on any machine.
    ``min_seconds``: a checkpoint is written at most this often (``force`` writes anyway).
    """

    def __init__(self, objects: ObjectStore, prefix: str, min_seconds: float = 0.0) -> None:
        self.objects = objects
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.min_seconds = min_seconds
        self._last: dict[str, float] = {}

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}.safetensors"

    def save(
        self,
        name: str,
        tensors: Mapping[str, Any],
        step: int,
        metadata: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Save ``tensors`` (numpy or torch) as checkpoint ``name`` at ``step``; True if written."""
        now = time.monotonic()
        if not force and now - self._last.get(name, -float("inf")) < self.min_seconds:
            return False
        # Through a local scratch file, not bytes in memory: a spike-train fit's checkpoint
        # holds every trial's predictions (~0.3 GB at MC_Maze's size).
        with tempfile.TemporaryDirectory(prefix="lifrnn-checkpoint-") as scratch:
            path = Path(scratch) / "checkpoint.safetensors"
            write_safetensors(path, tensors, {**(metadata or {}), "step": str(step)})
            self.objects.put_file(self._key(name), path)
        self._last[name] = now
        return True

    def load(self, name: str) -> tuple[dict[str, np.ndarray], int, dict[str, str]] | None:
        """Tensors, step and metadata of checkpoint ``name``, or None when there is none."""
        try:
            payload = self.objects.get_bytes(self._key(name))
        except ObjectNotFoundError:
            return None
        tensors, metadata = read_safetensors_bytes(payload)
        return tensors, int(metadata.pop("step")), metadata

    def clear(self) -> int:
        """Remove every checkpoint of the job (it is over); returns how many."""
        return delete_prefix(self.objects, self.prefix)


@dataclass
class JobContext:
    """Where a job reads and writes, whom it tells about progress, how it learns to stop.

    Attributes:
        out_dir: folder for the job's artifacts.
        progress: called with (fraction in [0, 1], message).
        cancel_requested: polled between optimisation steps; True stops the job.
        inputs: local copies of the spec's stored inputs, by dotted spec field (``network``,
            ``initial_weights``, ``movements.targets_file``); the executor fetches them.
        checkpoints: where long runners save their state every few steps (None: nowhere).
        provenance: what each stored input was (id, name, SHA-256), recorded in ``spec.json``.
        milestones: where reports marked ``milestone`` go (default: ``progress``): they are
            kept in the job's history even when progress reports are thinned out.
        series: where curve points go: called with (series name, step, value).
        defer_figures: store each figure's recipe in :attr:`figures` instead of drawing it
            (the service draws it when first downloaded; see :mod:`lifrnn.figure_recipes`).
        artifacts: the files written so far, by artifact name.
        figures: the figures not drawn yet: artifact name -> its recipe file.
    """

    out_dir: Path
    progress: Callable[[float, str], None] = _no_progress
    cancel_requested: Callable[[], bool] = _never_cancelled
    inputs: dict[str, Path] = field(default_factory=dict)
    checkpoints: Checkpoints | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    milestones: Callable[[float, str], None] | None = None
    series: Callable[[str, int, float], None] = _no_series
    defer_figures: bool = False
    artifacts: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)

    def input_path(self, name: str) -> Path:
        """The local copy of input ``name`` (a dotted spec field)."""
        try:
            return self.inputs[name]
        except KeyError:
            raise InvalidNetworkError(f"{name}: the stored input was not provided") from None

    def save_checkpoint(
        self,
        name: str,
        tensors: Mapping[str, Any],
        step: int,
        metadata: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        """Save ``tensors`` as checkpoint ``name`` at ``step`` (see :class:`Checkpoints`)."""
        if self.checkpoints is not None:
            self.checkpoints.save(name, tensors, step, metadata, force)

    def load_checkpoint(self, name: str) -> tuple[dict[str, np.ndarray], int] | None:
        """The tensors and step of checkpoint ``name``, or None when there is none."""
        if self.checkpoints is None:
            return None
        found = self.checkpoints.load(name)
        return None if found is None else (found[0], found[1])

    def report(self, fraction: float, message: str = "", *, milestone: bool = False) -> None:
        """Report progress (clamped to [0, 1]) and stop if cancellation was requested.

        ``milestone``: a report that must stay in the history (a resumed run says so).
        """
        sink = self.milestones if milestone and self.milestones is not None else self.progress
        sink(min(max(fraction, 0.0), 1.0), message)
        self.check_cancelled()

    def record(self, series: str, step: int, value: float) -> None:
        """Record point ``step`` (an optimiser iteration) of the job's curve ``series``
        (``abscissa``, ``cost``, ``loss``, ...); ``GET /jobs/{id}/series`` returns the curves."""
        self.series(series, step, value)

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelledError` if the job should stop."""
        if self.cancel_requested():
            raise JobCancelledError("cancelled on request")

    def artifact_path(self, name: str) -> Path:
        """Path of artifact ``name`` in ``out_dir``, registered in :attr:`artifacts`."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / name
        self.artifacts[name] = str(path)
        return path

    def save_figure(self, name: str, recipe: FigureRecipe) -> Path:
        """Artifact ``name`` (a PNG) drawn from ``recipe``, or, when :attr:`defer_figures`,
        the recipe saved for later; returns the file written."""
        payload = encode_recipe(recipe)
        if self.defer_figures:
            path = self.out_dir / ".figures" / f"{name}.recipe.safetensors"
            atomic_write(path, payload)
            self.figures[name] = str(path)
            return path
        path = self.artifact_path(name)
        atomic_write(path, render_recipe(payload))
        return path
