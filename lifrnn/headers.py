"""What a tensor file declares, read from its header alone: ``.safetensors`` and ``.npy``.

An upload is judged before its body is read whole: the header gives every tensor's dtype and
shape and so the exact size the file must have. Nothing in a file is ever executed: safetensors
headers are JSON, ``.npy`` headers a literal dict read by numpy's own header parser, and object
(pickled) arrays are refused.

Limits on what an upload may declare (the largest inputs a spec can use): every dimension at most
:data:`MAX_UNITS` (the largest ``n``), except the time axis of a 3-D tensor (``(movements, time,
outputs or units)``, at most :data:`MAX_TIME` samples) whose first axis holds at most
:data:`MAX_MOVEMENTS` movements; at most 3 dimensions; float16/bfloat16/float32/float64 only.
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

MAX_UNITS = 20_000
"""Largest network (``n`` of an SOC spec)."""
MAX_MOVEMENTS = 64
"""Most movements of one spec."""
MAX_TIME = 10_000_001
"""Most time samples of one movement (duration / dt, plus the first)."""
MAX_SAFETENSORS_HEADER = 1 << 20
"""Largest safetensors JSON header accepted (lifrnn's own are a few kB)."""
MAX_NPY_HEADER = 10_000

FORMATS = {".safetensors": "safetensors", ".npy": "npy"}
"""Tensor file formats by file-name extension."""

_SAFETENSORS_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_NPY_SINGLE = "array"
"""Name under which a ``.npy`` file's one array is recorded."""


class HeaderError(ValueError):
    """A file whose header is unreadable, refused, or disagrees with its size."""


class TooLargeError(HeaderError):
    """A file that declares more than the limits allow (413)."""


@dataclass(frozen=True)
class FileHeader:
    """What a tensor file declares.

    Attributes:
        format: ``"safetensors"`` or ``"npy"``.
        tensors: name -> ``{"dtype": str, "shape": [int, ...]}`` (a ``.npy`` file's one array
            is named ``"array"``).
        metadata: a safetensors file's ``__metadata__`` (string to string).
        size: the exact size in bytes the file must have, header included.
    """

    format: str
    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str] = field(default_factory=dict)
    size: int = 0

    def as_json(self) -> dict[str, Any]:
        """The form kept in the store (``artifacts.header``)."""
        return {"tensors": self.tensors, "metadata": self.metadata}


def format_of(name: str) -> str | None:
    """``"safetensors"`` or ``"npy"`` from a file name's extension, else None."""
    lowered = name.lower()
    for suffix, kind in FORMATS.items():
        if lowered.endswith(suffix):
            return kind
    return None


def header_length(fmt: str, prefix: bytes) -> int | None:
    """Bytes the header of a ``fmt`` file takes, from its first bytes (None: need more)."""
    if fmt == "safetensors":
        if len(prefix) < 8:
            return None
        (length,) = struct.unpack("<Q", prefix[:8])
        if length > MAX_SAFETENSORS_HEADER:
            raise HeaderError(
                f"safetensors header of {length} bytes (at most {MAX_SAFETENSORS_HEADER})"
            )
        return 8 + int(length)
    if len(prefix) < 10:
        return None
    if prefix[:6] != b"\x93NUMPY":
        raise HeaderError("not a .npy file (no \\x93NUMPY magic)")
    major = prefix[6]
    if major == 1:
        return 10 + int(struct.unpack("<H", prefix[8:10])[0])
    if major in (2, 3):
        if len(prefix) < 12:
            return None
        length = int(struct.unpack("<I", prefix[8:12])[0])
        if length > MAX_NPY_HEADER:
            raise HeaderError(f".npy header of {length} bytes (at most {MAX_NPY_HEADER})")
        return 12 + length
    raise HeaderError(f"unsupported .npy format version {major}")


def read_header(fmt: str, header: bytes) -> FileHeader:
    """Parse the complete header bytes of a ``fmt`` file (see :func:`header_length`)."""
    return _safetensors(header) if fmt == "safetensors" else _npy(header)


