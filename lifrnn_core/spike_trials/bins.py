"""Single-trial spike counts in the layout the Neural Latents Benchmark scores (NLB'21, MC_Maze).

A :class:`SpikeTrials` holds binned spike counts of every usable trial, aligned to movement onset,
with the recorded neurons split into *held-in* ones (a model sees them on every trial) and
*held-out* ones (a model sees them on training trials only and predicts them on the others:
co-smoothing), the bins after the window (forward prediction), hand velocity, condition labels and
the train / val / test split of the trials. Every model and every baseline of a ``fit_data`` job
is scored on the same :class:`SpikeTrials`, so on the same split: the split comes from the file or
from a seed and the data, never from a model.

:func:`spike_trials` cuts a :class:`~lifrnn_core.recordings.Recording` into one, as nlb-tools
(Pei et al. 2021) cuts an NWB file: bins on one grid from time 0 (``[k bw, (k + 1) bw)``), the
window starting at the first bin edge at or after ``event + window[0]``, behaviour low-pass
filtered and sampled at each bin's start. docs/science.md, "Spike trains the NLB way", says why.

Shapes: ``(trials, time, neurons)``; times in seconds; counts are spikes per bin.

May import: numpy, scipy.signal, :mod:`lifrnn_core.recordings`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from lifrnn_core.recordings import Recording

__all__ = [
    "EXCLUSION_REASONS",
    "NLB_VELOCITY_LAG",
    "SPLITS",
    "SpikeTrials",
    "SpikeTrialsConfig",
    "SpikeTrialsError",
    "behavior_in_bins",
    "bin_counts",
    "grid_bins",
    "spike_trials",
    "window_first_bins",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
"""Trial splits: models are fitted on ``train``, their regularisation chosen on ``val``, and they
are scored on ``test``."""

UNUSED_SPLIT = "none"
"""The split NLB's files give the trials no split uses (failed ones, for instance): left out."""

EXCLUSION_REASONS = (
    "missing_event",
    "failed",
    "unused_split",
    "window_outside_recording",
    "test_without_heldout",
)
"""Keys of ``SpikeTrials.excluded_trials``, in the order they are checked: a trial is counted
under the first reason that applies to it."""

NLB_VELOCITY_LAG = 0.1
"""Seconds by which NLB'21 decodes MC_Maze's hand velocity after the spikes (its ``lag``, 100 ms):
``SpikeTrialsConfig(behavior_lag=NLB_VELOCITY_LAG)`` gives the velocity NLB scores."""

COUNT_BLOCK = 1 << 22
"""Most counts :func:`bin_counts` makes at once (32 MiB of int64), whatever the recording's size."""

DECIMATION_TAPS = 500
"""Order of the zero-phase FIR filter that removes what a bin cannot hold from a behaviour series
before it is sampled once per bin (nlb-tools resamples with the same filter)."""


class SpikeTrialsError(ValueError):
    """A recording that cannot be cut into scored single trials (422).

    Attributes:
        missing: what the recording lacks, in words (``"move_onset_time"``, ``"held-out
            neurons"``, ``"val trials"``, ...).
        minimum: the fewest needed, where a count falls short; None otherwise.
    """

    def __init__(self, message: str, *, missing: str, minimum: int | None = None) -> None:
        super().__init__(message)
        self.missing = missing
        self.minimum = minimum


