"""Spike counts in time bins after each trial's start, and Gaussian smoothing along time.

Bin ``k`` of a window starting at ``s`` covers ``[s + k dt, s + (k + 1) dt)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["SMOOTHING_TRUNCATE", "bin_spikes", "gaussian_smooth"]

SMOOTHING_TRUNCATE = 4.0
"""The Gaussian kernel is cut at this many standard deviations (scipy's default). Windows are
padded by as much, so that the kept bins are smoothed exactly as if the recording were endless."""


def _spike_bins(
    spike_times: np.ndarray, starts: np.ndarray, n_bins: int, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Trial and bin of each spike of one unit that falls in some trial's bins.

    Args:
        spike_times: (spikes,) sorted spike times of one unit, seconds.
        starts: (trials,) start of each trial's first bin, seconds.
        n_bins: bins per trial; bin ``k`` covers ``[starts + k dt, starts + (k + 1) dt)``.
        dt: bin width, seconds.

    Returns:
        trial, bin: (hits,) int64 indices, one pair per (spike, trial) it falls in (a spike in
        overlapping windows counts once for each).
    """
    # side="left" finds the first spike at or after each edge, so a spike exactly on an edge
    # belongs to the bin that edge opens. Only the spikes inside windows are visited.
    first = np.searchsorted(spike_times, starts, side="left")
    stop = np.searchsorted(spike_times, starts + n_bins * dt, side="left")
    lengths = np.maximum(stop - first, 0)
    trial = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(trial.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    times = spike_times[np.repeat(first, lengths) + offsets]
    start = starts[trial]
    bin_index = np.clip(np.floor((times - start) / dt).astype(np.int64), 0, n_bins - 1)
    # The division can land one bin off next to an edge; the edges start + k dt decide.
    bin_index -= times < start + bin_index * dt
    bin_index += times >= start + (bin_index + 1) * dt
    return trial, bin_index


def bin_spikes(
    spike_times: Sequence[np.ndarray], starts: np.ndarray, n_bins: int, dt: float
) -> np.ndarray:
    """Count each unit's spikes in consecutive bins after each trial's start.

    Args:
        spike_times: one sorted (spikes,) array of spike times (s) per unit.
        starts: (trials,) start of each trial's first bin, seconds.
        n_bins: bins per trial.
        dt: bin width, seconds.

    Returns:
        (trials, n_bins, units) int64 spike counts; bin ``k`` of trial ``i`` covers
        ``[starts[i] + k dt, starts[i] + (k + 1) dt)``. Spikes outside every bin are ignored;
        windows of different trials may overlap.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not dt > 0:
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    starts = np.asarray(starts, dtype=np.float64)
    counts = np.zeros((len(spike_times), len(starts) * n_bins), dtype=np.int64)
    for unit, times in enumerate(spike_times):
        trial, bin_index = _spike_bins(np.asarray(times, dtype=np.float64), starts, n_bins, dt)
        counts[unit] = np.bincount(trial * n_bins + bin_index, minlength=counts.shape[1])
    return np.moveaxis(counts.reshape(len(spike_times), len(starts), n_bins), 0, -1)


def gaussian_smooth(x: np.ndarray, sigma: float, dt: float, axis: int = 1) -> np.ndarray:
    """Convolve with a unit-area Gaussian along the time axis.

    Args:
        x: array with time along ``axis`` (e.g. (trials, time, units) rates, spikes/s).
        sigma: standard deviation of the kernel, seconds; 0 returns a float copy of ``x``.
        dt: sampling interval of ``x``, seconds.
        axis: the time axis.

    Returns:
        float64 array shaped like ``x``, in the same units. The kernel is cut at
        ``SMOOTHING_TRUNCATE`` sd and the ends are mirrored, which keeps the total (the area,
        times dt) of each trace; pad the data and cut afterwards to avoid edge effects.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 seconds, got {sigma}")
    x = np.asarray(x, dtype=np.float64)
    if sigma == 0:
        return x.copy()
    return gaussian_filter1d(x, sigma / dt, axis=axis, mode="reflect", truncate=SMOOTHING_TRUNCATE)
