"""Synthetic recordings with a known ground truth: spikes of neurons that read a fitted network.

A network fitted to reaches (:func:`fit_reaches`: initial states ``x*_c`` and a hand readout
``C`` for ``conditions`` directions evenly spread over 360 degrees) is run through a session of
delayed-reach trials (:func:`synthesize_recording`). Each trial ``k`` of condition ``c`` has its
own initial state ``x0_k = x*_c + sigma xi_k`` (``xi_k ~ N(0, I)``; ``sigma = 0`` by default, when
every trial of a condition starts from ``x*_c``):

- from ``start_time`` to ``target_on_time`` the network rests at ``x_sp``;
- from the target onwards (the delay, then the reaction time after the go cue) its state is driven
  from ``x_sp`` towards ``x0_k`` (exponentially, time constant ``preparation_tau``) and set to
  ``x0_k`` exactly at ``move_onset - lead``;
- from ``move_onset - lead`` (``lead`` = 0.25 s) it runs freely from ``x0_k``. This is what a fit
  to the recording assumes with its default window of -0.25..+0.45 s around movement onset: the
  window's first sample is the initial state. The readout was fitted to stay silent for those
  first ``lead`` seconds and then make the reach, so the hand starts moving at ``move_onset``.

So with ``sigma > 0`` trials of one condition differ only through their initial states: what the
preparatory-state hypothesis says, and what single-trial co-smoothing (NLB'21: Pei et al. 2021,
"Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks) can recover from held-in neurons.

The hand velocity is ``C r(x_E)`` on a 1 ms grid throughout (near zero at rest and during
preparation, where the fitted readout is silent). Each recorded neuron fires at a rate that is a
sparse non-negative mixture of the network's excitatory rates plus a baseline, scaled so that its
peak lies between about 10 and 80 spikes/s and clipped at zero; its spikes are an inhomogeneous
Poisson process simulated on the 1 ms grid, each spike placed uniformly inside its bin (on a
30 kHz clock, as an acquisition system stamps spikes). The recorded movement onset lies on the
1 ms grid of the hand signal, as MC_Maze's does. About a quarter of the neurons (NLB MC_Maze: 45
of 182) are marked held out, and every trial's true rates are kept in 5 ms bins around its
recorded movement onset, so the true rates can be scored as any model is.

:func:`synthesize_white_noise_recording` is the null: the same session layout, but the neurons
mix smoothed white-noise latents (one pattern per condition plus each trial's own), with no
network behind them. :func:`generator_problems` says when a generating network is too poor to
stand for a ground truth (not converged, or reaches it cannot make).

Nothing here knows a file format: :mod:`lifrnn.nwb` writes the result as an NWB file.

May import: numpy, scipy (through :mod:`lifrnn_core.recordings`), torch and lifrnn_core.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, background_input, gain_function, simulate
from lifrnn_core.dynamics import spontaneous_state as draw_spontaneous_state
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.fitting import FitConfig, fit_initial_states
from lifrnn_core.recordings import Recording, Trials, gaussian_smooth
from lifrnn_core.threads import blas_threads
from lifrnn_core.trajectories import reach_trajectories

__all__ = [
    "BIN_WIDTH",
    "HELDOUT_FRACTION",
    "LEAD",
    "MIN_REACH_R2",
    "SPIKE_CLOCK_HZ",
    "TRUTH_BIN_WIDTH",
    "TRUTH_WINDOW",
    "ReachFit",
    "SyntheticRecording",
    "condition_label",
    "fit_reaches",
    "generator_problems",
    "synthesize_recording",
    "synthesize_white_noise_recording",
]

logger = logging.getLogger(__name__)

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
MIN_REACH_R2 = 0.7
"""Worst reach R^2 a generating network may have. At 0.7 the residual's RMS is 55 % of the hand
velocity's spread, and the fitted reaches still point their way (cosine of the peak velocity with
the target direction above 0.8); the stalled fits seen (n = 30) reach -0.7..0.56, where the
"reaches" of the recording no longer go where their conditions say."""
TRIAL_CHUNK = 32
"""Trials simulated together when each has its own initial state (bounds the memory)."""


def condition_label(index: int) -> str:
    """The trial-table label of condition ``index`` (0-based): ``"{index + 1}/0"``, as the
    ``trial_type`` / ``trial_version`` columns of an NWB file read back."""
    return f"{index + 1}/0"


@dataclass(frozen=True)
class ReachFit:
    """A network fitted to make reaches after a silent lead (:func:`fit_reaches`).

    Attributes:
        x_sp: (n,) spontaneous state.
        h: (n,) background input that makes ``x_sp`` a fixed point.
        x_star: (conditions, n) initial states, one per reach direction.
        C: (2, n_excitatory) hand-velocity readout, m/s.
        directions_deg: reach direction of each condition, degrees.
        targets: (conditions, time, 2) the fitted hand velocity (m/s) on the fit's grid ``dt``,
            time 0 = start of the free dynamics: ``lead`` s of zeros, the reach, then zeros.
        dt: grid of the fit, seconds.
        r2: R^2 of the fitted readout per condition.
        converged: whether the fit met a stop rule before its iteration limit.
    """

    x_sp: Tensor
    h: Tensor
    x_star: Tensor
    C: Tensor
    directions_deg: list[float]
    targets: Tensor
    dt: float
    r2: list[float]
    converged: bool


def fit_reaches(
    W: Tensor,
    n_excitatory: int,
    *,
    conditions: int = 8,
    seed: int = 0,
    x_sp: Tensor | None = None,
    tau: float = 0.15,
    gain: GainName = "relu",
    lead: float = LEAD,
    reach_duration: float = 0.5,
    hold: float = 0.2,
    distance: float = 0.2,
    dt: float = 5e-3,
    max_iterations: int = 50,
    cost_tolerance: float = 5e-3,
) -> ReachFit:
    """Fit ``x*_c`` and ``C`` so that the network, started at ``x*_c``, stays still for ``lead``
    seconds and then reaches ``distance`` metres in ``reach_duration`` seconds (a bell-shaped
    time-base-generator speed profile), then holds for ``hold`` seconds.

    Directions are ``360 c / conditions`` degrees. The fit is :func:`fit_initial_states` on a
    coarse grid ``dt`` (5 ms: a few seconds for n = 100); the synthesis re-simulates on 1 ms.

    Args:
        W: (n, n) weights, columns presynaptic.
        n_excitatory: the readout sees the first ``n_excitatory`` units (more than
            ``conditions + 1``).
        conditions: number of reach directions.
        seed: seeds the spontaneous state (unless ``x_sp`` is given) and the fit's first guess.
        x_sp: (n,) spontaneous state (a saved fit's), else drawn as Kao et al. 2021 do.
        tau: time constant, seconds.
        gain: ``"relu"`` or ``"tanh_shifted"``.
        lead, reach_duration, hold: seconds of the three parts of the target.
        distance: reach length, metres.
        dt: grid of the fit, seconds (a divisor of each duration).
        max_iterations, cost_tolerance: stop rules of the fit (:class:`FitConfig`).

    Raises:
        InvalidNetworkError: when the network has too few excitatory units for ``conditions``.
    """
    W = torch.as_tensor(W, dtype=torch.float64)
    n = W.shape[0]
    if conditions + 1 >= n_excitatory:
        raise InvalidNetworkError(
            f"{conditions} conditions need more than {conditions + 1} excitatory units; the "
            f"network has {n_excitatory} (use a larger network or fewer conditions)"
        )
    generator = torch.Generator().manual_seed(seed)
    x_sp = (
        draw_spontaneous_state(n, generator)
        if x_sp is None
        else torch.as_tensor(x_sp, dtype=torch.float64)
    )
    h = background_input(W, x_sp, gain)
    directions = [360.0 * c / conditions for c in range(conditions)]
    reach = reach_trajectories(directions, duration=reach_duration, distance=distance, dt=dt)
    velocity = reach.velocity
    before = torch.zeros(conditions, round(lead / dt), 2, dtype=torch.float64)
    after = torch.zeros(conditions, round(hold / dt), 2, dtype=torch.float64)
    targets = torch.cat([before, velocity, after], dim=1)
    config = FitConfig(
        tau=tau,
        dt=dt,
        gain=gain,
        max_iterations=max_iterations,
        cost_tolerance=cost_tolerance,
    )
    result = fit_initial_states(
        W, h, x_sp, targets, n_excitatory=n_excitatory, config=config, generator=generator
    )
    logger.debug(
        "fitted %d reaches in %d iterations: R^2 %.3f..%.3f",
        conditions,
        result.iterations,
        min(result.r2),
        max(result.r2),
    )
    return ReachFit(
        x_sp=x_sp,
        h=h,
        x_star=result.x_star.detach(),
        C=result.C.detach(),
        directions_deg=directions,
        targets=targets,
        dt=dt,
        r2=list(result.r2),
        converged=result.converged,
    )


def generator_problems(
    *,
    spectral_abscissa: float | None = None,
    target_abscissa: float | None = None,
    reach_r2: Sequence[float] | None = None,
    min_reach_r2: float = MIN_REACH_R2,
) -> list[str]:
    """Why a generating network is too poor to stand for a ground truth, each reason in words
    naming its number; an empty list when there is none.

    Args:
        spectral_abscissa: largest real part of an eigenvalue of W.
        target_abscissa: what the network's SOC build aimed at (kao2021: 0.81); above it (by
            more than 1e-9) the build did not converge. None: only stability (< 1) is asked.
        reach_r2: R^2 of each fitted reach (:attr:`ReachFit.r2`).
        min_reach_r2: the worst reach R^2 accepted (:data:`MIN_REACH_R2`).
    """
    problems = []
    if spectral_abscissa is not None:
        if target_abscissa is not None and spectral_abscissa > target_abscissa + 1e-9:
            problems.append(
                f"the network did not converge: its spectral abscissa {spectral_abscissa:.3f} "
                f"is above its target {target_abscissa:.3g}"
            )
        elif spectral_abscissa >= 1.0:
            problems.append(
                f"the network is unstable: its spectral abscissa {spectral_abscissa:.3f} is not "
                "below 1"
            )
    if reach_r2 is not None and len(reach_r2) > 0:
        low = [r2 for r2 in reach_r2 if not r2 >= min_reach_r2]
        if low:
            problems.append(
                f"its reach fit stalled: reach R² {min(reach_r2):.2f}..{max(reach_r2):.2f}, "
                f"below {min_reach_r2:g} in {len(low)} of {len(reach_r2)} reaches"
            )
    return problems


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
    session's grid, from the first that starts at or after the recorded onset + ``first_tick``."""

    first_tick: int
    bin_ticks: int
    n_bins: int

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
        return cls(round(ticks[0]), round(bin_ticks), n_bins)

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


