"""The recording of a network's spikes (:func:`synthesize_recording`): each trial rests at
``x_sp``, approaches its own initial state ``x0_k = x*_c + sigma xi_k`` after the target and runs
freely from it ``lead`` seconds before movement onset (the trial structure:
:mod:`lifrnn_core.synthetic_recordings`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from functools import partial

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, gain_function, simulate
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.synthetic_recordings.session import (
    BIN_WIDTH,
    HELDOUT_FRACTION,
    HOLD_MS,
    LEAD,
    TRUTH_BIN_WIDTH,
    TRUTH_WINDOW,
    SyntheticRecording,
    _check_session,
    _draw_trials,
    _mixing,
    _run_session,
    _session_ticks,
)

logger = logging.getLogger(__name__)

TRIAL_CHUNK = 32
"""Trials simulated together when each has its own initial state (bounds the memory)."""


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
    lead_ticks, after_ticks, truth = _session_ticks(
        lead, after, onset_jitter, truth_window, truth_bin_width
    )
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

    recording = _run_session(
        rng,
        drawn,
        activity(),
        truth,
        mixing,
        baseline,
        C_np,
        seed=seed,
        heldout_fraction=heldout_fraction,
        window_latents=free_rates[:, window],
        rest_rates=np.maximum(mixing @ rest_rates + baseline, 0.0),
        lead=lead,
        latents="network",
        initial_states=initial_states.numpy(),
        initial_state_sigma=sigma,
    )
    logger.debug("synthesised %d trials of %d neurons", drawn.n_trials, neurons)
    return recording
