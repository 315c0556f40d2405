"""Reading and writing the files jobs exchange: safetensors (never pickle), .npy, JSON.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) so a crash never
leaves a half-written artifact behind under its final name, and deterministic: the same tensors
and metadata give the same bytes (safetensors keeps its metadata in a hash map, so its header is
re-serialised with sorted keys), which lets the content-addressed store deduplicate them.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as load_numpy_bytes
from safetensors.numpy import load_file as load_numpy_file
from safetensors.numpy import save as save_numpy
from safetensors.numpy import save_file as save_numpy_file


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _arrays(tensors: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, np.ndarray]:
    return {
        name: np.ascontiguousarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t)
        for name, t in tensors.items()
    }


def _text(metadata: Mapping[str, Any]) -> dict[str, str] | None:
    text = {
        k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in metadata.items()
    }
    return text or None


def _canonical(header: bytes) -> bytes:
    """The header re-serialised with sorted keys, padded with spaces to its own length (the data
    offsets and the library's 8-byte alignment stay as they are)."""
    canonical = json.dumps(json.loads(header), sort_keys=True, separators=(",", ":")).encode()
    if len(canonical) > len(header):  # never: the library writes compact JSON too
        raise ValueError("safetensors header grew when sorted")
    return canonical + b" " * (len(header) - len(canonical))


def safetensors_bytes(
    tensors: Mapping[str, np.ndarray | torch.Tensor], metadata: Mapping[str, Any]
) -> bytes:
    """``tensors`` and string ``metadata`` (non-strings JSON-encoded) as safetensors bytes.

    Deterministic: the header's keys are sorted. The bytes are held in memory (with a copy while
    the header is replaced): write large files with :func:`write_safetensors`.
    """
    payload = save_numpy(_arrays(tensors), metadata=_text(metadata))
    (length,) = struct.unpack("<Q", payload[:8])
    return payload[:8] + _canonical(payload[8 : 8 + length]) + payload[8 + length :]


def write_safetensors(
    path: Path, tensors: Mapping[str, np.ndarray | torch.Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write ``tensors`` with string ``metadata`` (non-strings are JSON-encoded) atomically: the
    same bytes as :func:`safetensors_bytes`, written by the library straight into a temporary
    file whose header is then sorted in place, so no copy of the whole file is held in memory
    (at MC_Maze's size a spike-train fit's checkpoint is ~0.3 GB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        save_numpy_file(_arrays(tensors), temporary, metadata=_text(metadata))
        with open(temporary, "r+b") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))
            header = _canonical(stream.read(length))
            stream.seek(8)
            stream.write(header)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_safetensors_bytes(payload: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of safetensors ``payload`` (a checkpoint fetched from the store)."""
    try:
        tensors = load_numpy_bytes(payload)
        (length,) = struct.unpack("<Q", payload[:8])
        metadata = json.loads(payload[8 : 8 + length]).get("__metadata__") or {}
    except (SafetensorError, ValueError, struct.error) as error:
        raise ValueError(f"not readable safetensors data: {error}") from error
    return tensors, dict(metadata)


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a safetensors file (no code is ever executed while reading).

    Raises ``ValueError`` naming the file when it is not a valid safetensors file.
    """
    try:
        tensors = load_numpy_file(str(path))
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error
    return tensors, dict(metadata)


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as indented JSON atomically."""
    atomic_write(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())
    return path


def load_matrix(path: str | Path, name: str = "W") -> np.ndarray:
    """Load a float64 matrix from a ``.safetensors`` file (tensor ``name``) or a ``.npy`` file.

    ``.npy`` files are read with ``allow_pickle=False``. Raises ``FileNotFoundError`` or
    ``ValueError`` with a message naming the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".safetensors":
        tensors, _ = read_safetensors(path)
        if name not in tensors:
            raise ValueError(f"{path} holds no tensor {name!r} (it has {sorted(tensors)})")
        array = tensors[name]
    elif path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    else:
        raise ValueError(f"{path}: expected a .safetensors or .npy file")
    return np.asarray(array, dtype=np.float64)
