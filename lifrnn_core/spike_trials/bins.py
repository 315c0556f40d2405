"""Binning and alignment as nlb-tools does them: bins on one grid from time 0
(``[k bw, (k + 1) bw)``), a window's first bin the first edge at or after its start, spike counts
per bin, and a behaviour series low-pass filtered and sampled at each bin's start."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

__all__ = [
    "COUNT_BLOCK",
    "DECIMATION_TAPS",
    "behavior_in_bins",
    "bin_counts",
    "grid_bins",
    "window_first_bins",
]

COUNT_BLOCK = 1 << 22
"""Most counts :func:`bin_counts` makes at once (32 MiB of int64), whatever the recording's size."""


DECIMATION_TAPS = 500
"""Order of the zero-phase FIR filter that removes what a bin cannot hold from a behaviour series
before it is sampled once per bin (nlb-tools resamples with the same filter)."""


def _quotient(ms: np.ndarray, bin_width: float) -> np.ndarray:
    """``ms / bin_width`` in bins, rid of the division's last-digit error (a time on an edge
    gives a whole number), but not of the nanoseconds that set a time before an edge apart."""
    return np.round(ms / round(bin_width * 1e3, 6), 9)


def grid_bins(times: np.ndarray, bin_width: float) -> np.ndarray:
    """The bin of the recording's grid each time falls in.

    The grid starts at time 0: bin ``k`` covers ``[k bin_width, (k + 1) bin_width)``. Times are
    first rounded to the nanosecond, as nlb-tools does before it bins, so a spike stored a
    rounding error before an edge belongs to the bin that edge opens.

    Args:
        times: (n,) times, seconds.
        bin_width: seconds per bin.

    Returns:
        (n,) int64 bin indices.
    """
    ms = np.round(np.asarray(times, dtype=np.float64) * 1e3, 6)
    return np.floor(_quotient(ms, bin_width)).astype(np.int64)


def window_first_bins(event_times: np.ndarray, offset: float, bin_width: float) -> np.ndarray:
    """(trials,) int64: the first bin of the grid (:func:`grid_bins`) that starts at or after
    ``event_times + offset`` (seconds), as nlb-tools aligns a window; the event times must be
    finite."""
    ms = np.round(np.asarray(event_times, dtype=np.float64) * 1e3, 6) + round(offset * 1e3, 6)
    return np.ceil(_quotient(ms, bin_width)).astype(np.int64)


