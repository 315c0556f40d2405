"""Safetensors files are written without a copy of the whole file in memory, and are the same
bytes whichever way they are made (issue 28.9: a spike-train fit's checkpoint at MC_Maze's size
is ~0.3 GB, and building it as bytes held up to four copies at once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lifrnn.files import safetensors_bytes, write_safetensors
from lifrnn.jobs.base import Checkpoints
from lifrnn.store.objects import FileObjectStore

TENSORS = {
    "z.view": np.arange(60, dtype=np.float32).reshape(3, 4, 5)[:, :3, 1:],  # not contiguous
    "a.torch": torch.linspace(0, 1, 7, dtype=torch.float64),
    "m.counts": np.arange(12, dtype=np.int32).reshape(3, 4),
}
METADATA = {"kind": "fit_data", "window": [-0.25, 0.45], "seed": "0", "b": {"y": 1, "x": 2}}


def test_a_file_is_the_bytes_of_the_same_tensors(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "out.safetensors", TENSORS, METADATA)
    assert path.read_bytes() == safetensors_bytes(TENSORS, METADATA)
    again = write_safetensors(
        tmp_path / "again.safetensors", dict(reversed(TENSORS.items())), METADATA
    )
    assert again.read_bytes() == path.read_bytes()  # deterministic: the header's keys sorted
    # and no temporary file is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.safetensors", "out.safetensors"]


def test_a_checkpoint_reads_back_what_was_saved(tmp_path: Path) -> None:
    checkpoints = Checkpoints(FileObjectStore(tmp_path / "objects"), "jobs/j1/checkpoints")
    assert checkpoints.save("stage", TENSORS, 3, {"note": "x"}, force=True)
    tensors, step, metadata = checkpoints.load("stage") or ({}, -1, {})
    assert step == 3 and metadata["note"] == "x"
    for name, value in TENSORS.items():
        expected = value.numpy() if isinstance(value, torch.Tensor) else value
        np.testing.assert_array_equal(tensors[name], expected)
