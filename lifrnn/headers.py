"""What a file declares, read from its header alone: ``.safetensors``, ``.npy`` and ``.nwb``.

An upload is judged before its body is read whole: the header gives every tensor's dtype and
shape and so the exact size the file must have. Nothing in a file is ever executed: safetensors
headers are JSON, ``.npy`` headers a literal dict read by numpy's own header parser, and object
(pickled) arrays are refused. An NWB recording (HDF5) must start with the HDF5 signature; its
superblock records the end-of-file address, which is the size the file must have; what it holds
is judged once it is complete (:func:`lifrnn.nwb.inspect_nwb`).

Limits on what an upload may declare (the largest inputs a spec can use): every dimension at most
:data:`MAX_UNITS` (the largest ``n``), except the time axis of a 3-D tensor (``(movements, time,
outputs or units)``, at most :data:`MAX_TIME` samples) whose first axis holds at most
:data:`MAX_MOVEMENTS` movements; at most 3 dimensions; float16/bfloat16/float32/float64 only.
An upload is refused besides when a tensor is empty (a zero in its shape: nothing a spec could
use) or a safetensors file holds more than :data:`MAX_TENSORS` tensors; a job's own artifacts,
described by :func:`read_file_header`, may hold empty tensors and are not held to that count.
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
MAX_TENSORS = 256
"""Most tensors of one uploaded safetensors file: a network file holds about a dozen, the largest
lifrnn writes (``prepare``'s ``trials.safetensors``) two plus five per controller."""

FORMATS = {".safetensors": "safetensors", ".npy": "npy", ".nwb": "nwb"}
"""File formats by file-name extension: tensors, and NWB recordings."""
RECORDING_FORMATS = frozenset({"nwb"})
"""Formats of recordings (not tensors): their own size limit, judged whole once received."""
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The first eight bytes of an HDF5 (NWB) file without a user block."""
_HDF5_UNDEFINED = 0xFFFFFFFFFFFFFFFF
"""An undefined address of an HDF5 superblock (every bit set; shifted for narrower ones)."""

_SAFETENSORS_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_NPY_SINGLE = "array"
"""Name under which a ``.npy`` file's one array is recorded."""


class HeaderError(ValueError):
    """A file whose header is unreadable, refused, or disagrees with its size."""


class TooLargeError(HeaderError):
    """A file that declares more than the limits allow (413)."""


@dataclass(frozen=True)
class FileHeader:
    """What a file declares.

    Attributes:
        format: ``"safetensors"``, ``"npy"`` or ``"nwb"``.
        tensors: name -> ``{"dtype": str, "shape": [int, ...]}`` (a ``.npy`` file's one array
            is named ``"array"``; none for a recording).
        metadata: a safetensors file's ``__metadata__`` (string to string).
        size: the exact size in bytes the file must have, header included.
        summary: a recording's summary (:func:`lifrnn.nwb.inspect_nwb`), once it was judged.
    """

    format: str
    tensors: dict[str, dict[str, Any]]
    metadata: dict[str, str] = field(default_factory=dict)
    size: int = 0
    summary: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The form kept in the store (``artifacts.header``): a recording's summary (with
        ``"format": "nwb"``), or a tensor file's tensors and metadata."""
        if self.format in RECORDING_FORMATS:
            return dict(self.summary or {"format": self.format})
        return {"tensors": self.tensors, "metadata": self.metadata}


def format_of(name: str) -> str | None:
    """``"safetensors"``, ``"npy"`` or ``"nwb"`` from a file name's extension, else None."""
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
    if fmt == "nwb":
        return _hdf5_length(prefix)
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


def read_header(fmt: str, header: bytes, *, upload: bool = True) -> FileHeader:
    """Parse the complete header bytes of a ``fmt`` file (see :func:`header_length`).

    ``upload``: judge it as an upload (the default), refusing empty tensors and safetensors
    files of more than :data:`MAX_TENSORS` tensors with a :class:`HeaderError`; False for a file
    lifrnn wrote itself (a job's artifact), which is described as it is.
    """
    if fmt == "nwb":
        return _hdf5(header)
    return _safetensors(header, upload) if fmt == "safetensors" else _npy(header, upload)