@dataclass(frozen=True)
class _SpikeKeys:
    """All spikes of some units as one sorted key, ``unit * span + (bin - base)``: unit u's bins
    live in ``[u span, (u + 1) span)``, so each (unit, trial) window is one searchsorted range
    and no loop over units is needed."""

    key: np.ndarray
    base: int
    span: int
    n_units: int

    @classmethod
    def of(
        cls, spike_times: Sequence[np.ndarray], bin_width: float, lowest: int, highest: int
    ) -> _SpikeKeys:
        """Keys of ``spike_times`` (one array per unit, seconds) for windows within grid bins
        ``[lowest, highest)``."""
        times = [np.asarray(t, dtype=np.float64) for t in spike_times]
        times = [t[np.isfinite(t)] for t in times]
        lengths = np.array([len(t) for t in times], dtype=np.int64)
        bins = grid_bins(np.concatenate(times) if times else np.zeros(0), bin_width)
        base = min(int(bins.min()), lowest) if bins.size else lowest
        span = max(int(bins.max()) + 1 if bins.size else 0, highest) - base + 1
        key = np.repeat(np.arange(len(lengths)), lengths) * span + (bins - base)
        if np.any(np.diff(key) < 0):
            key = np.sort(key)
        return cls(key=key, base=base, span=span, n_units=len(lengths))

    def counts(self, first_bins: np.ndarray, n_bins: int) -> np.ndarray:
        """(trials, n_bins, units) int32 counts from each trial's first bin."""
        counts = np.zeros((len(first_bins), n_bins, self.n_units), dtype=np.int32)
        if counts.size == 0 or self.key.size == 0:
            return counts
        # Trials in blocks of about COUNT_BLOCK counts: bincount is fast but needs its output.
        block = max(1, COUNT_BLOCK // (n_bins * self.n_units))
        for first in range(0, len(first_bins), block):
            rows = slice(first, first + block)
            starts = np.asarray(first_bins[rows], dtype=np.int64) - self.base
            counts[rows] = _block_counts(self.key, self.span, starts, n_bins, self.n_units)
        return counts


def bin_counts(
    spike_times: Sequence[np.ndarray], first_bins: np.ndarray, n_bins: int, bin_width: float
) -> np.ndarray:
    """Count each unit's spikes in ``n_bins`` bins of the grid from each trial's first bin.

    Args:
        spike_times: one sorted (spikes,) array of spike times (s) per unit.
        first_bins: (trials,) each trial's first bin on the grid (:func:`window_first_bins`).
        n_bins: bins per trial (>= 0).
        bin_width: seconds per bin.

    Returns:
        (trials, n_bins, units) int32 spike counts; bin ``j`` of trial ``i`` is grid bin
        ``first_bins[i] + j``. Windows of different trials may overlap: a spike counts in each.
    """
    first_bins = np.asarray(first_bins, dtype=np.int64)
    if first_bins.size == 0:
        return np.zeros((0, n_bins, len(spike_times)), dtype=np.int32)
    lowest, highest = int(first_bins.min()), int(first_bins.max()) + n_bins
    return _SpikeKeys.of(spike_times, bin_width, lowest, highest).counts(first_bins, n_bins)


def _block_counts(
    key: np.ndarray, span: int, starts: np.ndarray, n_bins: int, n_units: int
) -> np.ndarray:
    """(len(starts), n_bins, n_units) counts of the spikes whose ``key`` (unit * span + bin)
    falls in each window ``[starts, starts + n_bins)`` of each unit."""
    windows = starts[:, None] + (np.arange(n_units) * span)[None, :]  # (trials, units)
    start = np.searchsorted(key, windows.ravel(), side="left")
    hits = np.searchsorted(key, windows.ravel() + n_bins, side="left") - start
    window = np.repeat(np.arange(hits.size), hits)  # trial * n_units + unit of each hit
    offsets = np.arange(window.size) - np.repeat(np.cumsum(hits) - hits, hits)
    bin_in_window = key[np.repeat(start, hits) + offsets] - windows.ravel()[window]
    trial, unit = np.divmod(window, n_units)
    flat = (trial * n_bins + bin_in_window) * n_units + unit
    total = len(starts) * n_bins * n_units
    return np.bincount(flat, minlength=total).reshape(len(starts), n_bins, n_units)


# --- behaviour ----------------------------------------------------------------------------------


def _fill_gaps(data: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``data`` with NaN samples linearly interpolated (held constant at the ends)."""
    filled = data.copy()
    for channel in filled.T:  # a couple of channels, each vectorised over samples
        bad = np.isnan(channel)
        if bad.any() and not bad.all():
            channel[bad] = np.interp(times[bad], times[~bad], channel[~bad])
    return filled


def _on_grid_start(times: np.ndarray, step: float, bin_width: float) -> int | None:
    """Index of the first sample at a bin edge of the grid, when the samples (``step`` apart)
    meet the edges every ``bin_width / step`` samples; None when they never do."""
    edge = math.ceil(round(times[0] / bin_width, 9)) * bin_width
    samples = (edge - times[0]) / step
    if abs(samples - round(samples)) > 1e-6:
        return None
    return round(samples)


def behavior_in_bins(
    behavior: np.ndarray,
    behavior_times: np.ndarray,
    first_bins: np.ndarray,
    n_bins: int,
    bin_width: float,
) -> np.ndarray:
    """A behaviour series at the start of each bin of each trial, as nlb-tools resamples it.

    A series sampled regularly at an integer multiple ``q`` of the bin rate, with samples on
    the bin edges (MC_Maze's 1 kHz ``hand_vel`` at 5 ms bins), is low-pass filtered by a
    zero-phase FIR filter of order :data:`DECIMATION_TAPS` and kept every ``q`` samples (scipy's
    ``decimate``, NLB's resampling); NaN samples are interpolated for the filter and stay NaN.
    Any other series is interpolated linearly at the bin starts.

    Args:
        behavior: (samples, channels) e.g. hand velocity.
        behavior_times: (samples,) increasing sample times, seconds.
        first_bins: (trials,) each trial's first bin on the grid (:func:`window_first_bins`).
        n_bins: bins per trial.
        bin_width: seconds per bin.

    Returns:
        (trials, n_bins, channels) float64, in the series' unit; NaN outside the series.
    """
    data = np.asarray(behavior, dtype=np.float64)
    times = np.asarray(behavior_times, dtype=np.float64)
    if data.ndim != 2 or len(data) != len(times) or len(times) < 2:
        raise ValueError(
            f"behavior must be (samples, channels) with one time per sample and at least 2 "
            f"samples, got {data.shape} and {len(times)} times"
        )
    grid = (np.asarray(first_bins, dtype=np.int64)[:, None] + np.arange(n_bins)).reshape(-1)
    steps = np.diff(times)
    step = float(np.median(steps))
    ratio = bin_width / step if step > 0 else math.nan
    regular = step > 0 and bool(np.all(np.abs(steps - step) <= 1e-6 * step))
    factor = round(ratio) if math.isfinite(ratio) else 0
    start = _on_grid_start(times, step, bin_width) if regular and factor >= 1 else None
    if start is not None and abs(ratio - factor) <= 1e-6 * ratio and start < len(times):
        filled = _fill_gaps(data, times)
        kept = filled[start::factor]
        if factor > 1:
            kept = signal.decimate(filled[start:], factor, n=DECIMATION_TAPS, ftype="fir", axis=0)
        kept[np.isnan(data[start::factor])] = np.nan
        first_edge = round((times[0] + start * step) / bin_width)
        index = grid - first_edge
        inside = (index >= 0) & (index < len(kept))
        values = np.full((grid.size, data.shape[1]), np.nan)
        values[inside] = kept[index[inside]]
    else:
        at = grid * bin_width
        values = np.stack(
            [np.interp(at, times, channel, left=np.nan, right=np.nan) for channel in data.T],
            axis=-1,
        )
    return values.reshape(len(first_bins), n_bins, data.shape[1])
