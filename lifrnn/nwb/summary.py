"""A recording's summary (:func:`inspect_nwb`, the stored header of an upload), read in bounded
chunks, and the problems of a summary for a layout (:func:`check_layout`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hdmf.common import DynamicTable, VectorIndex
from pynwb import NWBFile, TimeSeries
from pynwb.misc import Units

from lifrnn.nwb.layout import (
    _DEFAULT,
    MAX_DATASET_BYTES,
    MAX_LISTED,
    READ_CHUNK,
    NWBLayout,
    RecordingFileError,
)
from lifrnn.nwb.safety import _check_sizes, _declared_shape, _open

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