def _hdf5_layout(prefix: bytes) -> tuple[int, int] | None:
    """(where the superblock's addresses start, size of an address) from an HDF5 file's first
    bytes; None while more are needed. Versions 0 and 1 put the size of offsets at byte 13 and
    the addresses (base, free space, end of file, driver information) at 24 or 28; versions 2
    and 3 the size at byte 9 and the addresses (base, extension, end of file, root) at 12."""
    if prefix[: len(HDF5_SIGNATURE)] != HDF5_SIGNATURE[: len(prefix)]:
        raise HeaderError(
            "not an NWB file: an NWB file is HDF5 and starts with the HDF5 signature "
            "\\x89HDF\\r\\n\\x1a\\n"
        )
    if len(prefix) < 9:
        return None
    version = prefix[8]
    if version in (0, 1):
        if len(prefix) < 14:
            return None
        width, start = prefix[13], 24 if version == 0 else 28
    elif version in (2, 3):
        if len(prefix) < 10:
            return None
        width, start = prefix[9], 12
    else:
        raise HeaderError(f"unsupported HDF5 superblock version {version}")
    if width not in (2, 4, 8):
        raise HeaderError(f"HDF5 superblock declares addresses of {width} bytes")
    return start, width


def _hdf5_length(prefix: bytes) -> int | None:
    layout = _hdf5_layout(prefix)
    if layout is None:
        return None
    start, width = layout
    return start + 4 * width  # up to the driver information (v0/1) or root (v2/3) address


def _hdf5(header: bytes) -> FileHeader:
    layout = _hdf5_layout(header)
    assert layout is not None
    start, width = layout
    undefined = _HDF5_UNDEFINED >> (64 - 8 * width)

    def address(index: int) -> int:
        return int.from_bytes(header[start + index * width : start + (index + 1) * width], "little")

    base, end = address(0), address(2)
    if header[8] in (0, 1) and address(3) != undefined:
        raise HeaderError(
            "HDF5 file split over several files (a family or multi driver): lifrnn reads "
            "single-file recordings only"
        )
    if base == undefined or end == undefined:
        raise HeaderError("HDF5 superblock has no end-of-file address")
    return FileHeader("nwb", {}, size=base + end)


def _safetensors(header: bytes, upload: bool) -> FileHeader:
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
    if upload and len(document) > MAX_TENSORS:
        raise HeaderError(
            f"safetensors file declares {len(document)} tensors (at most {MAX_TENSORS} per file)"
        )
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
        _check_shape(name, shape, upload)
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


def _npy(header: bytes, upload: bool) -> FileHeader:
    stream = io.BytesIO(header)
    try:
        major, _ = npy_format.read_magic(stream)
        reader = (
            npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
        )
        # (NumPy 2.3's stubs omit the keyword that its functions take)
        shape, _, dtype = reader(stream, max_header_size=MAX_NPY_HEADER)  # type: ignore[call-arg,unused-ignore]
    except (ValueError, TypeError, SyntaxError) as error:
        raise HeaderError(f".npy header: {error}") from None
    if dtype.hasobject:
        raise HeaderError(".npy file holds Python objects (pickle); lifrnn never unpickles")
    if dtype.kind != "f":
        raise HeaderError(f".npy dtype {dtype.str} is not a float type lifrnn reads")
    _check_shape(_NPY_SINGLE, list(shape or ()), upload)
    dims = [int(d) for d in shape]
    tensors = {_NPY_SINGLE: {"dtype": np.dtype(dtype).name, "shape": dims}}
    return FileHeader("npy", tensors, size=len(header) + math.prod(dims) * dtype.itemsize)


def _check_shape(name: str, shape: Any, upload: bool) -> None:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise HeaderError(f"tensor {name!r}: shape must be a list of non-negative integers")
    if upload and 0 in shape:
        raise HeaderError(
            f"tensor {name!r} of shape {tuple(shape)} is empty: every dimension of an uploaded "
            "tensor must be at least 1"
        )
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


def read_file_header(path: Path, *, upload: bool = False) -> FileHeader | None:
    """The header of a local ``.safetensors``, ``.npy`` or ``.nwb`` file (None for other
    files); a recording's is its superblock's, without a summary. ``upload``: judge it as an
    upload (:func:`read_header`); by default it is described as lifrnn's own artifact."""
    fmt = format_of(path.name)
    if fmt is None:
        return None
    with path.open("rb") as stream:
        prefix = stream.read(64)
        needed = header_length(fmt, prefix)
        if needed is None:
            raise HeaderError(f"{path.name}: too short for a {fmt} file")
        prefix += stream.read(max(0, needed - len(prefix)))
    return read_header(fmt, prefix[:needed], upload=upload)