@dataclass(frozen=True)
class SpikeTrialsConfig:
    """How a recording is cut into :class:`SpikeTrials` (NLB'21's MC_Maze defaults).

    Attributes:
        bin_width: seconds per bin (NLB: 5 ms).
        align_event: the trial event the window is aligned to.
        window: (start, stop) seconds around the event (NLB: -250 ms to +450 ms).
        forward: seconds after the window predicted by forward prediction (NLB: 200 ms).
        heldout_fraction: fraction of the neurons held out when the file does not say which
            (NLB MC_Maze: 45 of 182).
        val_fraction: fraction of the training trials kept for validation when the file has no
            ``val`` trials.
        test_fraction: fraction of the trials held out for testing when the file has no split.
        seed: draws the held-out neurons and the trial split when the file does not give them
            (from the data alone, so every model is scored on the same split).
        min_heldout: fewest held-out neurons a score is defined on.
        min_trials: fewest trials in each of train, val and test.
        behavior_lag: seconds by which ``SpikeTrials.behavior`` follows the spikes: bin ``k``
            holds the velocity at ``time[k] + behavior_lag`` (0: the window itself;
            :data:`NLB_VELOCITY_LAG` for NLB's velocity decoding).
    """

    bin_width: float = 0.005
    align_event: str = "move_onset_time"
    window: tuple[float, float] = (-0.25, 0.45)
    forward: float = 0.2
    heldout_fraction: float = 0.25
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    min_heldout: int = 2
    min_trials: int = 2
    behavior_lag: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bin_width) and self.bin_width > 0):
            raise ValueError(
                f"bin_width must be a positive number of seconds, got {self.bin_width}"
            )
        window = (float(self.window[0]), float(self.window[1]))
        object.__setattr__(self, "window", window)
        if not window[1] > window[0]:
            raise ValueError(f"window must have stop > start, got {window}")
        if self.n_time < 1:
            raise ValueError(f"window {window} is shorter than one bin of {self.bin_width} s")
        if not (math.isfinite(self.forward) and self.forward >= 0):
            raise ValueError(f"forward must be >= 0 seconds, got {self.forward}")
        for name in ("heldout_fraction", "val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1):
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if self.min_heldout < 1 or self.min_trials < 1:
            raise ValueError(
                f"min_heldout and min_trials must be >= 1, got {self.min_heldout} and "
                f"{self.min_trials}"
            )
        if not math.isfinite(self.behavior_lag):
            raise ValueError(f"behavior_lag must be a number of seconds, got {self.behavior_lag}")

    @property
    def n_time(self) -> int:
        """Bins in the window."""
        return round((self.window[1] - self.window[0]) / self.bin_width)

    @property
    def n_forward(self) -> int:
        """Bins after the window, for forward prediction."""
        return round(self.forward / self.bin_width)


@dataclass(frozen=True)
class SpikeTrials:
    """Binned single trials, held-in and held-out neurons, and the trial split.

    Attributes:
        heldin: (trials, time, n_heldin) spike counts of the held-in neurons in the window.
        heldout: (trials, time, n_heldout) spike counts of the held-out neurons in the window.
        heldin_forward: (trials, n_forward, n_heldin) counts in the bins after the window.
        heldout_forward: (trials, n_forward, n_heldout) counts in the bins after the window.
        behavior: (trials, time, 2) hand velocity in the window, or None when the file has none.
        condition: (trials,) condition label of each trial (str).
        split: (trials,) ``train``, ``val`` or ``test``.
        time: (time,) start of each bin, seconds relative to ``align_event``.
        bin_width: seconds per bin.
        heldin_units: (n_heldin,) index of each held-in neuron into the recording's units.
        heldout_units: (n_heldout,) index of each held-out neuron into the recording's units.
        trial_index: (trials,) index of each trial into the recording's trial table.
        split_from_file: True when the trial split was the file's own, False when drawn.
        heldout_from_file: True when the held-out neurons were the file's own choice.
        behavior_lag: seconds by which ``behavior`` follows the spikes (see
            :class:`SpikeTrialsConfig`).
        excluded_trials: reason (:data:`EXCLUSION_REASONS`) -> trials left out for it.
        split_rule: how the split came about: ``file`` (the file's train / val / test),
            ``file_val_drawn`` (the file's train and test; val drawn from its train trials),
            ``file_val_as_test`` (a file with train and val but no scorable test trials, as
            NLB's train files: its val trials are the test set, val drawn from its train
            trials) or ``drawn`` (all drawn by the seed).
    """

    heldin: np.ndarray
    heldout: np.ndarray
    heldin_forward: np.ndarray
    heldout_forward: np.ndarray
    behavior: np.ndarray | None
    condition: np.ndarray
    split: np.ndarray
    time: np.ndarray
    bin_width: float
    heldin_units: np.ndarray
    heldout_units: np.ndarray
    trial_index: np.ndarray
    split_from_file: bool = False
    heldout_from_file: bool = False
    behavior_lag: float = 0.0
    excluded_trials: dict[str, int] = field(default_factory=dict)
    split_rule: str = "drawn"

    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return int(self.heldin.shape[0])

    def mask(self, split: str) -> np.ndarray:
        """(trials,) bool: the trials of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.asarray(self.split == split)


# --- the bin grid ------------------------------------------------------------------------------


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


# --- which trials and which neurons ---------------------------------------------------------------


def _split_labels(split: np.ndarray | None, n_trials: int) -> np.ndarray | None:
    """The file's split of each trial, lower case and stripped, or None without a column."""
    if split is None:
        return None
    labels = np.array([str(label).strip().lower() for label in split], dtype=object)
    if len(labels) != n_trials:
        raise ValueError(f"the split column has {len(labels)} values for {n_trials} trials")
    return labels


def _usable_trials(
    recording: Recording,
    first_bins: np.ndarray,
    labels: np.ndarray | None,
    config: SpikeTrialsConfig,
) -> tuple[np.ndarray, dict[str, int]]:
    """(trials,) bool mask of the trials to keep, and how many were excluded for each reason."""
    trials = recording.trials
    event = np.asarray(trials.events[config.align_event], dtype=np.float64)
    # The recording is continuous: a window may reach past its own trial, but it must lie in
    # the span the trial table covers, where spikes were recorded.
    span_start = float(np.min(trials.start_time))
    span_stop = float(np.max(trials.stop_time))
    n_bins = config.n_time + config.n_forward
    tolerance = 1e-9 * max(1.0, span_stop)
    with np.errstate(invalid="ignore"):
        outside = (first_bins * config.bin_width < span_start - tolerance) | (
            (first_bins + n_bins) * config.bin_width > span_stop + tolerance
        )
    reasons = {
        "missing_event": ~np.isfinite(event),
        "failed": ~np.asarray(trials.success, dtype=bool),
        "unused_split": (
            np.zeros(len(trials), dtype=bool) if labels is None else labels == UNUSED_SPLIT
        ),
        "window_outside_recording": outside,
    }
    keep = np.ones(len(trials), dtype=bool)
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    for reason, mask in reasons.items():
        excluded[reason] = int(np.count_nonzero(keep & mask))
        keep &= ~mask
    return keep, excluded


def _heldout_units(
    recording: Recording, config: SpikeTrialsConfig, heldout_units: Sequence[int] | None
) -> tuple[np.ndarray, bool]:
    """(n_heldout,) sorted indices of the held-out units, and whether the file chose them."""
    n_units = recording.n_units
    if heldout_units is not None:
        chosen = np.unique(np.asarray(heldout_units, dtype=np.int64))
        if chosen.size != len(heldout_units) or (
            chosen.size and (chosen[0] < 0 or chosen[-1] >= n_units)
        ):
            raise ValueError(
                f"heldout_units must be distinct unit indices in 0..{n_units - 1}, got "
                f"{list(heldout_units)[:10]}"
            )
        return chosen, False
    if recording.heldout is not None and np.any(recording.heldout):
        return np.flatnonzero(np.asarray(recording.heldout, dtype=bool)), True
    # Drawn from the number of units and the seed alone: the same for every model.
    rng = np.random.default_rng([config.seed, 0])
    count = round(config.heldout_fraction * n_units)
    return np.sort(rng.choice(n_units, size=min(count, n_units), replace=False)), False


def _stratified_pick(
    candidates: np.ndarray, condition: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """(trials,) bool: ``round(fraction * candidates)`` of the candidate trials, shared among
    the conditions in proportion to their candidates (largest remainders, ties at random),
    each condition's chosen at random."""
    chosen = np.zeros(len(condition), dtype=bool)
    index = np.flatnonzero(candidates)
    if index.size == 0:
        return chosen
    _, group = np.unique(condition[index], return_inverse=True)
    sizes = np.bincount(group)
    exact = fraction * sizes
    quota = np.floor(exact).astype(np.int64)
    extra = round(fraction * index.size) - int(quota.sum())
    ties = rng.random(sizes.size)
    quota[np.lexsort((ties, -(exact - quota)))[:extra]] += 1
    order = np.lexsort((rng.random(index.size), group))  # random order within each condition
    sorted_group = group[order]
    rank = np.arange(index.size) - np.searchsorted(sorted_group, sorted_group, side="left")
    chosen[index[order[rank < quota[sorted_group]]]] = True
    return chosen


def _split(
    labels: np.ndarray | None, condition: np.ndarray, config: SpikeTrialsConfig
) -> tuple[np.ndarray, str]:
    """(trials,) split of the kept trials and the rule that made it (``SpikeTrials.split_rule``).

    ``labels``: the file's split of the kept trials (lower case), or None. The draws use a
    generator seeded by ``config.seed`` and nothing but the trials' order and conditions.
    """
    rng = np.random.default_rng([config.seed, 1])
    split = np.full(len(condition), "train", dtype=object)
    known = labels is not None and bool(np.all(np.isin(labels, SPLITS)))
    if labels is not None and not known:
        logger.warning(
            "the file's split column holds %s, not only %s: the split is drawn by the seed",
            sorted(set(labels) - set(SPLITS))[:5],
            SPLITS,
        )
    if known and labels is not None and np.any(labels == "train"):
        has_val, has_test = np.any(labels == "val"), np.any(labels == "test")
        if has_val and has_test:
            split[:] = labels
            return split, "file"
        train = labels == "train"
        if has_test:
            split[labels == "test"] = "test"
            split[_stratified_pick(train, condition, config.val_fraction, rng)] = "val"
            return split, "file_val_drawn"
        if has_val:
            split[labels == "val"] = "test"
            split[_stratified_pick(train, condition, config.val_fraction, rng)] = "val"
            return split, "file_val_as_test"
    everyone = np.ones(len(condition), dtype=bool)
    test = _stratified_pick(everyone, condition, config.test_fraction, rng)
    split[test] = "test"
    split[_stratified_pick(~test, condition, config.val_fraction, rng)] = "val"
    return split, "drawn"


# --- the whole cut ------------------------------------------------------------------------------


def _check_recording(recording: Recording, config: SpikeTrialsConfig) -> None:
    """Raise :class:`SpikeTrialsError` for a recording without spikes, trials or the event."""
    if recording.n_units == 0 or sum(len(times) for times in recording.spike_times) == 0:
        raise SpikeTrialsError(
            f"the recording has no spikes ({recording.n_units} units, none with a spike time): "
            f"spike trains need a units table with spike_times, at least "
            f"{config.min_heldout + 1} units",
            missing="spikes",
            minimum=config.min_heldout + 1,
        )
    if len(recording.trials) == 0:
        raise SpikeTrialsError(
            f"the recording has no trials: at least {3 * config.min_trials} are needed "
            f"({config.min_trials} in each of train, val and test)",
            missing="trials",
            minimum=3 * config.min_trials,
        )
    if config.align_event not in recording.trials.events:
        raise SpikeTrialsError(
            f"the trial table has no {config.align_event!r} (the alignment event); it has "
            f"{sorted(recording.trials.events) or 'no event columns'}",
            missing=config.align_event,
        )


def _check_units(n_units: int, n_heldout: int, config: SpikeTrialsConfig) -> None:
    if n_heldout < config.min_heldout:
        raise SpikeTrialsError(
            f"{n_heldout} held-out neuron{'s' if n_heldout != 1 else ''} of {n_units}: "
            f"co-smoothing needs at least min_heldout = {config.min_heldout} (raise "
            f"heldout_fraction, now {config.heldout_fraction}, or record more neurons)",
            missing="held-out neurons",
            minimum=config.min_heldout,
        )
    if n_heldout >= n_units:
        raise SpikeTrialsError(
            f"all {n_units} neurons are held out: at least 1 held-in neuron is needed",
            missing="held-in neurons",
            minimum=1,
        )


def _check_trials(split: np.ndarray, excluded: dict[str, int], config: SpikeTrialsConfig) -> None:
    for name in SPLITS:
        count = int(np.count_nonzero(split == name))
        if count < config.min_trials:
            raise SpikeTrialsError(
                f"{count} usable {name} trial{'s' if count != 1 else ''}: at least min_trials = "
                f"{config.min_trials} are needed in each of train, val and test ({len(split)} "
                f"usable trials; excluded: {excluded})",
                missing=f"{name} trials",
                minimum=config.min_trials,
            )


def spike_trials(
    recording: Recording,
    config: SpikeTrialsConfig,
    heldout_units: Sequence[int] | None = None,
) -> SpikeTrials:
    """Cut a recording into binned single trials, held-in and held-out neurons, and a split.

    Trials are kept unless (first reason counted, :data:`EXCLUSION_REASONS`) the alignment
    event is missing, the trial failed, the file's split marks it ``none``, its window and
    forward bins leave the span of the trial table, or it is one of the file's test trials on
    which the held-out neurons have no spike at all while they fire on training trials (the
    file withholds them there, as NLB's test phase does).

    The window's first bin is the first bin edge of the grid from time 0 at or after
    ``event + window[0]``; ``config.n_time`` bins follow, then ``config.n_forward`` forward bins
    (nlb-tools' alignment). Held-out neurons: ``heldout_units`` when given, else the file's own
    (``Recording.heldout``), else ``round(heldout_fraction * units)`` drawn by ``config.seed``.
    The split: the file's ``train`` / ``val`` / ``test`` when it has all three; a file without
    ``val`` gets one drawn from its train trials; a file with train and val but no test trials
    (NLB's train files) has its val trials scored as test and a val drawn from its train
    trials; any other file gets a split drawn by ``config.seed``, stratified by condition.
    Draws depend on the seed, the trials' order, their conditions and the number of units only:
    never on a model.

    Args:
        recording: spike times, trial table and (optionally) behaviour.
        config: bin width, window, forward bins, fractions, seed and minimums.
        heldout_units: indices into the recording's units to hold out, overriding the file.

    Returns:
        SpikeTrials with int32 counts ``(trials, time, neurons)`` and behaviour (trials, time, 2)
        sampled at ``time + behavior_lag`` (None when the recording has none).

    Raises:
        SpikeTrialsError: no spikes, no trials, no alignment event, fewer than ``min_heldout``
            held-out neurons (or no held-in one), or fewer than ``min_trials`` in a split; the
            message names what is missing and the minimum.
    """
    _check_recording(recording, config)
    trials = recording.trials
    labels = _split_labels(trials.split, len(trials))
    event = np.asarray(trials.events[config.align_event], dtype=np.float64)
    first_bins = np.zeros(len(trials), dtype=np.int64)
    finite = np.isfinite(event)
    first_bins[finite] = window_first_bins(event[finite], config.window[0], config.bin_width)
    keep, excluded = _usable_trials(recording, first_bins, labels, config)
    if not keep.any():
        raise SpikeTrialsError(
            f"no usable trial among {len(trials)} (excluded: {excluded}); each needs "
            f"{config.align_event!r}, success and its window inside the recording",
            missing=f"trials with {config.align_event}",
            minimum=3 * config.min_trials,
        )
    heldout, heldout_from_file = _heldout_units(recording, config, heldout_units)
    _check_units(recording.n_units, heldout.size, config)
    heldin = np.setdiff1d(np.arange(recording.n_units), heldout)
    spikes_out = [recording.spike_times[u] for u in heldout]
    n_time, n_forward = config.n_time, config.n_forward

    kept = np.flatnonzero(keep)
    heldout_counts = bin_counts(spikes_out, first_bins[kept], n_time + n_forward, config.bin_width)
    kept_labels = None if labels is None else labels[kept].copy()
    if kept_labels is not None and np.any(kept_labels == "test"):
        per_trial = heldout_counts.sum(axis=(1, 2))
        test = kept_labels == "test"
        if per_trial[test].sum() == 0 and per_trial[~test].sum() > 0:
            excluded["test_without_heldout"] = int(test.sum())
            logger.warning(
                "the held-out neurons have no spike in the file's %d test trials: those trials "
                "are left out (no held-out data to score)",
                int(test.sum()),
            )
            kept, kept_labels, heldout_counts = (
                kept[~test],
                kept_labels[~test],
                heldout_counts[~test],
            )
    condition = np.asarray(trials.condition)[kept].astype(str)
    split, split_rule = _split(kept_labels, condition, config)
    _check_trials(split, excluded, config)

    starts = first_bins[kept]
    heldin_keys = _SpikeKeys.of(
        [recording.spike_times[u] for u in heldin],
        config.bin_width,
        int(starts.min()),
        int(starts.max()) + n_time + n_forward,
    )
    behavior = None
    if recording.behavior is not None and recording.behavior_times is not None:
        behavior_start = window_first_bins(
            event[kept], config.window[0] + config.behavior_lag, config.bin_width
        )
        behavior = behavior_in_bins(
            recording.behavior, recording.behavior_times, behavior_start, n_time, config.bin_width
        )
    result = SpikeTrials(
        heldin=heldin_keys.counts(starts, n_time),
        heldout=np.ascontiguousarray(heldout_counts[:, :n_time]),
        heldin_forward=heldin_keys.counts(starts + n_time, n_forward),
        heldout_forward=np.ascontiguousarray(heldout_counts[:, n_time:]),
        behavior=behavior,
        condition=condition,
        split=split.astype(str),
        time=config.window[0] + np.arange(n_time) * config.bin_width,
        bin_width=config.bin_width,
        heldin_units=heldin,
        heldout_units=heldout,
        trial_index=kept,
        split_from_file=split_rule != "drawn",
        heldout_from_file=heldout_from_file,
        behavior_lag=config.behavior_lag,
        excluded_trials=excluded,
        split_rule=split_rule,
    )
    logger.info(
        "cut %d trials (%s) x %d + %d bins of %g s, %d held-in and %d held-out neurons "
        "(split: %s; excluded: %s)",
        result.n_trials,
        {name: int(np.count_nonzero(split == name)) for name in SPLITS},
        n_time,
        n_forward,
        config.bin_width,
        heldin.size,
        heldout.size,
        split_rule,
        excluded,
    )
    return result
