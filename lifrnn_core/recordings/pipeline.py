"""Recorded population activity, and its preprocessing into condition-averaged rates.

A :class:`Recording` is what a lab's file holds (spike times per unit, a trial table, hand
behaviour), with no file format in it: :mod:`lifrnn.nwb` reads NWB files into one. The
preprocessing functions here are pure and turn it into :class:`ConditionAverages`, the
(conditions, time, neurons) rates a network is fitted to (docs/science.md, "Fitting to
recordings").

The pipeline of :func:`preprocess`, one step per function:

1. keep the usable trials (event present, success, window inside the recorded span);
2. :func:`bin_spikes` each trial's window, padded on both sides so that smoothing sees real data;
3. :func:`condition_average` the counts and convert them to spikes/s;
4. :func:`gaussian_smooth` along time, then cut the padding off;
5. drop units below the rate floor, :func:`soft_normalise` the rest (Churchland et al. 2012);
6. optionally project onto the top :func:`principal_components`.

Averaging and smoothing are both linear, so step 3 comes before step 4: smoothing a handful of
condition averages is much cheaper than smoothing thousands of trials, and gives the same result.

Time conventions: bin ``k`` of a window starting at ``s`` covers ``[s + k dt, s + (k + 1) dt)``;
``ConditionAverages.time[k]`` is the start of bin ``k`` relative to the alignment event.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = [
    "EXCLUSION_REASONS",
    "ConditionAverages",
    "PreprocessConfig",
    "Recording",
    "Trials",
    "behavior_average",
    "bin_spikes",
    "condition_average",
    "condition_averages_from_rates",
    "gaussian_smooth",
    "preprocess",
    "principal_components",
    "soft_normalise",
    "variance_captured",
]

logger = logging.getLogger(__name__)

EXCLUSION_REASONS = (
    "missing_event",
    "failed",
    "window_outside_recording",
    "too_few_trials_in_condition",
)
"""Keys of ``ConditionAverages.excluded_trials``, in the order they are checked: a trial is
counted under the first reason that applies to it."""

SMOOTHING_TRUNCATE = 4.0
"""The Gaussian kernel is cut at this many standard deviations (scipy's default). Windows are
padded by as much, so that the kept bins are smoothed exactly as if the recording were endless."""


@dataclass(frozen=True)
class Trials:
    """The trial table, one entry per trial; times in seconds on the recording's clock.

    Attributes:
        start_time: (trials,) start of each trial.
        stop_time: (trials,) end of each trial.
        events: event name (``move_onset_time``, ``go_cue_time``, ``target_on_time``, ...) ->
            (trials,) time of that event, NaN where the trial lacks it.
        condition: (trials,) condition label of each trial (str; e.g. ``"3/1"`` from the
            ``trial_type`` and ``trial_version`` columns).
        success: (trials,) bool, False for failed trials (all True when the file has no column).
        split: (trials,) str (``train``, ``val``, ``test``, ...) or None when the file has none.
    """

    start_time: np.ndarray
    stop_time: np.ndarray
    events: dict[str, np.ndarray]
    condition: np.ndarray
    success: np.ndarray
    split: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start_time)


@dataclass(frozen=True)
class Recording:
    """Spiking activity of recorded units during a reach task.

    Attributes:
        spike_times: one sorted (spikes,) float64 array of spike times (s) per unit.
        trials: the trial table.
        behavior: (samples, 2) hand velocity (e.g. mm/s), or None.
        behavior_times: (samples,) time (s) of each behaviour sample, or None.
        unit_ids: (units,) the file's identifiers of the units (default 0..units-1).
        heldout: (units,) bool, True for the units the file holds out (NLB's units column
            ``heldout``), or None when the file does not say.
    """

    spike_times: list[np.ndarray]
    trials: Trials
    behavior: np.ndarray | None = None
    behavior_times: np.ndarray | None = None
    unit_ids: np.ndarray | None = None
    heldout: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        """Number of recorded units."""
        return len(self.spike_times)


@dataclass(frozen=True)
class ConditionAverages:
    """Condition-averaged, smoothed, normalised rates: what a network is fitted to.

    Attributes:
        rates: (conditions, time, neurons) smoothed trial-averaged rates, spikes/s.
        normalised: (conditions, time, neurons) ``rates / scale`` (soft-normalised); with PCA
            (``PreprocessConfig.n_pcs``) instead (conditions, time, n_pcs) principal-component
            scores ``(rates / scale - component_mean) @ components``.
        scale: (neurons,) each neuron's soft-normalisation divisor (rate range + soft, spikes/s).
        time: (time,) seconds relative to the alignment event (start of each bin).
        dt: bin width, seconds.
        conditions: label of each condition.
        trial_counts: (conditions,) trials averaged in each condition (0 where unknown).
        units: (neurons,) index (into the recording's units) of each neuron kept.
        behavior: (conditions, time, 2) trial-averaged hand velocity, or None.
        excluded_trials: reason -> number of trials left out for it.
        dropped_units: number of units below the rate floor.
        components: (neurons, n_pcs) orthonormal principal axes of ``rates / scale``, or None
            when ``normalised`` holds neurons.
        component_mean: (neurons,) mean of ``rates / scale`` over conditions and time,
            subtracted before projecting; None without PCA.
        explained_variance_ratio: (n_pcs,) fraction of the variance of ``rates / scale`` along
            each component; None without PCA.
    """

    rates: np.ndarray
    normalised: np.ndarray
    scale: np.ndarray
    time: np.ndarray
    dt: float
    conditions: list[str]
    trial_counts: np.ndarray
    units: np.ndarray
    behavior: np.ndarray | None = None
    excluded_trials: dict[str, int] = field(default_factory=dict)
    dropped_units: int = 0
    components: np.ndarray | None = None
    component_mean: np.ndarray | None = None
    explained_variance_ratio: np.ndarray | None = None


@dataclass(frozen=True)
class PreprocessConfig:
    """How :func:`preprocess` turns a recording into condition averages.

    Attributes:
        dt: bin width, seconds; the time step of the network to be fitted (e.g. 1e-3 .. 0.02).
        sigma: standard deviation of the Gaussian smoothing kernel, seconds; 0 for none.
        align_event: name of the trial event the window is aligned to.
        window: (start, stop) seconds around the event; ``round((stop - start) / dt)`` bins.
        soft_normalisation: spikes/s added to each neuron's rate range before dividing by it.
        min_rate: spikes/s; units whose mean rate over conditions and the window is lower are
            dropped (and counted in ``dropped_units``).
        n_pcs: if set, ``normalised`` holds the top ``n_pcs`` principal-component scores of the
            soft-normalised rates instead of the neurons themselves.
        min_trials: conditions with fewer usable trials are dropped.
    """

    dt: float
    sigma: float = 0.02
    align_event: str = "move_onset_time"
    window: tuple[float, float] = (-0.25, 0.45)
    soft_normalisation: float = 5.0
    min_rate: float = 1.0
    n_pcs: int | None = None
    min_trials: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {self.dt}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"sigma must be >= 0 seconds (0: no smoothing), got {self.sigma}")
        if not self.align_event:
            raise ValueError("align_event must name a trial event, e.g. 'move_onset_time'")
        if len(self.window) != 2:
            raise ValueError(f"window must be (start, stop) in seconds, got {self.window}")
        window = (float(self.window[0]), float(self.window[1]))
        object.__setattr__(self, "window", window)
        if not window[1] > window[0]:
            raise ValueError(f"window must have stop > start, got {window}")
        if round((window[1] - window[0]) / self.dt) < 1:
            raise ValueError(f"window {window} is shorter than one bin of dt = {self.dt} s")
        if not (math.isfinite(self.soft_normalisation) and self.soft_normalisation >= 0):
            raise ValueError(
                f"soft_normalisation must be >= 0 spikes/s, got {self.soft_normalisation}"
            )
        if not (math.isfinite(self.min_rate) and self.min_rate >= 0):
            raise ValueError(f"min_rate must be >= 0 spikes/s, got {self.min_rate}")
        if self.n_pcs is not None and self.n_pcs < 1:
            raise ValueError(f"n_pcs must be None or >= 1, got {self.n_pcs}")
        if self.min_trials < 1:
            raise ValueError(f"min_trials must be >= 1, got {self.min_trials}")

    @property
    def n_time(self) -> int:
        """Number of time bins in the window."""
        return round((self.window[1] - self.window[0]) / self.dt)

    @property
    def time(self) -> np.ndarray:
        """(n_time,) start of each bin, seconds relative to the alignment event."""
        return self.window[0] + np.arange(self.n_time) * self.dt

    @property
    def padding(self) -> int:
        """Bins added on each side of the window so that smoothing has no edge effects."""
        return math.ceil(SMOOTHING_TRUNCATE * self.sigma / self.dt)


# --- binning and smoothing ---------------------------------------------------------------------


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


# --- averaging over trials ---------------------------------------------------------------------


def _natural_key(label: str) -> tuple[object, ...]:
    """Sort key reading runs of digits as numbers: "2/1" < "10/1"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label))