def _free_runs(
    W: Tensor,
    x0: Tensor,
    *,
    n_excitatory: int,
    tau: float,
    dt: float,
    ticks: int,
    h: Tensor,
    gain: GainName,
) -> np.ndarray:
    """(batch, ticks, n_E) excitatory rates of the free runs from ``x0`` (batch, n), sampled
    on the 1 ms grid, the first sample ``r(x0)``."""
    per_tick = round(BIN_WIDTH / dt)
    states = simulate(
        W,
        x0,
        tau=tau,
        dt=dt,
        steps=(ticks - 1) * per_tick,
        h=h,
        gain=gain,
        record_every=per_tick,
    )
    return gain_function(gain)(states[..., :n_excitatory]).numpy()


def synthesize_recording(
    W: Tensor | np.ndarray,
    n_excitatory: int,
    *,
    x_sp: Tensor | np.ndarray,
    h: Tensor | np.ndarray,
    x_star: Tensor | np.ndarray,
    C: Tensor | np.ndarray,
    tau: float = 0.15,
    dt: float = 1e-3,
    gain: GainName = "relu",
    trials_per_condition: int = 30,
    neurons: int = 60,
    seed: int = 0,
    lead: float = LEAD,
    after: float = 0.7,
    sparsity: float = 0.1,
    preparation_tau: float = 0.1,
    onset_jitter: float = 0.005,
    failure_rate: float = 0.03,
    initial_state_noise: float = 0.0,
    heldout_fraction: float = HELDOUT_FRACTION,
    truth_window: tuple[float, float] = TRUTH_WINDOW,
    truth_bin_width: float = TRUTH_BIN_WIDTH,
) -> SyntheticRecording:
    """Spikes of ``neurons`` recorded neurons and the hand velocity of a delayed-reach session.

    The model is the rate network ``tau dx/dt = -x + W r(x) + h``; see the module docstring for
    the trial structure. Its free dynamics start from each trial's ``x0_k`` at
    ``move_onset - lead`` (0.25 s): what a fit with the default window -0.25..+0.45 s around
    movement onset assumes. ``x0_k = x*_c + sigma xi_k``, ``xi_k ~ N(0, I)``, with ``sigma``
    = ``initial_state_noise`` times the RMS of ``x* - x_sp`` over units and conditions (0: every
    trial starts from ``x*_c``). The recorded ``move_onset_time`` is the true onset plus a
    uniform jitter of at most ``onset_jitter`` seconds, rounded to the 1 ms grid (as a
    detection from the 1 kHz hand speed would be); about ``failure_rate`` of the trials are
    marked failed and one (two from 100 trials on) successful trial has no recorded onset
    (NaN); trials are split 70/15/15 % into ``train``/``val``/``test``. Everything is drawn from
    ``numpy.random.default_rng(seed)`` and streams spawned from ``seed`` (the trial noise, the
    held-out neurons): the same arguments give the same recording, and the recording without
    trial noise does not change when only ``initial_state_noise`` is set to 0.

    Args:
        W: (n, n) weights, columns presynaptic.
        n_excitatory: the first ``n_excitatory`` units are excitatory (mixed into the neurons).
        x_sp: (n,) spontaneous state; h: (n,) background input.
        x_star: (conditions, n) initial state of each condition.
        C: (2, n_excitatory) hand-velocity readout.
        tau: time constant, seconds; dt: Euler step, seconds (divides 1 ms).
        gain: ``"relu"`` or ``"tanh_shifted"``.
        trials_per_condition: trials of each condition; neurons: recorded neurons.
        seed: seed of everything random.
        lead: seconds of free dynamics before movement onset.
        after: seconds after movement onset that every trial lasts at least (the truth's
            ``rates`` and ``velocity`` cover ``-lead..after``).
        sparsity: share of the excitatory units mixed into each neuron.
        preparation_tau: time constant of the approach to ``x0_k`` after the target, seconds.
        onset_jitter: largest error of the recorded movement onset, seconds.
        failure_rate: share of failed trials.
        initial_state_noise: each trial's initial-state noise, relative to ``x*``'s RMS
            distance from ``x_sp`` (dimensionless, >= 0).
        heldout_fraction: share of the neurons marked held out.
        truth_window, truth_bin_width: where each trial's true rates are kept (seconds around
            its recorded onset; whole milliseconds): :attr:`SyntheticRecording.trial_rates`.

    Raises:
        InvalidNetworkError: on shapes that do not fit, a ``dt`` that does not divide 1 ms, or
            sizes, noise or windows out of range.
    """
    W_t = torch.as_tensor(W, dtype=torch.float64)
    x_sp_t = torch.as_tensor(x_sp, dtype=torch.float64)
    h_t = torch.as_tensor(h, dtype=torch.float64)
    x_star_t = torch.as_tensor(x_star, dtype=torch.float64)
    C_t = torch.as_tensor(C, dtype=torch.float64)
    n = W_t.shape[0]
    conditions = x_star_t.shape[0]
    if x_star_t.dim() != 2 or x_star_t.shape[1] != n or x_sp_t.shape != (n,):
        raise InvalidNetworkError(
            f"x_star must be (conditions, {n}) and x_sp ({n},); got {tuple(x_star_t.shape)} "
            f"and {tuple(x_sp_t.shape)}"
        )
    if C_t.shape != (2, n_excitatory):
        raise InvalidNetworkError(f"C must be (2, {n_excitatory}), got {tuple(C_t.shape)}")
    per_bin = BIN_WIDTH / dt
    if not math.isclose(per_bin, round(per_bin), rel_tol=1e-9) or round(per_bin) < 1:
        raise InvalidNetworkError(f"dt ({dt} s) must divide the 1 ms grid of the spikes")
    _check_session(trials_per_condition, neurons, lead, after, onset_jitter, heldout_fraction)
    if not (math.isfinite(initial_state_noise) and initial_state_noise >= 0):
        raise InvalidNetworkError(f"initial_state_noise must be >= 0, got {initial_state_noise}")
    rng = np.random.default_rng(seed)
    lead_ticks, after_ticks = round(lead / BIN_WIDTH), round(after / BIN_WIDTH)
    truth = _TruthBins.of(truth_window, truth_bin_width)
    truth.check_fits(lead_ticks, after_ticks, math.ceil(onset_jitter / BIN_WIDTH))
    horizon = lead_ticks + after_ticks + HOLD_MS[1]  # the longest free run of a trial, in ticks
    gain_fn = gain_function(gain)
    free_runs = partial(
        _free_runs, W_t, n_excitatory=n_excitatory, tau=tau, dt=dt, h=h_t, gain=gain
    )
    free_rates = free_runs(x_star_t, ticks=horizon + 1)  # (conditions, horizon + 1, n_E)
    rest_rates = gain_fn(x_sp_t[:n_excitatory]).numpy()
    C_np = C_t.numpy()
    window = slice(0, lead_ticks + after_ticks + 1)
    mixing, baseline = _mixing(
        rng, neurons, n_excitatory, sparsity, rest_rates, free_rates[:, window]
    )
    drawn = _draw_trials(
        rng, conditions, trials_per_condition, lead_ticks, after_ticks, failure_rate, onset_jitter
    )
    sigma = initial_state_noise * float((x_star_t - x_sp_t).pow(2).mean().sqrt())
    noise = torch.from_numpy(np.random.default_rng([seed, 1]).standard_normal((drawn.n_trials, n)))
    initial_states = x_star_t[torch.from_numpy(drawn.condition)] + sigma * noise
    preparation_ticks = np.arange(int((drawn.times.onset - drawn.times.target_on).max()))
    approach = torch.from_numpy(1.0 - np.exp(-preparation_ticks * BIN_WIDTH / preparation_tau))

    def activity() -> Iterator[np.ndarray]:
        """Each trial's excitatory rates: rest, the approach to x0_k, the free run from it."""
        times = drawn.times
        for first in range(0, drawn.n_trials, TRIAL_CHUNK):
            chunk = slice(first, min(first + TRIAL_CHUNK, drawn.n_trials))
            free_start = times.onset[chunk] - lead_ticks
            if sigma > 0:
                longest = int((times.stop[chunk] - free_start).max())
                runs = free_runs(initial_states[chunk], ticks=longest)
            for j, trial in enumerate(range(chunk.start, chunk.stop)):
                c = drawn.condition[trial]
                start, target_on = times.start[trial], times.target_on[trial]
                preparing = approach[: free_start[j] - target_on, None]
                prepared = x_sp_t + preparing * (initial_states[trial] - x_sp_t)
                run = runs[j] if sigma > 0 else free_rates[c]
                yield np.concatenate(
                    [
                        np.broadcast_to(rest_rates, (target_on - start, n_excitatory)),
                        gain_fn(prepared[:, :n_excitatory]).numpy(),
                        run[: times.stop[trial] - free_start[j]],
                    ]
                )

    session = _run_trials(rng, drawn, activity(), mixing, baseline, C_np, truth)
    window_rates = free_rates[:, window]
    logger.debug("synthesised %d trials of %d neurons", drawn.n_trials, neurons)
    return SyntheticRecording(
        recording=_recording(drawn, session, neurons, _heldout(seed, neurons, heldout_fraction)),
        mixing=mixing,
        baseline=baseline,
        rates=np.maximum(window_rates @ mixing.T + baseline, 0.0),
        velocity=window_rates @ C_np.T,
        time=(np.arange(window.stop) - lead_ticks) * BIN_WIDTH,
        condition_index=drawn.condition,
        true_move_onset=drawn.times.onset * BIN_WIDTH,
        onset_jitter=_onset_jitter(drawn),
        reaction_time=(drawn.times.onset - drawn.times.go_cue) * BIN_WIDTH,
        expected_spikes=session.expected,
        rest_rates=np.maximum(mixing @ rest_rates + baseline, 0.0),
        lead=lead,
        bin_width=BIN_WIDTH,
        trial_rates=session.trial_rates,
        trial_rate_start=session.trial_rate_start,
        trial_rate_bin_width=truth_bin_width,
        initial_states=initial_states.numpy(),
        initial_state_sigma=sigma,
        latents="network",
    )


