"""Reading a recording (:func:`read_nwb`): spike times per unit (and NLB's ``heldout`` flags),
the trial table and the hand velocity, into a :class:`~lifrnn_core.recordings.Recording`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hdmf.common import DynamicTable, VectorIndex
from pynwb import NWBFile, TimeSeries

from lifrnn.nwb.layout import _DEFAULT, NWBLayout, RecordingFileError
from lifrnn.nwb.safety import _open
from lifrnn.nwb.summary import _length, _series, _summarise, _unit_tables, check_layout
from lifrnn_core.recordings import Recording, Trials


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
