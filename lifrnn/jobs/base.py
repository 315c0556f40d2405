"""What every job runner shares: the context it runs in and the result it returns.

A runner is ``run(spec, context) -> JobResult``. It reports progress and checks for cancellation
through the context, writes artifacts into ``context.out_dir``, and turns expected failures
(invalid input, no convergence, divergence) into a failed result with a readable reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure
from pydantic import BaseModel, Field

from lifrnn.files import atomic_write, read_safetensors, write_safetensors

JobStatus = Literal["succeeded", "failed", "cancelled"]


class JobCancelledError(Exception):
    """Raised inside a runner when the job was asked to stop."""


class JobResult(BaseModel):
    """The outcome of one job: what ``lifrnn run --json`` prints and the store will keep."""

    kind: str
    status: JobStatus
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink: ignore."""


def _never_cancelled() -> bool:
    return False


@dataclass
class JobContext:
    """Where a job writes, whom it tells about progress, and how it learns it should stop.

    Attributes:
        out_dir: folder for the job's artifacts.
        progress: called with (fraction in [0, 1], message).
        cancel_requested: polled between optimisation steps; True stops the job.
        checkpoint_dir: a folder that outlives the process running the job (None: no
            checkpoints). Long runners save their state there every few steps and, when a job
            is run again after its worker died, resume from it instead of starting over.
    """

    out_dir: Path
    progress: Callable[[float, str], None] = _no_progress
    cancel_requested: Callable[[], bool] = _never_cancelled
    checkpoint_dir: Path | None = None
    artifacts: dict[str, str] = field(default_factory=dict)

    def save_checkpoint(self, name: str, tensors: Mapping[str, Any], step: int) -> None:
        """Save ``tensors`` (numpy arrays or torch tensors) as checkpoint ``name`` at ``step``."""
        if self.checkpoint_dir is None:
            return
        write_safetensors(self.checkpoint_dir / f"{name}.safetensors", tensors, {"step": str(step)})

    def load_checkpoint(self, name: str) -> tuple[dict[str, np.ndarray], int] | None:
        """The tensors and step of checkpoint ``name``, or None when there is none."""
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / f"{name}.safetensors"
        if not path.is_file():
            return None
        tensors, metadata = read_safetensors(path)
        return tensors, int(metadata["step"])

    def report(self, fraction: float, message: str = "") -> None:
        """Report progress (clamped to [0, 1]) and stop if cancellation was requested."""
        self.progress(min(max(fraction, 0.0), 1.0), message)
        self.check_cancelled()

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

    def save_figure(self, name: str, figure: Figure) -> Path:
        """Render ``figure`` to PNG as artifact ``name`` (atomic write)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        path = self.artifact_path(name)
        atomic_write(path, buffer.getvalue())
        return path
