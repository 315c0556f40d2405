"""The session both synthetic recordings share: its constants, the trial schedule, labels and
split, the neurons' mixing of latents, their Poisson spikes, the bins of the true rates kept per
trial, and the :class:`SyntheticRecording` that holds the result."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.recordings import Recording, Trials
from lifrnn_core.threads import blas_threads

BIN_WIDTH = 1e-3
"""Grid of the spike simulation and of the hand behaviour, seconds (1 kHz)."""
LEAD = 0.25
"""Seconds before movement onset at which the free dynamics start from ``x*``."""
SPLITS = (("train", 0.7), ("val", 0.15), ("test", 0.15))
"""Share of the trials in each split."""
SHORTEST_PREPARATION = 0.55
"""Shortest time from the target to movement onset (delay 0.3 s + reaction 0.25 s), seconds."""
SPIKE_CLOCK_HZ = 30_000
"""Clock of the spike times (as an acquisition system at 30 kHz stamps them)."""
HOLD_MS = (100, 300)
"""Range of the hold after the window that every trial covers, milliseconds."""
HELDOUT_FRACTION = 45 / 182
"""Share of the neurons marked held out (NLB'21 MC_Maze: 45 of 182)."""
TRUTH_WINDOW = (-0.25, 0.65)
"""Span of each trial's true rates kept in the truth, seconds around its recorded movement onset:
NLB's window (-250..+450 ms) and its 200 ms of forward prediction."""
TRUTH_BIN_WIDTH = 0.005
"""Bins of each trial's true rates, seconds (NLB: 5 ms)."""


def condition_label(index: int) -> str:
    """The trial-table label of condition ``index`` (0-based): ``"{index + 1}/0"``, as the
    ``trial_type`` / ``trial_version`` columns of an NWB file read back."""
    return f"{index + 1}/0"


@dataclass(frozen=True)
class SyntheticRecording:
    """A synthetic recording and the truth that generated it.

    Attributes:
        recording: spike times of each neuron, the trial table (events ``target_on_time``,
            ``go_cue_time``, ``move_onset_time``; conditions ``"1/0"``, ``"2/0"``, ...), the
            hand velocity (samples, 2) in m/s at 1 kHz on the session's clock, and the neurons
            marked held out (``heldout``, NLB's co-smoothing targets).
        mixing: (neurons, latents) non-negative weights of the latents (the network's
            excitatory rates, or the white-noise latents) in each neuron's rate, spikes/s per
            unit of latent.
        baseline: (neurons,) offset of each neuron's rate, spikes/s (may be negative: it sets
            the rest rate together with the mixture of the rest rates).
        rates: (conditions, time, neurons) rates of each condition's own trajectory (from
            ``x*_c``; the white-noise mode: its condition pattern), spikes/s, aligned to the true
            movement onset (see ``time``). With trial noise, trials scatter around it.
        velocity: (conditions, time, 2) hand velocity of the same trajectories, m/s.
        time: (time,) seconds relative to the true movement onset, ``-lead`` first, 1 ms apart.
        condition_index: (trials,) 0-based condition of each trial (``trial_type`` - 1).
        true_move_onset: (trials,) when the model's movement began (free dynamics + ``lead``).
        onset_jitter: (trials,) recorded minus true movement onset, seconds (NaN where the
            recorded onset is missing).
        reaction_time: (trials,) true movement onset minus go cue, seconds.
        expected_spikes: (neurons,) expected spike count of each neuron over the session.
        rest_rates: (neurons,) each neuron's rate at the spontaneous state, spikes/s.
        lead: seconds before onset at which the free dynamics start.
        bin_width: grid of the spikes and behaviour, seconds.
        trial_rates: (trials, bins, neurons) float32 true rate of every neuron in each bin of
            ``trial_rate_bin_width`` seconds, spikes/s (the expected count is this times the
            bin width). The bins are those of the session's grid (bin ``k`` covers
            ``[k w, (k + 1) w)`` from time 0), from the first that starts at or after the
            trial's recorded ``move_onset_time`` + ``truth_window[0]``: as nlb-tools and
            :func:`lifrnn_core.spike_trials.window_first_bins` cut a trial, so with the same
            window and bin width they are the bins of its counts. NaN for the trials without
            a recorded onset.
        trial_rate_start: (trials,) start of each trial's first bin, seconds on the session's
            clock (NaN without a recorded onset).
        trial_rate_bin_width: seconds per bin of ``trial_rates``.
        initial_states: (trials, n) each trial's initial state ``x0_k`` (None: no network).
        initial_state_sigma: standard deviation of ``x0_k - x*_c`` per unit (0: none).
        latents: ``"network"`` or ``"white-noise"``: what the neurons read.
    """

    recording: Recording
    mixing: np.ndarray
    baseline: np.ndarray
    rates: np.ndarray
    velocity: np.ndarray
    time: np.ndarray
    condition_index: np.ndarray
    true_move_onset: np.ndarray
    onset_jitter: np.ndarray
    reaction_time: np.ndarray
    expected_spikes: np.ndarray
    rest_rates: np.ndarray
    lead: float = LEAD
    bin_width: float = BIN_WIDTH
    trial_rates: np.ndarray | None = None
    trial_rate_start: np.ndarray | None = None
    trial_rate_bin_width: float = TRUTH_BIN_WIDTH
    initial_states: np.ndarray | None = None
    initial_state_sigma: float = 0.0
    latents: str = "network"

    @property
    def n_conditions(self) -> int:
        """Number of conditions."""
        return int(self.rates.shape[0])


@dataclass(frozen=True)
class _Schedule:
    """Trial times as integer 1 ms ticks of the session clock."""

    start: np.ndarray
    target_on: np.ndarray
    go_cue: np.ndarray
    onset: np.ndarray
    stop: np.ndarray


def _schedule(
    rng: np.random.Generator, trials: int, lead_ticks: int, after_ticks: int
) -> _Schedule:
    """Back-to-back trials: target 0.1-0.3 s after the start, a delay of 0.3-0.9 s before the
    go cue, a reaction time of 0.25-0.4 s, and the stop 0.1-0.3 s after the window ends."""
    target_delay = rng.integers(100, 301, trials)
    delay = rng.integers(300, 901, trials)
    reaction = rng.integers(250, 401, trials)
    hold = rng.integers(HOLD_MS[0], HOLD_MS[1] + 1, trials)
    length = target_delay + delay + reaction + after_ticks + hold
    start = np.concatenate([[0], np.cumsum(length)[:-1]])
    target_on = start + target_delay
    go_cue = target_on + delay
    onset = go_cue + reaction
    return _Schedule(start, target_on, go_cue, onset, onset + after_ticks + hold)


def _mixing(
    rng: np.random.Generator,
    neurons: int,
    n_latents: int,
    sparsity: float,
    rest: np.ndarray,
    moving: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse non-negative mixing (neurons, n_latents) and baselines (neurons,) that give each
    neuron a rest rate of 10-40 % of a peak drawn from 10-80 spikes/s.

    ``rest``: (n_latents,) latents at rest; ``moving``: (..., n_latents) latents over the
    movements (their maximum sets the scale).
    """
    inputs = max(1, min(n_latents, round(sparsity * n_latents)))
    chosen = np.argsort(rng.random((neurons, n_latents)), axis=1)[:, :inputs]
    shape = np.zeros((neurons, n_latents))
    np.put_along_axis(shape, chosen, rng.uniform(0.2, 1.0, (neurons, inputs)), axis=1)
    shape /= shape.sum(axis=1, keepdims=True)
    mixed_rest = shape @ rest
    excursion = (moving.reshape(-1, n_latents) @ shape.T).max(axis=0) - mixed_rest
    floor = 0.05 * max(float(np.median(excursion)), 1e-6)
    peak = rng.uniform(10.0, 80.0, neurons)
    rest_rate = peak * rng.uniform(0.1, 0.4, neurons)
    scale = (peak - rest_rate) / np.maximum(excursion, floor)
    mixing = shape * scale[:, None]
    baseline = rest_rate - scale * mixed_rest
    return mixing, baseline


def _spikes(
    rng: np.random.Generator, rates: np.ndarray, first_tick: int
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson spikes of (bins, neurons) ``rates`` (spikes/s) on the 1 ms grid starting at
    ``first_tick``: (neuron index, time in s) of every spike, each placed uniformly in its bin
    (on the :data:`SPIKE_CLOCK_HZ` clock)."""
    counts = rng.poisson(rates * BIN_WIDTH)
    bins, neuron = np.nonzero(counts)
    repeats = counts[bins, neuron]
    bins, neuron = np.repeat(bins, repeats), np.repeat(neuron, repeats)
    per_bin = round(SPIKE_CLOCK_HZ * BIN_WIDTH)
    clock = (first_tick + bins) * per_bin + rng.integers(0, per_bin, bins.size)
    return neuron, clock / SPIKE_CLOCK_HZ


def _trial_labels(
    rng: np.random.Generator, trials: int, failure_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Success flags, the trials whose recorded onset is missing, and the split of each trial."""
    order = rng.permutation(trials)
    failed = order[: max(1, round(failure_rate * trials))]
    missing_onset = order[len(failed) : len(failed) + (1 if trials < 100 else 2)]
    success = np.ones(trials, dtype=bool)
    success[failed] = False
    split = np.empty(trials, dtype=object)
    bounds = np.cumsum([0] + [round(share * trials) for _, share in SPLITS])
    bounds[-1] = trials
    shuffled = rng.permutation(trials)
    for (name, _), begin, end in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
        split[shuffled[begin:end]] = name
    return success, missing_onset, split.astype(str)


@dataclass(frozen=True)
class _DrawnTrials:
    """The session's trials before any rate: conditions, times, labels, onset errors."""

    condition: np.ndarray
    times: _Schedule
    success: np.ndarray
    missing_onset: np.ndarray
    split: np.ndarray
    jitter_ticks: np.ndarray

    @property
    def n_trials(self) -> int:
        return len(self.condition)

    @property
    def recorded_onset_ticks(self) -> np.ndarray:
        """(trials,) recorded movement onset, 1 ms ticks (missing ones included)."""
        return self.times.onset + self.jitter_ticks


def _draw_trials(
    rng: np.random.Generator,
    conditions: int,
    trials_per_condition: int,
    lead_ticks: int,
    after_ticks: int,
    failure_rate: float,
    onset_jitter: float,
) -> _DrawnTrials:
    """Conditions in random order, the schedule, the labels and each recorded onset's error,
    rounded to the 1 ms grid of the hand signal it is detected on."""
    trials = conditions * trials_per_condition
    condition = rng.permutation(np.repeat(np.arange(conditions), trials_per_condition))
    times = _schedule(rng, trials, lead_ticks, after_ticks)
    success, missing_onset, split = _trial_labels(rng, trials, failure_rate)
    jitter = rng.uniform(-onset_jitter, onset_jitter, trials)
    jitter_ticks = np.rint(jitter / BIN_WIDTH).astype(np.int64)
    return _DrawnTrials(condition, times, success, missing_onset, split, jitter_ticks)


def _heldout(seed: int, neurons: int, fraction: float) -> np.ndarray:
    """(neurons,) bool: ``round(fraction * neurons)`` neurons (at least one of two or more,
    never all) drawn from their own stream of ``seed``."""
    count = min(max(round(fraction * neurons), 1), neurons - 1) if neurons > 1 else 0
    heldout = np.zeros(neurons, dtype=bool)
    heldout[np.random.default_rng([seed, 2]).permutation(neurons)[:count]] = True
    return heldout


@dataclass(frozen=True)
class _TruthBins:
    """Where each trial's true rates are kept: ``n_bins`` bins of ``bin_ticks`` ticks of the
    session's grid (``bin_width`` seconds, as given), from the first that starts at or after the
    recorded onset + ``first_tick``."""

    first_tick: int
    bin_ticks: int
    n_bins: int
    bin_width: float

    @classmethod
    def of(cls, window: tuple[float, float], bin_width: float) -> _TruthBins:
        bin_ticks = bin_width / BIN_WIDTH
        ticks = [w / BIN_WIDTH for w in window]
        on_grid = [math.isclose(v, round(v), abs_tol=1e-6) for v in (bin_ticks, *ticks)]
        if not all(on_grid) or round(bin_ticks) < 1 or not window[1] > window[0]:
            raise InvalidNetworkError(
                f"the truth's window {window} and bin width {bin_width} s must be whole "
                "milliseconds, the window's stop after its start"
            )
        n_bins = round((ticks[1] - ticks[0]) / bin_ticks)
        return cls(round(ticks[0]), round(bin_ticks), n_bins, bin_width)

    def first_ticks(self, recorded_onset_ticks: np.ndarray) -> np.ndarray:
        """(trials,) first tick of each trial's first bin: ceil to the grid, as NLB does."""
        return -(-(recorded_onset_ticks + self.first_tick) // self.bin_ticks) * self.bin_ticks

    def check_fits(self, lead_ticks: int, after_ticks: int, jitter_ticks: int) -> None:
        """Raise unless every trial's recording covers the truth's window."""
        earliest = round(SHORTEST_PREPARATION / BIN_WIDTH) - jitter_ticks
        latest = after_ticks + HOLD_MS[0] - jitter_ticks - self.bin_ticks
        if -self.first_tick > earliest or self.first_tick + self.bin_ticks * self.n_bins > latest:
            raise InvalidNetworkError(
                f"the truth's window {self.first_tick * BIN_WIDTH:g}.."
                f"{(self.first_tick + self.bin_ticks * self.n_bins) * BIN_WIDTH:g} s around the "
                f"recorded onset must lie within -{earliest * BIN_WIDTH:g}..+"
                f"{latest * BIN_WIDTH:g} s, which every trial covers"
            )


def _session_ticks(
    lead: float,
    after: float,
    onset_jitter: float,
    truth_window: tuple[float, float],
    truth_bin_width: float,
) -> tuple[int, int, _TruthBins]:
    """``lead`` and ``after`` in 1 ms ticks and the truth's bins, checked to lie within every
    trial's recording."""
    lead_ticks, after_ticks = round(lead / BIN_WIDTH), round(after / BIN_WIDTH)
    truth = _TruthBins.of(truth_window, truth_bin_width)
    truth.check_fits(lead_ticks, after_ticks, math.ceil(onset_jitter / BIN_WIDTH))
    return lead_ticks, after_ticks, truth


@dataclass(frozen=True)
class _Session:
    """What the trial loop makes: spikes, the hand, the expected counts, the true rates."""

    spike_times: list[np.ndarray]
    velocity: np.ndarray
    expected: np.ndarray
    trial_rates: np.ndarray
    trial_rate_start: np.ndarray


def _run_trials(
    rng: np.random.Generator,
    drawn: _DrawnTrials,
    activity: Iterator[np.ndarray],
    mixing: np.ndarray,
    baseline: np.ndarray,
    readout: np.ndarray,
    truth: _TruthBins,
) -> _Session:
    """Spikes and hand velocity of every trial from ``activity``: one (ticks, latents) array
    per trial, in order, covering its ``start``..``stop`` on the 1 ms grid."""
    times = drawn.times
    neurons = len(baseline)
    session_ticks = int(times.stop[-1])
    velocity = np.empty((session_ticks, 2))
    trial_rates = np.full((drawn.n_trials, truth.n_bins, neurons), np.nan, dtype=np.float32)
    missing = np.zeros(drawn.n_trials, dtype=bool)
    missing[drawn.missing_onset] = True
    first_ticks = truth.first_ticks(drawn.recorded_onset_ticks)
    span = truth.bin_ticks * truth.n_bins
    # Each neuron's spikes, trial by trial: trials follow one another, so the pieces of a neuron
    # joined in order are sorted (one sort of all spikes would need several copies of them).
    pieces: list[list[np.ndarray]] = [[] for _ in range(neurons)]
    expected = np.zeros(neurons)
    with blas_threads(1):  # many small products: one thread is fastest
        for trial, latents in enumerate(activity):
            start, stop = int(times.start[trial]), int(times.stop[trial])
            if latents.shape[0] != stop - start:
                raise AssertionError("a trial's activity does not cover the trial")
            rates = np.maximum(latents @ mixing.T + baseline, 0.0)
            expected += rates.sum(axis=0) * BIN_WIDTH
            velocity[start:stop] = latents @ readout.T
            if not missing[trial]:
                first = int(first_ticks[trial]) - start
                cut = rates[first : first + span]
                trial_rates[trial] = cut.reshape(truth.n_bins, truth.bin_ticks, neurons).mean(1)
            neuron, spikes = _spikes(rng, rates, start)
            order = np.lexsort((spikes, neuron))
            bounds = np.searchsorted(neuron[order], np.arange(1, neurons))
            for unit, piece in enumerate(np.split(spikes[order], bounds)):
                pieces[unit].append(piece)
    spike_times = [np.concatenate(unit) for unit in pieces]
    trial_rate_start = first_ticks * BIN_WIDTH
    trial_rate_start[missing] = np.nan
    return _Session(spike_times, velocity, expected, trial_rates, trial_rate_start)


def _recording(
    drawn: _DrawnTrials, session: _Session, neurons: int, heldout: np.ndarray
) -> Recording:
    """The :class:`Recording` of a session: spikes, the trial table, the hand velocity, the
    held-out neurons."""
    times = drawn.times
    recorded_onset = drawn.recorded_onset_ticks * BIN_WIDTH
    recorded_onset[drawn.missing_onset] = np.nan
    table = Trials(
        start_time=times.start * BIN_WIDTH,
        stop_time=times.stop * BIN_WIDTH,
        events={
            "target_on_time": times.target_on * BIN_WIDTH,
            "go_cue_time": times.go_cue * BIN_WIDTH,
            "move_onset_time": recorded_onset,
        },
        condition=np.array([condition_label(c) for c in drawn.condition]),
        success=drawn.success,
        split=drawn.split,
    )
    return Recording(
        spike_times=session.spike_times,
        trials=table,
        behavior=session.velocity,
        behavior_times=np.arange(len(session.velocity)) / (1 / BIN_WIDTH),
        unit_ids=np.arange(neurons),
        heldout=heldout,
    )


def _run_session(
    rng: np.random.Generator,
    drawn: _DrawnTrials,
    activity: Iterator[np.ndarray],
    truth: _TruthBins,
    mixing: np.ndarray,
    baseline: np.ndarray,
    readout: np.ndarray,
    *,
    seed: int,
    heldout_fraction: float,
    window_latents: np.ndarray,
    rest_rates: np.ndarray,
    lead: float,
    latents: str,
    initial_states: np.ndarray | None = None,
    initial_state_sigma: float = 0.0,
) -> SyntheticRecording:
    """The trials of ``activity`` run (:func:`_run_trials`) and the :class:`SyntheticRecording`
    of the session, its neurons held out as :func:`_heldout` draws them from ``seed``.

    ``window_latents``: (conditions, time, latents) each condition's latents from ``lead``
    seconds before the true movement onset to the end of the window after it (the truth's
    ``rates`` and ``velocity``, through ``mixing``, ``baseline`` and ``readout``);
    ``rest_rates``: (neurons,) each neuron's rate at rest, spikes/s; the rest as
    :class:`SyntheticRecording` has them.
    """
    session = _run_trials(rng, drawn, activity, mixing, baseline, readout, truth)
    neurons = len(baseline)
    lead_ticks = round(lead / BIN_WIDTH)
    return SyntheticRecording(
        recording=_recording(drawn, session, neurons, _heldout(seed, neurons, heldout_fraction)),
        mixing=mixing,
        baseline=baseline,
        rates=np.maximum(window_latents @ mixing.T + baseline, 0.0),
        velocity=window_latents @ readout.T,
        time=(np.arange(window_latents.shape[1]) - lead_ticks) * BIN_WIDTH,
        condition_index=drawn.condition,
        true_move_onset=drawn.times.onset * BIN_WIDTH,
        onset_jitter=_onset_jitter(drawn),
        reaction_time=(drawn.times.onset - drawn.times.go_cue) * BIN_WIDTH,
        expected_spikes=session.expected,
        rest_rates=rest_rates,
        lead=lead,
        bin_width=BIN_WIDTH,
        trial_rates=session.trial_rates,
        trial_rate_start=session.trial_rate_start,
        trial_rate_bin_width=truth.bin_width,
        initial_states=initial_states,
        initial_state_sigma=initial_state_sigma,
        latents=latents,
    )


def _onset_jitter(drawn: _DrawnTrials) -> np.ndarray:
    """(trials,) recorded minus true onset, seconds; NaN where the onset is missing."""
    jitter = drawn.jitter_ticks * BIN_WIDTH
    jitter[drawn.missing_onset] = np.nan
    return jitter


def _check_session(
    trials_per_condition: int,
    neurons: int,
    lead: float,
    after: float,
    onset_jitter: float,
    heldout_fraction: float,
) -> None:
    if trials_per_condition < 1 or neurons < 1:
        raise InvalidNetworkError("trials_per_condition and neurons must be at least 1")
    if not 0 < lead <= SHORTEST_PREPARATION or after <= 0:
        raise InvalidNetworkError(
            f"lead must lie in (0, {SHORTEST_PREPARATION}] s (the free run starts after the "
            f"target) and after must be positive; got lead={lead}, after={after}"
        )
    if not 0 <= onset_jitter < 0.05:
        raise InvalidNetworkError(f"onset_jitter must lie in [0, 0.05) s, got {onset_jitter}")
    if not 0 <= heldout_fraction < 1:
        raise InvalidNetworkError(f"heldout_fraction must lie in [0, 1), got {heldout_fraction}")
