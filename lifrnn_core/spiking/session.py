"""A session of trials played by a spiking network, laid out as a recording (docs/science.md §9).

Each trial of condition ``c`` starts the pools at the rate network's ``x*_c`` and runs freely for
``lead + after`` seconds, movement onset ``lead`` seconds in (as ``lifrnn synth-nwb`` lays out
its free runs, and as ``fit_data``'s default window, -0.25..+0.45 s around onset, expects). With
a ``preparation`` period, a trial starts at a given state instead (the spontaneous one) and a
constant drive per condition (the input that holds ``x*_c``) acts for ``preparation`` seconds
before the free run: target on at the trial's start, go cue at the end of the preparation.
Trials follow each other on one clock with a gap before each; conditions are interleaved. The
recording holds the spikes of the first ``recorded_per_pool`` neurons of every excitatory pool,
the hand velocity read out from the pools' synaptic state (``C r(u_E)``), a 70/15/15 % split
into ``train``/``val``/``test`` and a quarter of the units marked held out (NLB's co-smoothing
targets). Beside it: the trial-averaged rates of every pool and the rate network's own, and how
close they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.dynamics import gain_function, simulate
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.recordings import Recording, Trials
from lifrnn_core.spiking.network import SpikingNetwork
from lifrnn_core.spiking.simulate import simulate_spiking

__all__ = ["CHUNK_NEURONS", "SpikingSession", "run_spiking_session", "smooth"]

CHUNK_NEURONS = 400_000
"""Neurons simulated at once: trials run in chunks of ``CHUNK_NEURONS // neurons``."""
TRIAL_GAP = 0.1
"""Seconds between one trial's end and the next one's start."""
HELDOUT_SHARE = 0.25
"""Share of the recorded units marked held out."""
SMOOTHING = 0.02
"""Width of the boxcar (seconds) that smooths PSTHs and rates before they are compared."""
BIN = 1e-3
"""Seconds per bin of the rates kept (1 ms)."""


@dataclass(frozen=True)
class SpikingSession:
    """What :func:`run_spiking_session` returns.

    Attributes:
        recording: the recorded neurons' spikes, the trial table and the hand velocity.
        condition_index: (trials,) 0-based condition of each trial.
        time: (bins,) seconds from movement onset of the centre of each 1 ms bin.
        psth: (conditions, bins, n) each pool's rate averaged over neurons and trials, Hz.
        model_rates: (conditions, bins, n) the rate network's rates in each bin, Hz.
        states: (conditions, bins + 1, n) the pools' synaptic state ``u`` averaged over trials,
            at the bins' edges.
        model_states: (conditions, bins + 1, n) the rate network's ``x`` at the same times.
        velocity: (conditions, bins + 1, outputs) ``C r(u_E)`` averaged over trials.
        model_velocity: (conditions, bins + 1, outputs) ``C r(x_E)``.
        pool_r2: (n,) R² of each pool's smoothed PSTH against its smoothed rate, over
            conditions and time.
        cv_isi: (neurons,) coefficient of variation of each neuron's inter-spike intervals
            within trials (NaN below 3 intervals).
        raster: (spikes, 2) (seconds from onset, neuron) of the first trial of condition 0.
        metrics: the numbers a job reports (docs/jobs.md).
    """

    recording: Recording
    condition_index: np.ndarray
    time: np.ndarray
    psth: np.ndarray
    model_rates: np.ndarray
    states: np.ndarray
    model_states: np.ndarray
    velocity: np.ndarray
    model_velocity: np.ndarray
    pool_r2: np.ndarray
    cv_isi: np.ndarray
    raster: np.ndarray
    metrics: dict[str, float]


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Boxcar of ``width`` bins along axis 1 (same length; edges averaged over what exists)."""
    kernel = np.ones(width)
    total = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 1, values)
    count = np.convolve(np.ones(values.shape[1]), kernel, mode="same")
    return total / count[None, :, None]


def _r2_per_unit(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(n,) R² of ``estimate`` against ``truth`` (conditions, time, n) for each unit."""
    residual = ((estimate - truth) ** 2).sum(axis=(0, 1))
    spread = ((truth - truth.mean(axis=(0, 1), keepdims=True)) ** 2).sum(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, 1.0 - residual / spread, np.nan)