def _smoothed_noise(
    rng: np.random.Generator, shape: tuple[int, ...], smoothing: float
) -> np.ndarray:
    """White noise along axis -2 (1 ms samples) smoothed by a Gaussian of sd ``smoothing``
    seconds and scaled to unit variance: (..., ticks, latents)."""
    pad = math.ceil(4 * smoothing / BIN_WIDTH)
    padded = (*shape[:-2], shape[-2] + 2 * pad, shape[-1])
    smooth = gaussian_smooth(rng.standard_normal(padded), smoothing, BIN_WIDTH, axis=-2)
    impulse = np.zeros(2 * pad + 1)
    impulse[pad] = 1.0
    kernel_norm = float(np.linalg.norm(gaussian_smooth(impulse, smoothing, BIN_WIDTH, axis=0)))
    return smooth[..., pad : pad + shape[-2], :] / kernel_norm


def synthesize_white_noise_recording(
    *,
    conditions: int = 8,
    trials_per_condition: int = 30,
    neurons: int = 60,
    seed: int = 0,
    latent_dim: int = 8,
    smoothing: float = 0.05,
    trial_noise: float = 0.3,
    lead: float = LEAD,
    after: float = 0.7,
    sparsity: float = 0.5,
    onset_jitter: float = 0.005,
    failure_rate: float = 0.03,
    peak_speed: float = 0.8,
    heldout_fraction: float = HELDOUT_FRACTION,
    truth_window: tuple[float, float] = TRUTH_WINDOW,
    truth_bin_width: float = TRUTH_BIN_WIDTH,
) -> SyntheticRecording:
    """The null recording: the session of :func:`synthesize_recording` with no network behind
    it. The neurons mix ``latent_dim`` latents of smoothed white noise (Gaussian kernel of sd
    ``smoothing`` seconds, unit variance): one pattern per condition, locked to the true
    movement onset over the whole trial, plus each trial's own pattern scaled by
    ``trial_noise``. Mixing, baselines, spikes, trials, onsets, split and held-out neurons are
    drawn as :func:`synthesize_recording` draws them; the hand velocity is a random linear
    readout of the latents scaled so that the condition patterns peak at ``peak_speed`` m/s.

    Whatever a dynamical model finds here beyond what any smoother finds is noise: the latents
    have no dynamics, no rotation and no initial state that predicts what follows.

    Returns:
        a :class:`SyntheticRecording` with ``latents="white-noise"``, ``initial_states`` None,
        ``mixing`` (neurons, latent_dim) and ``rates`` / ``velocity`` of the condition patterns.

    Raises:
        InvalidNetworkError: on sizes, noise or windows out of range.
    """
    _check_session(trials_per_condition, neurons, lead, after, onset_jitter, heldout_fraction)
    if conditions < 1 or latent_dim < 1:
        raise InvalidNetworkError("conditions and latent_dim must be at least 1")
    if not (smoothing > 0 and math.isfinite(trial_noise) and trial_noise >= 0):
        raise InvalidNetworkError("smoothing must be > 0 s and trial_noise >= 0")
    rng = np.random.default_rng(seed)
    latent_rng = np.random.default_rng([seed, 3])
    lead_ticks, after_ticks = round(lead / BIN_WIDTH), round(after / BIN_WIDTH)
    truth = _TruthBins.of(truth_window, truth_bin_width)
    truth.check_fits(lead_ticks, after_ticks, math.ceil(onset_jitter / BIN_WIDTH))
    drawn = _draw_trials(
        rng, conditions, trials_per_condition, lead_ticks, after_ticks, failure_rate, onset_jitter
    )
    times = drawn.times
    before = int((times.onset - times.start).max())  # ticks of the longest part before onset
    length = before + int((times.stop - times.onset).max())
    patterns = _smoothed_noise(latent_rng, (conditions, length, latent_dim), smoothing)
    window = slice(before - lead_ticks, before + after_ticks + 1)
    readout = latent_rng.standard_normal((2, latent_dim))
    readout *= peak_speed / np.linalg.norm(patterns[:, window] @ readout.T, axis=-1).max()
    mixing, baseline = _mixing(
        rng, neurons, latent_dim, sparsity, np.zeros(latent_dim), patterns[:, window]
    )

    def activity() -> Iterator[np.ndarray]:
        """Each trial's latents: its condition's pattern plus its own."""
        for trial in range(drawn.n_trials):
            offset = before - int(times.onset[trial] - times.start[trial])
            ticks = int(times.stop[trial] - times.start[trial])
            own = _smoothed_noise(latent_rng, (ticks, latent_dim), smoothing)
            yield patterns[drawn.condition[trial], offset : offset + ticks] + trial_noise * own

    session = _run_trials(rng, drawn, activity(), mixing, baseline, readout, truth)
    window_latents = patterns[:, window]
    logger.debug("synthesised %d white-noise trials of %d neurons", drawn.n_trials, neurons)
    return SyntheticRecording(
        recording=_recording(drawn, session, neurons, _heldout(seed, neurons, heldout_fraction)),
        mixing=mixing,
        baseline=baseline,
        rates=np.maximum(window_latents @ mixing.T + baseline, 0.0),
        velocity=window_latents @ readout.T,
        time=(np.arange(window.stop - window.start) - lead_ticks) * BIN_WIDTH,
        condition_index=drawn.condition,
        true_move_onset=times.onset * BIN_WIDTH,
        onset_jitter=_onset_jitter(drawn),
        reaction_time=(times.onset - times.go_cue) * BIN_WIDTH,
        expected_spikes=session.expected,
        rest_rates=np.maximum(baseline, 0.0),
        lead=lead,
        bin_width=BIN_WIDTH,
        trial_rates=session.trial_rates,
        trial_rate_start=session.trial_rate_start,
        trial_rate_bin_width=truth_bin_width,
        initial_states=None,
        initial_state_sigma=0.0,
        latents="white-noise",
    )
