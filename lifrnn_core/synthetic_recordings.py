"""Synthetic recordings with a known ground truth: spikes of neurons that read a fitted network.

A network fitted to reaches (:func:`fit_reaches`: initial states ``x*_c`` and a hand readout
``C`` for ``conditions`` directions evenly spread over 360 degrees) is run through a session of
delayed-reach trials (:func:`synthesize_recording`). Each trial:

- from ``start_time`` to ``target_on_time`` the network rests at ``x_sp``;
- from the target onwards (the delay, then the reaction time after the go cue) its state is driven
  from ``x_sp`` towards the condition's ``x*_c`` (exponentially, time constant
  ``preparation_tau``) and set to ``x*_c`` exactly at ``move_onset - lead``;
- from ``move_onset - lead`` (``lead`` = 0.25 s) it runs freely from ``x*_c``. This is what a fit
  to the recording assumes with its default window of -0.25..+0.45 s around movement onset: the
  window's first sample is the initial state. The readout was fitted to stay silent for those
  first ``lead`` seconds and then make the reach, so the hand starts moving at ``move_onset``.

The hand velocity is ``C r(x_E)`` on a 1 ms grid throughout (near zero at rest and during
preparation, where the fitted readout is silent). Each recorded neuron fires at a rate that is a
sparse non-negative mixture of the network's excitatory rates plus a baseline, scaled so that its
peak lies between about 10 and 80 spikes/s and clipped at zero; its spikes are an inhomogeneous
Poisson process simulated on the 1 ms grid, each spike placed uniformly inside its bin (on a
30 kHz clock, as an acquisition system stamps spikes). Nothing
here knows a file format: :mod:`lifrnn.nwb` writes the result as an NWB file.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, background_input, gain_function, simulate
from lifrnn_core.dynamics import spontaneous_state as draw_spontaneous_state
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.fitting import FitConfig, fit_initial_states
from lifrnn_core.recordings import Recording, Trials
from lifrnn_core.threads import blas_threads
from lifrnn_core.trajectories import reach_trajectories

__all__ = [
    "BIN_WIDTH",
    "LEAD",
    "SPIKE_CLOCK_HZ",
    "ReachFit",
    "SyntheticRecording",
    "condition_label",
    "fit_reaches",
    "synthesize_recording",
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


@dataclass(frozen=True)
class SyntheticRecording:
    """A synthetic recording and the truth that generated it.

    Attributes:
        recording: spike times of each neuron, the trial table (events ``target_on_time``,
            ``go_cue_time``, ``move_onset_time``; conditions ``"1/0"``, ``"2/0"``, ...) and the
            hand velocity (samples, 2) in m/s at 1 kHz on the session's clock.
        mixing: (neurons, n_excitatory) non-negative weights of the excitatory rates in each
            neuron's rate, spikes/s per unit rate.
        baseline: (neurons,) offset of each neuron's rate, spikes/s (may be negative: it sets
            the rest rate together with the mixture of the rest rates).
        rates: (conditions, time, neurons) true condition-averaged rates, spikes/s, aligned to
            the true movement onset (see ``time``).
        velocity: (conditions, time, 2) true hand velocity, m/s, on the same axis.
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
    n_excitatory: int,
    sparsity: float,
    rest: np.ndarray,
    moving: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse non-negative mixing (neurons, n_excitatory) and baselines (neurons,) that give each
    neuron a rest rate of 10-40 % of a peak drawn from 10-80 spikes/s.

    ``rest``: (n_excitatory,) rates at ``x_sp``; ``moving``: (..., n_excitatory) rates over the
    movements (their maximum sets the scale).
    """
    inputs = max(1, min(n_excitatory, round(sparsity * n_excitatory)))
    chosen = np.argsort(rng.random((neurons, n_excitatory)), axis=1)[:, :inputs]
    shape = np.zeros((neurons, n_excitatory))
    np.put_along_axis(shape, chosen, rng.uniform(0.2, 1.0, (neurons, inputs)), axis=1)
    shape /= shape.sum(axis=1, keepdims=True)
    mixed_rest = shape @ rest
    excursion = (moving.reshape(-1, n_excitatory) @ shape.T).max(axis=0) - mixed_rest
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
) -> SyntheticRecording:
    """Spikes of ``neurons`` recorded neurons and the hand velocity of a delayed-reach session.

    The model is the rate network ``tau dx/dt = -x + W r(x) + h``; see the module docstring for
    the trial structure. Its free dynamics start from ``x*_c`` at ``move_onset - lead`` (0.25 s):
    what a fit with the default window -0.25..+0.45 s around movement onset assumes. The recorded
    ``move_onset_time`` is the true onset plus a uniform jitter of at most ``onset_jitter``
    seconds (as a detection from the hand speed would be); about ``failure_rate`` of the trials
    are marked failed and one (two from 100 trials on) successful trial has no recorded onset
    (NaN); trials are split 70/15/15 % into ``train``/``val``/``test``. Everything is drawn from
    ``numpy.random.default_rng(seed)``: the same arguments give the same recording.

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
        preparation_tau: time constant of the approach to ``x*`` after the target, seconds.
        onset_jitter: largest error of the recorded movement onset, seconds.
        failure_rate: share of failed trials.

    Raises:
        InvalidNetworkError: on shapes that do not fit or a ``dt`` that does not divide 1 ms.
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
    if trials_per_condition < 1 or neurons < 1:
        raise InvalidNetworkError("trials_per_condition and neurons must be at least 1")
    if not 0 < lead <= SHORTEST_PREPARATION or after <= 0:
        raise InvalidNetworkError(
            f"lead must lie in (0, {SHORTEST_PREPARATION}] s (the free run starts after the "
            f"target) and after must be positive; got lead={lead}, after={after}"
        )
    rng = np.random.default_rng(seed)
    lead_ticks, after_ticks = round(lead / BIN_WIDTH), round(after / BIN_WIDTH)
    horizon = lead_ticks + after_ticks + HOLD_MS[1]  # the longest free run of a trial, in ticks
    gain_fn = gain_function(gain)

    states = simulate(
        W_t,
        x_star_t,
        tau=tau,
        dt=dt,
        steps=horizon * round(per_bin),
        h=h_t,
        gain=gain,
        record_every=round(per_bin),
    )
    free_rates = gain_fn(states[..., :n_excitatory]).numpy()  # (conditions, horizon + 1, n_E)
    rest_rates = gain_fn(x_sp_t[:n_excitatory]).numpy()
    C_np = C_t.numpy()
    window = slice(0, lead_ticks + after_ticks + 1)
    mixing, baseline = _mixing(
        rng, neurons, n_excitatory, sparsity, rest_rates, free_rates[:, window]
    )

    trials = conditions * trials_per_condition
    condition = rng.permutation(np.repeat(np.arange(conditions), trials_per_condition))
    times = _schedule(rng, trials, lead_ticks, after_ticks)
    success, missing_onset, split = _trial_labels(rng, trials, failure_rate)
    jitter = rng.uniform(-onset_jitter, onset_jitter, trials)

    # Rates while preparing depend only on the condition and the time since the target.
    longest = int((times.onset - lead_ticks - times.target_on).max())
    approach = 1.0 - np.exp(-np.arange(longest) * BIN_WIDTH / preparation_tau)
    preparing = x_sp_t + torch.from_numpy(approach)[None, :, None] * (x_star_t - x_sp_t)[:, None]
    preparing_rates = gain_fn(preparing[..., :n_excitatory]).numpy()  # (conditions, longest, n_E)

    session_ticks = int(times.stop[-1])
    velocity = np.empty((session_ticks, 2))
    neuron_parts, time_parts = [], []
    expected = np.zeros(neurons)
    with blas_threads(1):  # many small products: one thread is fastest
        for trial in range(trials):
            c = condition[trial]
            start, target_on, stop = times.start[trial], times.target_on[trial], times.stop[trial]
            free_start = times.onset[trial] - lead_ticks
            rates_E = np.concatenate(
                [
                    np.broadcast_to(rest_rates, (target_on - start, n_excitatory)),
                    preparing_rates[c, : free_start - target_on],
                    free_rates[c, : stop - free_start],
                ]
            )
            rates = np.maximum(rates_E @ mixing.T + baseline, 0.0)
            expected += rates.sum(axis=0) * BIN_WIDTH
            velocity[start:stop] = rates_E @ C_np.T
            neuron, spikes = _spikes(rng, rates, int(start))
            neuron_parts.append(neuron)
            time_parts.append(spikes)

    neuron_all, times_all = np.concatenate(neuron_parts), np.concatenate(time_parts)
    order = np.lexsort((times_all, neuron_all))
    per_neuron = np.bincount(neuron_all, minlength=neurons)
    spike_times = np.split(times_all[order], np.cumsum(per_neuron)[:-1])

    true_onset = times.onset * BIN_WIDTH
    recorded_onset = true_onset + jitter
    recorded_onset[missing_onset] = np.nan
    jitter[missing_onset] = np.nan
    table = Trials(
        start_time=times.start * BIN_WIDTH,
        stop_time=times.stop * BIN_WIDTH,
        events={
            "target_on_time": times.target_on * BIN_WIDTH,
            "go_cue_time": times.go_cue * BIN_WIDTH,
            "move_onset_time": recorded_onset,
        },
        condition=np.array([condition_label(c) for c in condition]),
        success=success,
        split=split,
    )
    recording = Recording(
        spike_times=spike_times,
        trials=table,
        behavior=velocity,
        behavior_times=np.arange(session_ticks) / (1 / BIN_WIDTH),
        unit_ids=np.arange(neurons),
    )
    window_rates = free_rates[:, window]
    logger.debug("synthesised %d trials of %d neurons", trials, neurons)
    return SyntheticRecording(
        recording=recording,
        mixing=mixing,
        baseline=baseline,
        rates=np.maximum(window_rates @ mixing.T + baseline, 0.0),
        velocity=window_rates @ C_np.T,
        time=(np.arange(window.stop) - lead_ticks) * BIN_WIDTH,
        condition_index=condition,
        true_move_onset=true_onset,
        onset_jitter=jitter,
        reaction_time=(times.onset - times.go_cue) * BIN_WIDTH,
        expected_spikes=expected,
        rest_rates=np.maximum(mixing @ rest_rates + baseline, 0.0),
        lead=lead,
        bin_width=BIN_WIDTH,
    )