def _safetensors(header: bytes) -> FileHeader:
    try:
        document = json.loads(header[8:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise HeaderError(f"safetensors header is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise HeaderError("safetensors header is not a JSON object")
    metadata = document.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise HeaderError("safetensors __metadata__ must map strings to strings")
    tensors: dict[str, dict[str, Any]] = {}
    spans = []
    for name, entry in document.items():
        if not isinstance(entry, dict):
            raise HeaderError(f"tensor {name!r}: not a JSON object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _SAFETENSORS_DTYPES:
            raise HeaderError(
                f"tensor {name!r}: dtype {dtype!r} is not one lifrnn reads "
                f"({', '.join(_SAFETENSORS_DTYPES)})"
            )
        _check_shape(name, shape)
        dims = [int(d) for d in shape or ()]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)
        ):
            raise HeaderError(f"tensor {name!r}: data_offsets must be two non-negative integers")
        begin, end = offsets
        if end - begin != math.prod(dims) * _SAFETENSORS_DTYPES[dtype]:
            raise HeaderError(f"tensor {name!r}: data_offsets do not match its shape and dtype")
        spans.append((begin, end))
        tensors[name] = {"dtype": dtype, "shape": dims}
    spans.sort()
    position = 0
    for begin, end in spans:
        if begin != position:
            raise HeaderError("safetensors data_offsets leave gaps or overlap")
        position = end
    return FileHeader("safetensors", tensors, dict(metadata), size=len(header) + position)


def _npy(header: bytes) -> FileHeader:
    stream = io.BytesIO(header)
    try:
        major, _ = npy_format.read_magic(stream)
        reader = (
            npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
        )
        shape, _, dtype = reader(stream, max_header_size=MAX_NPY_HEADER)
    except (ValueError, TypeError, SyntaxError) as error:
        raise HeaderError(f".npy header: {error}") from None
    if dtype.hasobject:
        raise HeaderError(".npy file holds Python objects (pickle); lifrnn never unpickles")
    if dtype.kind != "f":
        raise HeaderError(f".npy dtype {dtype.str} is not a float type lifrnn reads")
    _check_shape(_NPY_SINGLE, list(shape or ()))
    dims = [int(d) for d in shape]
    tensors = {_NPY_SINGLE: {"dtype": np.dtype(dtype).name, "shape": dims}}
    return FileHeader("npy", tensors, size=len(header) + math.prod(dims) * dtype.itemsize)


def _check_shape(name: str, shape: Any) -> None:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise HeaderError(f"tensor {name!r}: shape must be a list of non-negative integers")
    if len(shape) > 3:
        raise TooLargeError(f"tensor {name!r} has {len(shape)} dimensions (at most 3)")
    if len(shape) == 3:
        movements, time, last = shape
        if movements > MAX_MOVEMENTS or time > MAX_TIME or last > MAX_UNITS:
            raise TooLargeError(
                f"tensor {name!r} of shape {tuple(shape)} is over the limits: (movements <= "
                f"{MAX_MOVEMENTS}, time <= {MAX_TIME}, outputs or units <= {MAX_UNITS})"
            )
    elif any(d > MAX_UNITS for d in shape):
        raise TooLargeError(
            f"tensor {name!r} of shape {tuple(shape)} is over the limit of {MAX_UNITS} per "
            "dimension (the largest network)"
        )


def tensor_shape(header: dict[str, Any] | None, name: str) -> list[int] | None:
    """Shape of tensor ``name`` in a stored header (a ``.npy`` file's one array answers any
    name); None when the header is unknown or lacks it."""
    if not header:
        return None
    tensors = header.get("tensors", {})
    entry = tensors.get(name) or (tensors.get(_NPY_SINGLE) if len(tensors) == 1 else None)
    return list(entry["shape"]) if entry else None


def read_file_header(path: Path) -> FileHeader | None:
    """The header of a local ``.safetensors`` or ``.npy`` file (None for other files)."""
    fmt = format_of(path.name)
    if fmt is None:
        return None
    with path.open("rb") as stream:
        prefix = stream.read(12)
        needed = header_length(fmt, prefix)
        if needed is None:
            raise HeaderError(f"{path.name}: too short for a {fmt} file")
        prefix += stream.read(max(0, needed - len(prefix)))
    return read_header(fmt, prefix[:needed])
