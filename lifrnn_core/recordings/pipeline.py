"""The pipeline of :func:`preprocess`, from a :class:`Recording` to :class:`ConditionAverages`
(the steps are listed in :mod:`lifrnn_core.recordings`), and :func:`condition_averages_from_rates`
for rates already averaged.

Time conventions: ``ConditionAverages.time[k]`` is the start of bin ``k`` relative to the
alignment event.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lifrnn_core.recordings.averaging import _Grouping, behavior_average
from lifrnn_core.recordings.binning import SMOOTHING_TRUNCATE, _spike_bins, gaussian_smooth
from lifrnn_core.recordings.components import principal_components, soft_normalise
from lifrnn_core.recordings.data import Recording, Trials

__all__ = [
    "EXCLUSION_REASONS",
    "ConditionAverages",
    "PreprocessConfig",
    "condition_averages_from_rates",
    "preprocess",
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