def _r2(estimate: np.ndarray, truth: np.ndarray) -> float:
    """R² pooled over every unit, each centred on its own mean."""
    spread = ((truth - truth.mean(axis=(0, 1), keepdims=True)) ** 2).sum()
    return float(1.0 - ((estimate - truth) ** 2).sum() / spread)


def _cv_isi(spikes: np.ndarray, neurons: int) -> np.ndarray:
    """(neurons,) CV of the intervals between a neuron's spikes in the same trial.

    ``spikes``: (spikes, 3) rows (trial, step, neuron)."""
    order = np.lexsort((spikes[:, 1], spikes[:, 2], spikes[:, 0]))
    ordered = spikes[order]
    same = (ordered[1:, 0] == ordered[:-1, 0]) & (ordered[1:, 2] == ordered[:-1, 2])
    intervals = (ordered[1:, 1] - ordered[:-1, 1])[same].astype(np.float64)
    owner = ordered[1:, 2][same]
    count = np.bincount(owner, minlength=neurons)
    total = np.bincount(owner, weights=intervals, minlength=neurons)
    squares = np.bincount(owner, weights=intervals**2, minlength=neurons)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        variance = (squares - count * mean**2) / (count - 1)
        cv = np.sqrt(np.maximum(variance, 0.0)) / mean
    return np.where(count >= 3, cv, np.nan)


def _split(rng: np.random.Generator, trials: int) -> np.ndarray:
    labels = np.array(["train"] * trials, dtype=object)
    order = rng.permutation(trials)
    validation, test = round(0.15 * trials), round(0.15 * trials)
    labels[order[:validation]] = "val"
    labels[order[validation : validation + test]] = "test"
    return labels.astype(str)


