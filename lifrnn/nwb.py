"""Recordings in NWB files (HDF5): checked, summarised, read into a :class:`Recording`, written.

Labs' recordings follow the layout of the Neural Latents Benchmark's MC_Maze (DANDI 000128): a
``units`` table with ``spike_times``; a ``trials`` table with ``start_time``, ``stop_time``, event
times (``move_onset_time``, ``go_cue_time``, ``target_on_time``), the condition (``trial_type``,
``trial_version``), ``success`` and ``split``; and ``processing/behavior`` with the TimeSeries
``hand_vel`` (samples, 2). :class:`NWBLayout` names what is read, with those names by default.

- :func:`inspect_nwb` judges a file and summarises it as JSON; an upload's stored header is that
  summary, so :func:`check_layout` can refuse a spec naming a column the file lacks at submit.
- :func:`read_nwb` reads spike times (and NLB's ``heldout`` flags of the units), the trial table
  and the hand velocity (``hand_vel``, else the derivative of ``hand_pos`` or ``cursor_pos``).
- :func:`write_nwb` writes a :class:`~lifrnn_core.synthetic_recordings.SyntheticRecording` in the
  MC_Maze layout, with the session metadata NWB's best practices ask for.

Nothing in a file is executed: pynwb reads the format's cached schema as data. A file is opened
by pynwb only after h5py has found no link or dataset that points outside it (HDF5 external links,
external storage, virtual datasets), which could otherwise make the server read another file of
its disk, and no dataset whose elements are larger than :data:`MAX_ELEMENT_BYTES` (pynwb reads
scalar datasets as it opens a file).

A small file can declare far more than it holds: HDF5 keeps chunks never written as a fill value,
and a compressed chunk of zeros takes a few bytes. So nothing is read before the declared size of
every dataset a summary or a reader touches is checked against the limits
(:data:`MAX_TRIALS`, :data:`MAX_RECORDED_UNITS`, :data:`MAX_SPIKES`, :data:`MAX_SAMPLES` and a
limit in bytes, the largest recording accepted), and the summary reads in chunks of at most
:data:`READ_CHUNK` values, or the one value it needs.
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from hdmf.common import DynamicTable, ElementIdentifiers, VectorData, VectorIndex
from pynwb import NWBHDF5IO, H5DataIO, NWBFile, TimeSeries
from pynwb.file import Subject
from pynwb.misc import Units

from lifrnn.headers import HDF5_SIGNATURE
from lifrnn_core.recordings import Recording, Trials

if TYPE_CHECKING:
    from lifrnn_core.synthetic_recordings import SyntheticRecording

__all__ = [
    "NWBLayout",
    "RecordingFileError",
    "RecordingTooLargeError",
    "check_file_safety",
    "check_layout",
    "inspect_nwb",
    "read_nwb",
    "write_nwb",
]

MAX_LISTED = 200
"""Most column or series names a summary lists of one kind."""
MAX_TRIALS = 100_000
"""Most rows of a trials table (MC_Maze has 2,869 trials; a day of a few-second reaches fewer)."""
MAX_RECORDED_UNITS = 100_000
"""Most rows of a units table (MC_Maze has 182; several Neuropixels probes a few thousand)."""
MAX_SPIKES = 200_000_000
"""Most spike times of a units table (MC_Maze has a few million; 1,000 units firing at 10 Hz for
five hours 1.8e8)."""
MAX_SAMPLES = 100_000_000
"""Most samples of a behaviour series or its timestamps (1 kHz for a day is 8.6e7; MC_Maze's
hand velocity 1 kHz over about an hour)."""
MAX_DATASET_BYTES = 4 * 2**30
"""Most bytes one dataset that lifrnn reads may declare (uncompressed), unless the caller gives
its own limit: the default of ``LIFRNN_MAX_RECORDING_BYTES``, the largest recording stored."""
MAX_ELEMENT_BYTES = 1 << 16
"""Largest element of any dataset (a fixed-length string of a GB would be read whole by pynwb)."""
READ_CHUNK = 1 << 20
"""Most values the summary reads of a dataset at once."""


class RecordingFileError(ValueError):
    """A recording file that cannot be read, or lacks what is asked of it (422)."""


class RecordingTooLargeError(RecordingFileError):
    """A recording that declares more than the limits allow (413, as an upload's other sizes)."""


@dataclass(frozen=True)
class NWBLayout:
    """Where a recording's fields are in an NWB file; MC_Maze's names by default.

    Attributes:
        units_table: ``"units"`` (the file's units table) or ``"module/table"`` for a units
            table inside a processing module.
        spike_times: the ragged column of spike times (seconds) of the units table.
        start_time, stop_time: trial columns of each trial's start and end (seconds).
        conditions: trial columns whose values, joined by ``/``, label a trial's condition
            (``("trial_type", "trial_version")`` gives ``"3/1"``; one column gives ``"3"``).
        success: trial column of bool success flags; None: every trial counts as successful.
        split: trial column of the split (``train``, ``val``, ``test``); None: no split.
        behavior_module: processing module holding the behaviour.
        velocity: TimeSeries (samples, 2) of hand velocity in that module; None: none read.

    ``success``, ``split`` and ``velocity`` are optional: a file without them reads as all
    successful, without a split, without behaviour, as long as they carry the default names;
    a name set to something else must exist.
    """

    units_table: str = "units"
    spike_times: str = "spike_times"
    start_time: str = "start_time"
    stop_time: str = "stop_time"
    conditions: tuple[str, ...] = ("trial_type", "trial_version")
    success: str | None = "success"
    split: str | None = "split"
    behavior_module: str = "behavior"
    velocity: str | None = "hand_vel"

    @property
    def velocity_path(self) -> str | None:
        """``module/series`` of the hand velocity, or None."""
        return None if self.velocity is None else f"{self.behavior_module}/{self.velocity}"


_DEFAULT = NWBLayout()


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


# ------------------------------------------------------------------------------ contents


def _unit_tables(nwbfile: NWBFile) -> dict[str, DynamicTable]:
    """The file's units tables by path: ``units`` and ``module/table`` in processing modules."""
    tables: dict[str, DynamicTable] = {}
    if nwbfile.units is not None:
        tables["units"] = nwbfile.units
    for module_name, module in nwbfile.processing.items():
        for name, interface in module.data_interfaces.items():
            if isinstance(interface, Units):
                tables[f"{module_name}/{name}"] = interface
    return tables


def _series(nwbfile: NWBFile) -> dict[str, TimeSeries]:
    """Every TimeSeries of the processing modules by ``module/series``."""
    found: dict[str, TimeSeries] = {}
    for module_name, module in nwbfile.processing.items():
        for name, interface in module.data_interfaces.items():
            if isinstance(interface, TimeSeries):
                found[f"{module_name}/{name}"] = interface
    return found


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


# ------------------------------------------------------------------------------ bounded reads


def _length(data: Any, what: str) -> int:
    """The length of one-dimensional ``data``; :class:`RecordingFileError` for any other."""
    shape = _declared_shape(data)
    if len(shape) != 1:
        raise RecordingFileError(f"{what} has shape {shape}, not one value per row")
    return shape[0]


def _chunks(data: Any, length: int, dtype: type[np.generic]) -> Iterator[np.ndarray]:
    """``data[:length]`` (one-dimensional) in arrays of at most :data:`READ_CHUNK` values."""
    for start in range(0, length, READ_CHUNK):
        yield np.asarray(data[start : min(start + READ_CHUNK, length)], dtype=dtype)


def _latest(values: np.ndarray, latest: float) -> float:
    finite = values[np.isfinite(values)]
    return max(latest, float(finite.max())) if finite.size else latest


def _last_trial_end(trials: DynamicTable) -> float:
    """The latest finite ``stop_time`` of ``trials``, read in chunks (NaN when none)."""
    column = trials["stop_time"]
    if isinstance(column, VectorIndex):
        raise RecordingFileError("trial column 'stop_time' holds lists, not one value per trial")
    latest = -math.inf
    for block in _chunks(column.data, _length(column.data, "trial column 'stop_time'"), np.float64):
        latest = _latest(block, latest)
    return latest if math.isfinite(latest) else math.nan


def _last_spike(table: DynamicTable, column: str) -> float:
    """The latest spike time of ``table`` without reading every spike (each unit's last), the
    index read in chunks."""
    index = table[column]
    if not isinstance(index, VectorIndex):
        return math.nan
    units = _length(index.data, f"the index of column {column!r}")
    spikes = _length(index.target.data, f"column {column!r}")
    latest = -math.inf
    for block in _chunks(index.data, units, np.int64):
        ends = np.unique(block)
        ends = ends[ends > 0]
        if ends.size and ends[-1] > spikes:
            raise RecordingFileError(
                f"the index of column {column!r} points past its {spikes} spike times"
            )
        if ends.size:
            latest = _latest(np.asarray(index.target.data[ends - 1], dtype=np.float64), latest)
    return latest if math.isfinite(latest) else math.nan


def _series_end(series: TimeSeries, path: str) -> float:
    """The time of the last sample of ``series`` (one value read at most)."""
    samples = len(series.data)
    if samples == 0:
        return math.nan
    if series.timestamps is not None:
        stamps = _length(series.timestamps, f"the timestamps of behaviour series {path!r}")
        if stamps < samples:
            raise RecordingFileError(
                f"behaviour series {path!r} has {samples} samples but {stamps} timestamps"
            )
        return float(series.timestamps[samples - 1])
    return float((series.starting_time or 0.0) + (samples - 1) / series.rate)


# ------------------------------------------------------------------------------ summary


def _finite_max(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return round(max(finite), 6) if finite else None


def _spike_count(table: DynamicTable) -> int:
    column = table["spike_times"]
    return len(column.target.data if isinstance(column, VectorIndex) else column.data)


def _summarise(
    nwbfile: NWBFile, name: str, version: str, max_bytes: int = MAX_DATASET_BYTES
) -> dict[str, Any]:
    tables = _unit_tables(nwbfile)
    spiking = {path: t for path, t in tables.items() if "spike_times" in t.colnames}
    trials = nwbfile.trials
    missing = []
    if not spiking:
        missing.append("units table" if not tables else "spike_times column of the units table")
    if trials is None:
        missing.append("trials table")
    if missing:
        raise RecordingFileError(
            f"{name} is not a recording lifrnn can read; missing: " + "; ".join(missing)
        )
    assert trials is not None
    series = _series(nwbfile)
    _check_sizes(nwbfile, tables, series, name, max_bytes)  # before anything is read
    main_path = "units" if "units" in spiking else next(iter(spiking))
    main = spiking[main_path]
    try:
        ends = [
            _last_trial_end(trials) if len(trials) else math.nan,
            _last_spike(main, "spike_times"),
            *(_series_end(s, path) for path, s in series.items()),
        ]
    except RecordingFileError as error:
        raise RecordingFileError(f"{name}: {error}") from None
    return {
        "format": "nwb",
        "nwb_version": version,
        "units": len(main),
        "spikes": _spike_count(main),
        "unit_tables": {
            path: {"rows": len(table), "columns": sorted(table.colnames)[:MAX_LISTED]}
            for path, table in tables.items()
        },
        "trials": len(trials),
        "trial_columns": sorted(trials.colnames)[:MAX_LISTED],
        "behavior_series": {
            path: [int(d) for d in s.data.shape] for path, s in sorted(series.items())[:MAX_LISTED]
        },
        "duration_s": _finite_max(ends),
    }


_UNREADABLE = (KeyError, TypeError, ValueError, OSError, IndexError, AttributeError)
"""What h5py, hdmf and numpy raise on content that is not what NWB says it is."""


def inspect_nwb(
    path: str | Path, *, name: str | None = None, max_dataset_bytes: int = MAX_DATASET_BYTES
) -> dict[str, Any]:
    """Judge an NWB recording and summarise it (JSON; the stored header of an upload).

    Returns, e.g.::

        {"format": "nwb", "nwb_version": "2.8.0", "units": 182, "spikes": 1234567,
         "unit_tables": {"units": {"rows": 182, "columns": ["spike_times", ...]}},
         "trials": 2295, "trial_columns": ["go_cue_time", "move_onset_time", ...],
         "behavior_series": {"behavior/hand_vel": [samples, 2], ...}, "duration_s": 7012.4}

    ``units`` and ``spikes`` count the ``units`` table (else the first units table with spike
    times); ``behavior_series`` maps each TimeSeries of the processing modules to its shape;
    ``duration_s`` is the latest finite trial end, spike or behaviour sample (seconds).

    The file is read lazily: the declared size of every dataset of the trials and units tables
    and the behaviour series is checked first (at most :data:`MAX_TRIALS` trials,
    :data:`MAX_RECORDED_UNITS` units, :data:`MAX_SPIKES` spike times, :data:`MAX_SAMPLES`
    samples a series, ``max_dataset_bytes`` bytes a dataset), then only what the summary needs
    is read, in chunks.

    Raises:
        RecordingTooLargeError: for a dataset that declares more than those limits (the message
            names it, its declared size and the limit), whatever the file's own size.
        RecordingFileError: for anything that is not an HDF5 file pynwb can open as NWB, refers
            to data outside itself, or lacks a units table with spike times or a trials table
            (the message lists everything missing at once: ``missing: units table; trials
            table``); ``name`` is the file's name in messages (default: that of ``path``).
    """
    path = Path(path)
    label = name or path.name
    with _open(path, label) as (nwbfile, version):
        try:
            return _summarise(nwbfile, label, version, max_dataset_bytes)
        except _UNREADABLE as error:
            if isinstance(error, RecordingFileError):
                raise
            raise RecordingFileError(f"{label}: unreadable NWB content: {error}") from None


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return shown or "none"


def check_layout(summary: dict[str, Any], layout: NWBLayout, events: Sequence[str]) -> list[str]:
    """The problems of a recording (its :func:`inspect_nwb` summary) for ``layout`` and the
    alignment ``events`` a spec needs: each missing table, column or series, in words.

    An empty list means the file has everything the layout names.
    """
    if not isinstance(summary, dict) or summary.get("format") != "nwb":
        return ["the file is not an NWB recording (upload a .nwb file)"]
    problems = []
    tables = summary.get("unit_tables") or {}
    table = tables.get(layout.units_table)
    if table is None:
        problems.append(
            f"units table {layout.units_table!r} is missing "
            f"(the file has: {_listing(list(tables))})"
        )
    elif layout.spike_times not in table.get("columns", []):
        problems.append(
            f"column {layout.spike_times!r} of units table {layout.units_table!r} is missing"
        )
    columns = list(summary.get("trial_columns") or [])
    required = [layout.start_time, layout.stop_time, *events, *layout.conditions]
    optional = [
        (name, default)
        for name, default in ((layout.success, _DEFAULT.success), (layout.split, _DEFAULT.split))
        if name is not None
    ]
    absent = [name for name in dict.fromkeys(required) if name not in columns]
    absent += [name for name, default in optional if name != default and name not in columns]
    if absent:
        problems.append(
            f"trial column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} "
            f"missing (the file's trial columns: {_listing(columns)})"
        )
    if not layout.conditions:
        problems.append("the layout names no condition column")
    series = summary.get("behavior_series") or {}
    wanted = layout.velocity_path
    if wanted is not None and wanted not in series:
        if (
            layout.velocity != _DEFAULT.velocity
            or layout.behavior_module != _DEFAULT.behavior_module
        ):
            problems.append(
                f"behaviour series {wanted!r} is missing (the file has: {_listing(list(series))})"
            )
    elif wanted is not None:
        shape = series[wanted]
        if len(shape) != 2 or shape[1] != 2:
            problems.append(f"behaviour series {wanted!r} has shape {shape}, not (samples, 2)")
    return problems


# ------------------------------------------------------------------------------ reading


def _column(table: DynamicTable, name: str) -> np.ndarray:
    column = table[name]
    if isinstance(column, VectorIndex):
        raise RecordingFileError(f"trial column {name!r} holds lists, not one value per trial")
    _length(column.data, f"trial column {name!r}")  # (trials,), held to MAX_TRIALS at summary
    return np.asarray(column.data[:])


def _as_text(values: np.ndarray) -> np.ndarray:
    """Labels of a column's values: bytes decoded, whole numbers without ``.0``."""
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        return np.array(
            [str(int(v)) if w else str(v) for v, w in zip(values, whole, strict=True)], dtype=str
        )
    if values.dtype.kind == "S" or values.dtype == object:
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)
    return values.astype(str)


def _spike_times(table: DynamicTable, column: str) -> list[np.ndarray]:
    """Each unit's sorted spike times, split from the ragged column by its index."""
    index = table[column]
    if not isinstance(index, VectorIndex):
        raise RecordingFileError(f"column {column!r} of the units table is not a ragged column")
    ends = np.asarray(index.data[:], dtype=np.int64)
    values = np.asarray(index.target.data[:], dtype=np.float64)
    if len(ends) == 0:
        return []
    if np.any(np.diff(ends, prepend=0) < 0) or ends[-1] != len(values):
        raise RecordingFileError(f"the index of column {column!r} does not fit its spike times")
    unit_of_spike = np.repeat(np.arange(len(ends)), np.diff(ends, prepend=0))
    if np.any((np.diff(values) < 0) & (np.diff(unit_of_spike) == 0)):
        values = values[np.lexsort((values, unit_of_spike))]
    return np.split(values, ends[:-1])


def _behaviour(series: TimeSeries, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 2:
        raise RecordingFileError(
            f"behaviour series {name!r} has shape {data.shape}, not (samples, 2)"
        )
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
    else:
        times = (series.starting_time or 0.0) + np.arange(len(data)) / float(series.rate)
    return data, times


POSITION_SERIES = ("hand_pos", "cursor_pos")
"""Series of the behaviour module whose time derivative is the hand velocity when the file has no
``hand_vel`` (MC_Maze's files have all three), tried in this order."""

_TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t"})


def _velocity(
    series: dict[str, TimeSeries], layout: NWBLayout
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(samples, 2) hand velocity and its (samples,) times, or (None, None): the layout's
    series, else (default layout only) the derivative of :data:`POSITION_SERIES`."""
    wanted = layout.velocity_path
    if wanted is None:
        return None, None
    if wanted in series:
        return _behaviour(series[wanted], wanted)
    if layout.velocity != _DEFAULT.velocity:
        return None, None
    for name in POSITION_SERIES:
        path = f"{layout.behavior_module}/{name}"
        if path in series:
            position, times = _behaviour(series[path], path)
            if len(times) >= 2 and np.all(np.diff(times) > 0):
                return np.gradient(position, times, axis=0), times
    return None, None


def _heldout_flags(units: DynamicTable) -> np.ndarray | None:
    """(units,) bool of the units table's ``heldout`` column (NLB's files mark the held-out
    neurons so), or None without one."""
    if "heldout" not in units.colnames:
        return None
    column = units["heldout"]
    if isinstance(column, VectorIndex):
        raise RecordingFileError("units column 'heldout' holds lists, not one flag per unit")
    values = np.asarray(column.data[:])
    if values.shape != (len(units),):
        raise RecordingFileError(
            f"units column 'heldout' has shape {values.shape}, not one flag per unit"
        )
    if values.dtype.kind in "SUO":
        return np.isin(np.char.lower(_as_text(values)), sorted(_TRUE_TEXT))
    return values.astype(bool)


def read_nwb(path: str | Path, layout: NWBLayout, events: Sequence[str]) -> Recording:
    """Read the recording at ``path``: spike times per unit, the trial table, hand velocity.

    Args:
        path: an NWB file (checked as :func:`inspect_nwb` does).
        layout: where the fields are (:class:`NWBLayout`).
        events: trial columns of the event times the caller aligns to (e.g.
            ``["move_onset_time"]``); read as float (trials,) arrays, NaN where missing.

    Returns:
        a :class:`Recording`; times in seconds on the file's clock, ``unit_ids`` the units
        table's ids, ``heldout`` the units table's ``heldout`` flags (None without that
        column), ``behavior`` (samples, 2) in the series' own unit: the layout's velocity
        series or, when the default ``hand_vel`` is absent, the time derivative of
        ``hand_pos`` or else ``cursor_pos`` (None when none of them is there).

    Raises:
        RecordingFileError: on a file :func:`inspect_nwb` refuses, or lacking what ``layout``
            and ``events`` name (every problem listed).
    """
    path = Path(path)
    with _open(path, path.name) as (nwbfile, version):
        problems = check_layout(_summarise(nwbfile, path.name, version), layout, events)
        if problems:
            raise RecordingFileError(f"{path.name}: " + "; ".join(problems))
        try:
            return _read(nwbfile, layout, events)
        except (KeyError, TypeError, ValueError, OSError) as error:
            if isinstance(error, RecordingFileError):
                raise RecordingFileError(f"{path.name}: {error}") from None
            raise RecordingFileError(f"{path.name}: unreadable NWB content: {error}") from None


def _read(nwbfile: NWBFile, layout: NWBLayout, events: Sequence[str]) -> Recording:
    units = _unit_tables(nwbfile)[layout.units_table]
    trials = nwbfile.trials
    assert trials is not None
    spike_times = _spike_times(units, layout.spike_times)
    labels = [_as_text(_column(trials, name)) for name in layout.conditions]
    condition = np.array(["/".join(parts) for parts in zip(*labels, strict=True)], dtype=str)
    event_times = {}
    for name in events:
        values = _column(trials, name)
        if values.dtype.kind not in "fiu":
            raise RecordingFileError(f"event column {name!r} does not hold times")
        event_times[name] = values.astype(np.float64)
    columns = set(trials.colnames)
    success = (
        _column(trials, layout.success).astype(bool)
        if layout.success is not None and layout.success in columns
        else np.ones(len(trials), dtype=bool)
    )
    split = (
        _as_text(_column(trials, layout.split))
        if layout.split is not None and layout.split in columns
        else None
    )
    behavior, behavior_times = _velocity(_series(nwbfile), layout)
    return Recording(
        spike_times=spike_times,
        trials=Trials(
            start_time=_column(trials, layout.start_time).astype(np.float64),
            stop_time=_column(trials, layout.stop_time).astype(np.float64),
            events=event_times,
            condition=condition,
            success=success,
            split=split,
        ),
        behavior=behavior,
        behavior_times=behavior_times,
        unit_ids=np.asarray(units.id.data[:]),
        heldout=_heldout_flags(units),
    )


# ------------------------------------------------------------------------------ writing

SESSION_START = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
"""Start time recorded in synthetic files (a fixed date: the session is not a real one)."""

_TRIAL_COLUMNS = {
    "target_on_time": "time the reach target appeared (s)",
    "go_cue_time": "time of the go cue (s)",
    "move_onset_time": "time the hand started moving (s); NaN where it was not detected",
    "trial_type": "condition: reach direction index, 1-based",
    "trial_version": "condition variant (always 0 here)",
    "success": "whether the trial was completed successfully",
    "split": "train, val or test",
}


def _regular_rate(times: np.ndarray) -> float | None:
    """The sampling rate of ``times`` when they are evenly spaced, else None."""
    if len(times) < 2:
        return None
    steps = np.diff(times)
    step = float(np.median(steps))
    if step > 0 and np.allclose(steps, step, rtol=0, atol=1e-9 * max(1.0, float(times[-1]))):
        return float(f"{1.0 / step:.10g}")  # 1000.0, not 999.9999999999 from rounded steps
    return None


def _behaviour_series(
    name: str, data: np.ndarray, times: np.ndarray, unit: str, description: str
) -> TimeSeries:
    compressed = H5DataIO(data, compression="gzip")
    rate = _regular_rate(times)
    if rate is not None:
        return TimeSeries(
            name=name,
            data=compressed,
            unit=unit,
            rate=rate,
            starting_time=float(times[0]),
            description=description,
        )
    return TimeSeries(
        name=name, data=compressed, unit=unit, timestamps=times, description=description
    )


def _units_table(
    recording: Recording, description: str, resolution: float, session_end: float
) -> Units:
    """The units table of ``recording``: ``spike_times``, ``obs_intervals`` (the whole session)
    and ``heldout`` (where the recording marks held-out units), each column built from whole
    arrays (``Units.add_unit`` would hold every spike time as a Python float)."""
    n_units = recording.n_units
    ids = recording.unit_ids if recording.unit_ids is not None else np.arange(n_units)
    spike_times = VectorData(
        name="spike_times",
        description="the spike times for each unit in seconds",
        data=np.concatenate([np.asarray(t, dtype=np.float64) for t in recording.spike_times])
        if n_units
        else np.zeros(0),
    )
    observed = VectorData(
        name="obs_intervals",
        description="the observation intervals for each unit",
        data=np.tile([[0.0, session_end]], (n_units, 1)),
    )
    columns: list[VectorData] = [
        spike_times,
        VectorIndex(
            name="spike_times_index",
            data=np.cumsum([len(t) for t in recording.spike_times], dtype=np.int64),
            target=spike_times,
        ),
        observed,
        VectorIndex(name="obs_intervals_index", data=np.arange(1, n_units + 1), target=observed),
    ]
    if recording.heldout is not None:
        columns.append(
            VectorData(
                name="heldout",
                description="held out from models: the co-smoothing targets (NLB)",
                data=np.asarray(recording.heldout, dtype=bool),
            )
        )
    return Units(
        name="units",
        id=ElementIdentifiers(name="id", data=np.asarray(ids, dtype=np.int64)),
        columns=columns,
        description=description,
        resolution=resolution,
    )


def write_nwb(
    path: str | Path, synthetic: SyntheticRecording, *, identifier: str | None = None
) -> Path:
    """Write ``synthetic`` to ``path`` as an NWB file in the MC_Maze layout.

    The units table holds each neuron's spike times, its ``obs_intervals`` (the whole session)
    and, as NLB's files do, a ``heldout`` flag (where the recording marks held-out neurons): what
    ``nlb_tools.nwb_interface.NWBDataset`` needs to read the file. The trials table ``start_time``,
    ``stop_time``, ``target_on_time``, ``go_cue_time``, ``move_onset_time`` (NaN kept),
    ``trial_type`` (condition + 1), ``trial_version`` (0), ``success`` and ``split``;
    ``processing/behavior`` the hand velocity ``hand_vel`` (m/s) and its integral ``hand_pos``
    (m) at 1 kHz. Session metadata (subject, experimenter, institution, ...) is filled in so that
    nwbinspector finds nothing of importance CRITICAL or BEST_PRACTICE_VIOLATION.
    """
    from lifrnn_core.synthetic_recordings import SPIKE_CLOCK_HZ  # torch: only when writing

    path = Path(path)
    recording = synthetic.recording
    trials = recording.trials
    identifier = identifier or str(uuid.uuid4())
    white_noise = synthetic.latents == "white-noise"
    nwbfile = NWBFile(
        session_description=(
            "Synthetic delayed-reach session made by lifrnn: spikes of neurons whose rates mix "
            + (
                "smoothed white-noise latents, with no network behind them"
                if white_noise
                else "the excitatory rates of a rate network fitted to reaches"
            )
        ),
        identifier=identifier,
        session_start_time=SESSION_START,
        experimenter=["Synthetic, Data"],
        lab="lifrnn",
        institution="lifrnn (synthetic data, no institution)",
        experiment_description=(
            f"{synthetic.n_conditions} conditions; latents of white noise locked to movement onset"
            if white_noise
            else f"{synthetic.n_conditions} reach directions; move onset aligned; free network "
            f"dynamics start {synthetic.lead} s before movement onset"
        ),
        keywords=["synthetic", "motor cortex", "reaching", "recurrent network"],
        subject=Subject(
            subject_id="synthetic-monkey",
            species="Macaca mulatta",
            sex="M",
            age="P8Y",
            description="a simulated subject: the recording is generated by a model",
        ),
    )
    nwbfile.units = _units_table(
        recording,
        "simulated neurons: Poisson spikes of rates mixing the "
        + ("white-noise latents" if white_noise else "network's rates"),
        1.0 / SPIKE_CLOCK_HZ,
        session_end=float(trials.stop_time[-1]) if len(trials) else 0.0,
    )
    for name, description in _TRIAL_COLUMNS.items():
        nwbfile.add_trial_column(name=name, description=description)
    split = trials.split if trials.split is not None else np.full(len(trials), "train")
    for row in range(len(trials)):
        nwbfile.add_trial(
            start_time=float(trials.start_time[row]),
            stop_time=float(trials.stop_time[row]),
            target_on_time=float(trials.events["target_on_time"][row]),
            go_cue_time=float(trials.events["go_cue_time"][row]),
            move_onset_time=float(trials.events["move_onset_time"][row]),
            trial_type=int(synthetic.condition_index[row]) + 1,
            trial_version=0,
            success=bool(trials.success[row]),
            split=str(split[row]),
        )
    if recording.behavior is not None and recording.behavior_times is not None:
        behavior = nwbfile.create_processing_module(
            name="behavior", description="hand kinematics read out from the network"
        )
        times = recording.behavior_times
        velocity = recording.behavior
        steps = np.diff(times, prepend=times[0])[:, None]
        position = np.cumsum(velocity * steps, axis=0)
        behavior.add(
            _behaviour_series(
                "hand_vel",
                velocity,
                times,
                "m/s",
                "hand velocity (x, y): "
                + (
                    "a random readout of the latents"
                    if white_noise
                    else "the network's readout C r(x_E)"
                ),
            )
        )
        behavior.add(
            _behaviour_series(
                "hand_pos", position, times, "m", "hand position (x, y): the integral of hand_vel"
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path