@dataclass(frozen=True)
class _Grouping:
    """Trials grouped by condition: ``order`` lists trials condition by condition."""

    labels: list[str]
    order: np.ndarray
    first: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, conditions: np.ndarray) -> _Grouping:
        names = np.array([str(label) for label in conditions], dtype=object)
        labels = sorted(set(names), key=_natural_key)
        index = {label: position for position, label in enumerate(labels)}
        group = np.array([index[name] for name in names], dtype=np.int64)
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=len(labels))
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return cls(labels=labels, order=order, first=first, counts=counts)

    def mean(self, x_in_order: np.ndarray) -> np.ndarray:
        """(conditions, ...) mean of (trials, ...) values already arranged in ``order``."""
        # float64 sums without a float64 copy of every trial (counts are often int32)
        sums = np.add.reduceat(np.asarray(x_in_order), self.first, axis=0, dtype=np.float64)
        return sums / self.counts.reshape((-1,) + (1,) * (sums.ndim - 1))


def condition_average(
    x: np.ndarray, conditions: np.ndarray
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Average trials of the same condition.

    Args:
        x: (trials, ...) per-trial values (e.g. (trials, time, units) rates, spikes/s).
        conditions: (trials,) condition label of each trial (compared as ``str``).

    Returns:
        averages: (conditions, ...) float64 mean over each condition's trials, same units as x.
        labels: the conditions in natural order (digit runs compared as numbers: "2" < "10").
        counts: (conditions,) trials in each condition.
    """
    x = np.asarray(x)
    if len(x) == 0 or len(x) != len(conditions):
        raise ValueError(
            f"x has {len(x)} trials and conditions {len(conditions)}; need the same, at least 1"
        )
    grouping = _Grouping.of(np.asarray(conditions))
    return grouping.mean(x[grouping.order]), grouping.labels, grouping.counts


def behavior_average(
    behavior: np.ndarray,
    behavior_times: np.ndarray,
    event_times: np.ndarray,
    time: np.ndarray,
    dt: float,
    conditions: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Sample behaviour at the centre of each bin of each trial and average per condition.

    Args:
        behavior: (samples, channels) behaviour, e.g. hand velocity (mm/s).
        behavior_times: (samples,) increasing time of each sample, seconds.
        event_times: (trials,) time of each trial's alignment event, seconds.
        time: (time,) start of each bin relative to the event, seconds.
        dt: bin width, seconds.
        conditions: (trials,) condition label of each trial.

    Returns:
        averages: (conditions, time, channels) condition-averaged behaviour, linearly
            interpolated at ``event + time + dt / 2`` (held constant beyond the samples).
        labels: the conditions, in the order of :func:`condition_average`.
    """
    behavior = np.asarray(behavior, dtype=np.float64)
    if behavior.ndim != 2 or behavior.shape[0] != len(behavior_times):
        raise ValueError(
            f"behavior must be (samples, channels) with one time per sample, got "
            f"{behavior.shape} and {len(behavior_times)} times"
        )
    centres = np.asarray(event_times, dtype=np.float64)[:, None] + np.asarray(time) + dt / 2
    per_trial = np.stack(
        [np.interp(centres, behavior_times, channel) for channel in behavior.T], axis=-1
    )
    averages, labels, _ = condition_average(per_trial, conditions)
    return averages, labels


# --- normalisation and principal components ----------------------------------------------------


def soft_normalise(rates: np.ndarray, soft: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Divide each neuron by its rate range plus ``soft`` (Churchland et al. 2012).

    The soft term keeps weakly modulated neurons from being blown up to the size of strongly
    modulated ones. Rates are not shifted: a neuron firing between 20 and 30 spikes/s becomes
    2 .. 3 with ``soft = 5``.

    Args:
        rates: (conditions, time, neurons) rates, spikes/s.
        soft: spikes/s added to each range, >= 0.

    Returns:
        normalised: (conditions, time, neurons) ``rates / scale``, dimensionless.
        scale: (neurons,) ``max - min`` over conditions and time, plus ``soft``, spikes/s; 1
            where that is 0 (a constant neuron with ``soft = 0``), so nothing is divided by 0.
    """
    if soft < 0:
        raise ValueError(f"soft must be >= 0 spikes/s, got {soft}")
    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim != 3:
        raise ValueError(f"rates must be (conditions, time, neurons), got shape {rates.shape}")
    scale = np.ptp(rates, axis=(0, 1)) + soft
    scale = np.where(scale > 0, scale, 1.0)
    return rates / scale, scale


def principal_components(
    x: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of the states of all conditions at all times.

    The rows of the (conditions * time, dims) matrix are the samples; their mean is subtracted.

    Args:
        x: (conditions, time, dims) e.g. normalised rates.
        k: number of components, 1 <= k <= dims.

    Returns:
        scores: (conditions, time, k) ``(x - mean) @ components``, units of x.
        components: (dims, k) orthonormal axes in order of decreasing variance; each one's
            largest-magnitude loading is positive, so the result is deterministic.
        mean: (dims,) mean state over conditions and time.
        explained_variance_ratio: (k,) fraction of the total variance along each component.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (conditions, time, dims), got shape {x.shape}")
    dims = x.shape[2]
    if not 1 <= k <= dims:
        raise ValueError(f"k must be between 1 and dims = {dims}, got {k}")
    samples = x.reshape(-1, dims)
    mean = samples.mean(axis=0)
    centred = samples - mean
    variances, axes = np.linalg.eigh(centred.T @ centred)
    variances = np.clip(variances[::-1], 0.0, None)
    axes = axes[:, ::-1]
    total = variances.sum()
    if not total > 0:
        raise ValueError("x has no variance over conditions and time: nothing to decompose")
    components = axes[:, :k]
    largest = np.argmax(np.abs(components), axis=0)
    components = components * np.sign(components[largest, np.arange(k)])
    scores = (centred @ components).reshape(x.shape[0], x.shape[1], k)
    return scores, components, mean, variances[:k] / total


def variance_captured(x: np.ndarray, k: int = 6) -> float:
    """Fraction of the variance of (conditions * time, dims) states in their top ``k`` PCs.

    The variance is about the mean state over conditions and time (as in
    :func:`principal_components`); to measure it about the cross-condition mean at each time,
    as jPCA does, pass ``x - x.mean(axis=0)``.

    Args:
        x: (conditions, time, dims) states.
        k: number of components; more than dims counts all of them (fraction 1).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (conditions, time, dims), got shape {x.shape}")
    _, _, _, ratio = principal_components(x, min(k, x.shape[2]))
    return float(ratio.sum())


# --- the pipeline --------------------------------------------------------------------------------


def _usable_trials(trials: Trials, config: PreprocessConfig) -> tuple[np.ndarray, dict[str, int]]:
    """(trials,) bool mask of the trials to keep, and how many were excluded for each reason."""
    if config.align_event not in trials.events:
        raise ValueError(
            f"the trial table has no event {config.align_event!r}; it has "
            f"{sorted(trials.events)}: set align_event to one of them"
        )
    event = np.asarray(trials.events[config.align_event], dtype=np.float64)
    # The recording is continuous, so a window may reach past its own trial's start or stop;
    # it only has to lie within the span the trial table covers, where spikes were recorded.
    span_start = np.min(trials.start_time)
    span_stop = np.max(trials.stop_time)
    with np.errstate(invalid="ignore"):
        outside = (event + config.window[0] < span_start) | (event + config.window[1] > span_stop)
    reasons = {
        "missing_event": np.isnan(event),
        "failed": ~np.asarray(trials.success, dtype=bool),
        "window_outside_recording": outside,
    }
    keep = np.ones(len(trials), dtype=bool)
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    for reason, mask in reasons.items():
        excluded[reason] = int(np.count_nonzero(keep & mask))
        keep &= ~mask
    if not keep.any():
        raise ValueError(
            f"no usable trial among {len(trials)} (excluded: {excluded}); check that "
            f"align_event {config.align_event!r} is set in successful trials"
        )
    labels = np.array([str(label) for label in trials.condition], dtype=object)
    names, counts = np.unique(labels[keep], return_counts=True)
    too_few = np.isin(labels, names[counts < config.min_trials]) & keep
    excluded["too_few_trials_in_condition"] = int(np.count_nonzero(too_few))
    keep &= ~too_few
    if not keep.any():
        raise ValueError(
            f"no condition has min_trials = {config.min_trials} usable trials "
            f"(the most any has is {counts.max()}); lower min_trials"
        )
    return keep, excluded


def _condition_rates(
    spike_times: Sequence[np.ndarray],
    event: np.ndarray,
    grouping: _Grouping,
    config: PreprocessConfig,
) -> np.ndarray:
    """(conditions, time, units) smoothed condition-averaged rates (spikes/s) of all units."""
    pad = config.padding
    n_bins = config.n_time + 2 * pad
    starts = event[grouping.order] + config.window[0] - pad * config.dt
    condition = np.repeat(np.arange(len(grouping.labels)), grouping.counts)
    padded = np.empty((len(spike_times), len(grouping.labels), n_bins))
    for unit, times in enumerate(spike_times):
        trial, bin_index = _spike_bins(
            np.asarray(times, dtype=np.float64), starts, n_bins, config.dt
        )
        sums = np.bincount(condition[trial] * n_bins + bin_index, minlength=padded[unit].size)
        padded[unit] = sums.reshape(-1, n_bins)
    padded /= grouping.counts[:, None] * config.dt
    smoothed = gaussian_smooth(padded, config.sigma, config.dt, axis=-1)
    return np.moveaxis(smoothed[:, :, pad : pad + config.n_time], 0, -1)


@dataclass(frozen=True)
class _Normalised:
    """Soft-normalised rates, or their top principal-component scores."""

    values: np.ndarray
    scale: np.ndarray
    components: np.ndarray | None = None
    component_mean: np.ndarray | None = None
    explained_variance_ratio: np.ndarray | None = None

    @classmethod
    def of(cls, rates: np.ndarray, soft: float, n_pcs: int | None) -> _Normalised:
        normalised, scale = soft_normalise(rates, soft)
        if n_pcs is None:
            return cls(values=normalised, scale=scale)
        if n_pcs > rates.shape[2]:
            raise ValueError(f"n_pcs = {n_pcs} is more than the {rates.shape[2]} neurons kept")
        scores, components, mean, ratio = principal_components(normalised, n_pcs)
        return cls(scores, scale, components, mean, ratio)


def preprocess(recording: Recording, config: PreprocessConfig) -> ConditionAverages:
    """Turn spike times into smoothed, soft-normalised condition-averaged rates.

    Trials are left out, and counted in ``excluded_trials``, under the first of these that
    applies: ``missing_event`` (the align event is NaN), ``failed`` (``success`` False),
    ``window_outside_recording`` (the window reaches before the first trial's start or after
    the last trial's stop), ``too_few_trials_in_condition`` (fewer than ``min_trials`` usable
    trials share its condition). A window may extend past its own trial's start and stop: the
    recording is continuous. Units whose mean rate (over conditions and the window, each
    condition weighted equally) is below ``min_rate`` are dropped and counted.

    Args:
        recording: spike times, trial table and (optionally) behaviour.
        config: bin width, smoothing, window, normalisation and exclusion settings.

    Returns:
        ConditionAverages with ``rates`` (conditions, n_time, neurons) in spikes/s, conditions in
        natural order, and behaviour (if the recording has it) averaged over the same trials.

    Raises:
        ValueError: no such event, no usable trial, or no unit reaching ``min_rate``.
    """
    trials = recording.trials
    if recording.n_units == 0:
        raise ValueError("the recording has no units")
    keep, excluded = _usable_trials(trials, config)
    event = np.asarray(trials.events[config.align_event], dtype=np.float64)[keep]
    conditions = np.asarray(trials.condition)[keep]
    grouping = _Grouping.of(conditions)

    all_rates = _condition_rates(recording.spike_times, event, grouping, config)
    mean_rate = all_rates.mean(axis=(0, 1))
    units = np.flatnonzero(mean_rate >= config.min_rate)
    if units.size == 0:
        raise ValueError(
            f"no unit reaches min_rate {config.min_rate} spikes/s (the highest mean rate is "
            f"{mean_rate.max():.3g} spikes/s); lower min_rate"
        )
    rates = all_rates[:, :, units]
    normalised = _Normalised.of(rates, config.soft_normalisation, config.n_pcs)

    behavior = None
    if recording.behavior is not None and recording.behavior_times is not None:
        behavior, _ = behavior_average(
            recording.behavior,
            recording.behavior_times,
            event,
            config.time,
            config.dt,
            conditions,
        )
    logger.info(
        "preprocessed %d trials into %d conditions x %d bins x %d units "
        "(dropped %d units below %g spikes/s; excluded trials %s)",
        int(keep.sum()),
        len(grouping.labels),
        config.n_time,
        units.size,
        recording.n_units - units.size,
        config.min_rate,
        excluded,
    )
    return ConditionAverages(
        rates=rates,
        normalised=normalised.values,
        scale=normalised.scale,
        time=config.time,
        dt=config.dt,
        conditions=grouping.labels,
        trial_counts=grouping.counts,
        units=units,
        behavior=behavior,
        excluded_trials=excluded,
        dropped_units=recording.n_units - units.size,
        components=normalised.components,
        component_mean=normalised.component_mean,
        explained_variance_ratio=normalised.explained_variance_ratio,
    )


def condition_averages_from_rates(
    rates: np.ndarray,
    dt: float,
    behavior: np.ndarray | None = None,
    soft_normalisation: float = 5.0,
    conditions: Sequence[str] | None = None,
    n_pcs: int | None = None,
) -> ConditionAverages:
    """Wrap rates that are already condition-averaged (e.g. from a ``.safetensors`` file).

    Args:
        rates: (conditions, time, neurons) rates, spikes/s.
        dt: time between samples, seconds; ``time`` starts at 0.
        behavior: (conditions, time, channels) behaviour, or None.
        soft_normalisation: spikes/s added to each neuron's range, see :func:`soft_normalise`.
        conditions: label of each condition (default "0", "1", ...).
        n_pcs: if set, ``normalised`` holds the top principal-component scores instead.

    Returns:
        ConditionAverages with every neuron kept, no exclusions, and ``trial_counts`` 0
        (unknown).
    """
    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim != 3 or min(rates.shape) == 0:
        raise ValueError(f"rates must be (conditions, time, neurons), got shape {rates.shape}")
    if not np.all(np.isfinite(rates)):
        raise ValueError("rates contain NaN or infinite values")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    n_conditions, n_time, n_neurons = rates.shape
    if behavior is not None:
        behavior = np.asarray(behavior, dtype=np.float64)
        if behavior.ndim != 3 or behavior.shape[:2] != (n_conditions, n_time):
            raise ValueError(
                f"behavior must be (conditions, time, channels) = ({n_conditions}, {n_time}, "
                f"...) like rates, got shape {behavior.shape}"
            )
    labels = [str(c) for c in range(n_conditions)] if conditions is None else list(conditions)
    if len(labels) != n_conditions:
        raise ValueError(f"conditions has {len(labels)} labels for {n_conditions} conditions")
    normalised = _Normalised.of(rates, soft_normalisation, n_pcs)
    return ConditionAverages(
        rates=rates,
        normalised=normalised.values,
        scale=normalised.scale,
        time=np.arange(n_time) * dt,
        dt=float(dt),
        conditions=[str(label) for label in labels],
        trial_counts=np.zeros(n_conditions, dtype=np.int64),
        units=np.arange(n_neurons),
        behavior=behavior,
        components=normalised.components,
        component_mean=normalised.component_mean,
        explained_variance_ratio=normalised.explained_variance_ratio,
    )