def run_spiking_session(
    network: SpikingNetwork,
    x_star: Tensor,
    C: Tensor,
    n_excitatory: int,
    *,
    trials: int,
    lead: float,
    after: float,
    recorded_per_pool: int = 1,
    seed: int = 0,
    preparation: float = 0.0,
    start: Tensor | None = None,
    hold: Tensor | None = None,
    progress: Callable[[float], None] | None = None,
) -> SpikingSession:
    """Play ``trials`` trials of each condition (a row of ``x_star``) on ``network``.

    Args:
        network: the spiking network (its ``W``'s dtype and device are the simulation's).
        x_star: (conditions, n) initial states of the rate network's movements.
        C: (outputs, n_excitatory) the readout of the hand velocity.
        n_excitatory: excitatory units, the first ones; their pools are recorded.
        trials: trials of each condition.
        lead: seconds from a trial's start (at ``x*``) to movement onset.
        after: seconds a trial runs past movement onset.
        recorded_per_pool: neurons of each excitatory pool in the recording.
        seed: seed of the potentials, the noise, the split and the held-out units.
        preparation: seconds of preparation before the free run (0: the pools start at
            ``x_star``).
        start: (n,) or (conditions, n) the pools' state at a trial's start when there is a
            preparation (required then).
        hold: (conditions, n) the drive added during the preparation (required then), e.g.
            :func:`lifrnn_core.preparation.hold_input`, which makes ``x*_c`` a fixed point.
        progress: called with the fraction of trials done, after each chunk of them.

    Raises:
        InvalidNetworkError: shapes that do not fit, a step that does not divide 1 ms, or
            ``recorded_per_pool`` above the pool size.
    """
    W, n, K, dt = network.W, network.n, network.pool_size, network.dt
    per_bin = BIN / dt
    if not math.isclose(per_bin, round(per_bin), rel_tol=1e-9) or round(per_bin) < 1:
        raise InvalidNetworkError(f"dt ({dt} s) must divide the 1 ms bins of the rates")
    if x_star.ndim != 2 or x_star.shape[1] != n or C.shape[1:] != (n_excitatory,):
        raise InvalidNetworkError(
            f"x_star must be (conditions, {n}) and C (outputs, {n_excitatory}); got "
            f"{tuple(x_star.shape)} and {tuple(C.shape)}"
        )
    if not 1 <= recorded_per_pool <= K or trials < 1:
        raise InvalidNetworkError(f"recorded_per_pool must lie in [1, {K}] and trials be positive")
    per_bin = round(per_bin)
    prepared = round(preparation / BIN)  # (to the nearest millisecond, as the rest)
    bins = prepared + round((lead + after) / BIN)
    steps = bins * per_bin
    conditions = x_star.shape[0]
    x_star = x_star.to(dtype=W.dtype, device=W.device)
    initial, extra = x_star, None
    if prepared:
        if start is None or hold is None or hold.shape != x_star.shape:
            raise InvalidNetworkError(
                f"a preparation needs the start state and a (conditions, {n}) hold drive"
            )
        initial = start.to(dtype=W.dtype, device=W.device).expand(conditions, n)
        hold = hold.to(dtype=W.dtype, device=W.device)
        extra = torch.stack([hold, torch.zeros_like(hold)], dim=1)  # (conditions, 2, n)
    before_onset = preparation + lead
    C = C.to(dtype=W.dtype, device=W.device)
    gain = gain_function(network.gain)
    condition_index = np.tile(np.arange(conditions), trials)
    total = len(condition_index)
    trial_length = preparation + lead + after + TRIAL_GAP
    starts = TRIAL_GAP + np.arange(total) * trial_length  # (a gap before the first one too)

    generator = torch.Generator(device=W.device).manual_seed(seed)
    psth = torch.zeros(conditions, bins, n, dtype=W.dtype, device=W.device)
    states = torch.zeros(conditions, bins + 1, n, dtype=W.dtype, device=W.device)
    velocity = torch.zeros(conditions, bins + 1, C.shape[0], dtype=W.dtype, device=W.device)
    hand = np.zeros((round(starts[-1] / BIN) + bins + 1, C.shape[0]))
    recorded_units: list[np.ndarray] = []
    recorded_times: list[np.ndarray] = []
    all_spikes: list[np.ndarray] = []
    raster = np.zeros((0, 2))
    chunk = max(1, CHUNK_NEURONS // network.neurons)
    for first in range(0, total, chunk):
        index = np.arange(first, min(first + chunk, total))
        which = torch.from_numpy(condition_index[index]).to(W.device)
        run = simulate_spiking(
            network,
            initial[which],
            steps=steps,
            extra_drive=None if extra is None else extra[which],
            drive_every=max(1, prepared * per_bin),
            record_every=per_bin,
            generator=generator,
        )
        psth.index_add_(0, which, run.pool_rates())
        states.index_add_(0, which, run.u)
        readout = gain(run.u[..., :n_excitatory]) @ C.T
        velocity.index_add_(0, which, readout)
        for row, trial in enumerate(index):
            offset = round(starts[trial] / BIN)
            hand[offset : offset + bins + 1] = readout[row].detach().cpu().double().numpy()
        spikes = run.spikes.numpy()
        trial_of = index[spikes[:, 0]]
        all_spikes.append(np.stack([trial_of, spikes[:, 1], spikes[:, 2]], axis=1))
        pool, member = spikes[:, 2] // K, spikes[:, 2] % K
        kept = (pool < n_excitatory) & (member < recorded_per_pool)
        recorded_units.append(pool[kept] * recorded_per_pool + member[kept])
        recorded_times.append(starts[trial_of[kept]] + spikes[kept, 1] * dt)
        if first == 0:
            mine = spikes[:, 0] == 0
            raster = np.stack([spikes[mine, 1] * dt - before_onset, spikes[mine, 2]], axis=1)
        if progress is not None:
            progress(min(first + chunk, total) / total)
    psth /= trials
    states /= trials
    velocity /= trials

    run_rates = partial(
        simulate, W, tau=network.tau, dt=dt, gain=network.gain, record_every=per_bin
    )
    if prepared and hold is not None:
        held = run_rates(initial, steps=prepared * per_bin, h=network.h + hold)
        free = run_rates(held[:, -1], steps=(bins - prepared) * per_bin, h=network.h)
        model_states = torch.cat([held, free[:, 1:]], dim=1)
    else:
        model_states = run_rates(x_star, steps=bins * per_bin, h=network.h)
    model = network.target_rates(model_states)
    model_rates = 0.5 * (model[:, 1:] + model[:, :-1])  # the bins' means, to second order
    model_velocity = gain(model_states[..., :n_excitatory]) @ C.T

    units = n_excitatory * recorded_per_pool
    unit_of = np.concatenate(recorded_units)
    times = np.concatenate(recorded_times)
    order = np.lexsort((times, unit_of))
    bounds = np.searchsorted(unit_of[order], np.arange(1, units))
    spike_times = np.split(times[order], bounds)
    rng = np.random.default_rng([seed, 2])
    heldout = np.zeros(units, dtype=bool)
    heldout[rng.choice(units, size=round(HELDOUT_SHARE * units), replace=False)] = True
    trial_table = Trials(
        start_time=starts,
        stop_time=starts + before_onset + after,
        events={
            "target_on_time": starts.copy(),
            "go_cue_time": starts + preparation,
            "move_onset_time": starts + before_onset,
        },
        condition=np.array([f"{c + 1}/0" for c in condition_index]),
        success=np.ones(total, dtype=bool),
        split=_split(rng, total),
    )
    recording = Recording(
        spike_times=spike_times,
        trials=trial_table,
        behavior=hand,
        behavior_times=np.arange(len(hand)) * BIN,
        unit_ids=np.arange(units),
        heldout=heldout,
    )

    as_numpy = {
        name: value.detach().cpu().double().numpy()
        for name, value in {
            "psth": psth,
            "model_rates": model_rates,
            "states": states,
            "model_states": model_states,
            "velocity": velocity,
            "model_velocity": model_velocity,
        }.items()
    }
    width = max(1, round(SMOOTHING / BIN))
    smooth_psth = smooth(as_numpy["psth"], width)
    smooth_model = smooth(as_numpy["model_rates"], width)
    pool_r2 = _r2_per_unit(smooth_psth, smooth_model)
    everything = np.concatenate(all_spikes)
    cv = _cv_isi(everything, network.neurons)
    seconds = steps * dt
    rates = np.bincount(everything[:, 2], minlength=network.neurons) / (total * seconds)
    excitatory = n_excitatory * K
    metrics = {
        "neurons": float(network.neurons),
        "spikes": float(len(everything)),
        "mean_rate_hz": float(rates.mean()),
        "mean_rate_excitatory_hz": float(rates[:excitatory].mean()),
        "mean_rate_inhibitory_hz": float(rates[excitatory:].mean())
        if excitatory < len(rates)
        else math.nan,
        "model_mean_rate_hz": float(as_numpy["model_rates"].mean()),
        "silent_fraction": float((rates == 0).mean()),
        "pool_r2_median": float(np.nanmedian(pool_r2)),
        "pool_r2_mean": float(np.nanmean(pool_r2)),
        "population_r2": _r2(smooth_psth, smooth_model),
        "state_r2": _r2(as_numpy["states"], as_numpy["model_states"]),
        "velocity_r2": _r2(as_numpy["velocity"], as_numpy["model_velocity"]),
        "cv_isi_mean": float(np.nanmean(cv)) if np.isfinite(cv).any() else math.nan,
    }
    return SpikingSession(
        recording=recording,
        condition_index=condition_index,
        time=(np.arange(bins) + 0.5) * BIN - before_onset,
        psth=as_numpy["psth"],
        model_rates=as_numpy["model_rates"],
        states=as_numpy["states"],
        model_states=as_numpy["model_states"],
        velocity=as_numpy["velocity"],
        model_velocity=as_numpy["model_velocity"],
        pool_r2=pool_r2,
        cv_isi=cv,
        raster=raster,
        metrics=metrics,
    )
