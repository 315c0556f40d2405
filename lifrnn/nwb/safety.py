"""Opening a recording safely: :func:`check_file_safety` (an HDF5 file whose every link and
dataset stays inside it, no oversized elements) before pynwb opens it (``_open``), and the
declared size of every dataset a summary or a reader touches held to the limits before anything
is read (``_check_sizes``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from hdmf.common import DynamicTable, VectorIndex
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from lifrnn.headers import HDF5_SIGNATURE
from lifrnn.nwb.layout import (
    MAX_ELEMENT_BYTES,
    MAX_RECORDED_UNITS,
    MAX_SAMPLES,
    MAX_SPIKES,
    MAX_TRIALS,
    RecordingFileError,
    RecordingTooLargeError,
)

# ------------------------------------------------------------------------------ safety


def _check_signature(path: Path, label: str) -> None:
    try:
        with path.open("rb") as stream:
            start = stream.read(len(HDF5_SIGNATURE))
    except OSError as error:
        raise RecordingFileError(f"{label}: cannot be read ({error.strerror})") from None
    if start != HDF5_SIGNATURE:
        raise RecordingFileError(
            f"{label} is not an NWB file: an NWB file is HDF5 and starts with the HDF5 "
            "signature \\x89HDF\\r\\n\\x1a\\n"
        )


def _foreign_storage(handle: h5py.File) -> list[str]:
    """Links and datasets of ``handle`` that refer to something outside the file."""
    found: list[str] = []

    def visit(name: str, link: object) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"external link /{name}")
        elif isinstance(link, h5py.HardLink):
            item = handle.get(name)
            if isinstance(item, h5py.Dataset):
                if item.external:
                    found.append(f"dataset /{name} stored in external files")
                if item.is_virtual:
                    found.append(f"virtual dataset /{name}")
        elif not isinstance(link, h5py.SoftLink):
            found.append(f"link /{name} of an unknown kind")

    handle.visititems_links(visit)
    return found


def _oversized_elements(handle: h5py.File) -> list[str]:
    """Datasets of ``handle`` whose elements are larger than :data:`MAX_ELEMENT_BYTES`."""
    found: list[str] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and item.dtype.itemsize > MAX_ELEMENT_BYTES:
            found.append(f"/{name} ({item.dtype.itemsize} bytes)")

    handle.visititems(visit)
    return found


def _shown(items: Sequence[str]) -> str:
    return "; ".join(items[:5]) + ("; ..." if len(items) > 5 else "")


def check_file_safety(path: str | Path, label: str | None = None) -> None:
    """Raise :class:`RecordingFileError` unless ``path`` is an HDF5 file whose every link and
    dataset stays inside it (no external links, external storage or virtual datasets), and
    :class:`RecordingTooLargeError` if a dataset has elements over :data:`MAX_ELEMENT_BYTES`.

    ``label``: the file's name in messages (default: that of ``path``).
    """
    path = Path(path)
    label = label or path.name
    _check_signature(path, label)
    try:
        with h5py.File(path, "r") as handle:
            foreign = _foreign_storage(handle)
            oversized = _oversized_elements(handle)
    except OSError as error:
        raise RecordingFileError(f"{label} is not a readable HDF5 file: {error}") from None
    if foreign:
        raise RecordingFileError(
            f"{label} refers to data outside itself, which lifrnn never follows: " + _shown(foreign)
        )
    if oversized:
        raise RecordingTooLargeError(
            f"{label} has datasets of elements over {MAX_ELEMENT_BYTES} bytes each: "
            + _shown(oversized)
        )


@contextmanager
def _open(path: Path, label: str) -> Iterator[tuple[NWBFile, str]]:
    """The NWB file at ``path`` and its NWB version, read by pynwb after the safety checks."""
    check_file_safety(path, label)
    with warnings.catch_warnings():
        # pynwb and hdmf warn about cached schema versions and the like: not the user's concern
        warnings.simplefilter("ignore")
        try:
            io = NWBHDF5IO(str(path), mode="r")
        except Exception as error:  # pynwb raises many kinds on a file that is not NWB
            raise RecordingFileError(
                f"{label} is not an NWB file pynwb can read: {error}"
            ) from None
        try:
            try:
                nwbfile = io.read()
            except Exception as error:
                raise RecordingFileError(
                    f"{label} is not an NWB file pynwb can read: {error}"
                ) from None
            version = io.nwb_version
            yield nwbfile, str(version[0] if isinstance(version, tuple) else version or "")
        finally:
            io.close()


# ------------------------------------------------------------------------------ declared sizes


def _declared_shape(data: Any) -> tuple[int, ...]:
    """The shape ``data`` declares (an h5py dataset's, from its header), nothing read."""
    shape = getattr(data, "shape", None)
    if shape is None:
        return (len(data),)
    return tuple(int(d) for d in shape)


def _declared_bytes(data: Any) -> int:
    dtype = getattr(data, "dtype", None)
    itemsize = dtype.itemsize if isinstance(dtype, np.dtype) else 8
    return math.prod(_declared_shape(data)) * int(itemsize)


def _check_declared(
    label: str, what: str, data: Any, rows: tuple[int, str] | None, max_bytes: int
) -> None:
    """Raise :class:`RecordingTooLargeError` when ``data`` (``what`` in messages) declares more
    rows than ``rows`` allows (a limit and what it counts) or more than ``max_bytes``."""
    shape = _declared_shape(data)
    if rows is not None and shape and shape[0] > rows[0]:
        limit, counted = rows
        raise RecordingTooLargeError(
            f"{label}: {what} declares {shape[0]} rows; a recording may have at most "
            f"{limit} {counted}"
        )
    size = _declared_bytes(data)
    if size > max_bytes:
        raise RecordingTooLargeError(
            f"{label}: {what} declares {size} bytes (shape {shape}); a dataset lifrnn reads may "
            f"declare at most {max_bytes} bytes, the largest recording accepted"
        )


def _table_data(table: DynamicTable) -> Iterator[tuple[str, Any, Any]]:
    """(name, column, data) of ``table``'s columns and ids; ``column`` is None for the ids."""
    for column in table.columns:
        yield column.name, column, column.data
    yield "id", None, table.id.data


def _check_table(
    label: str, what: str, table: DynamicTable, rows: tuple[int, str], max_bytes: int
) -> None:
    """Hold every dataset of ``table`` to the limits: ``rows`` for the ids and each column of a
    value per row; the values of a ragged column (``spike_times``: :data:`MAX_SPIKES`) are held
    to ``max_bytes`` only."""
    ragged = {id(c.target) for c in table.columns if isinstance(c, VectorIndex)}
    spikes = table["spike_times"] if "spike_times" in table.colnames else None
    spike_values = spikes.target if isinstance(spikes, VectorIndex) else None
    for name, column, data in _table_data(table):
        limit: tuple[int, str] | None = rows
        if column is not None and column is spike_values:
            limit = (MAX_SPIKES, "spike times")
        elif column is not None and id(column) in ragged:
            limit = None
        _check_declared(label, f"{what} column {name!r}", data, limit, max_bytes)


def _check_sizes(
    nwbfile: NWBFile,
    tables: dict[str, DynamicTable],
    series: dict[str, TimeSeries],
    label: str,
    max_bytes: int,
) -> None:
    """Raise :class:`RecordingTooLargeError` unless every dataset a summary or a reader may
    read declares sizes within the limits; reads nothing but the datasets' headers."""
    if nwbfile.trials is not None:
        _check_table(label, "trials", nwbfile.trials, (MAX_TRIALS, "trials"), max_bytes)
    for path, table in tables.items():
        units = (MAX_RECORDED_UNITS, "units")
        _check_table(label, f"units table {path!r}", table, units, max_bytes)
    for path, item in series.items():
        samples = (MAX_SAMPLES, "samples per series")
        _check_declared(label, f"behaviour series {path!r}", item.data, samples, max_bytes)
        if item.timestamps is not None:
            what = f"timestamps of behaviour series {path!r}"
            _check_declared(label, what, item.timestamps, samples, max_bytes)
