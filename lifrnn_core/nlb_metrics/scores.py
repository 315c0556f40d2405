"""The four scores together: :func:`nlb_scores` from arrays and :func:`score_spike_trials` from a
:class:`~lifrnn_core.spike_trials.SpikeTrials` and a model's rates for all of its trials, as the
benchmark splits them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lifrnn_core.nlb_metrics.bits import co_bps, fp_bps
from lifrnn_core.nlb_metrics.psths import NLB_PSTH_KERNEL_SD, psth_r2, trial_psths
from lifrnn_core.nlb_metrics.velocity import JoinedRates, velocity_r2
from lifrnn_core.spike_trials import SpikeTrials

__all__ = ["NLB_VELOCITY_LAG", "NLBScores", "nlb_scores", "score_spike_trials"]

NLB_VELOCITY_LAG = 0.1
"""Seconds by which hand velocity lags the rates decoding it (NLB's MC_Maze: 100 ms)."""


@dataclass(frozen=True)
class NLBScores:
    """NLB'21's four scores of one model on one set of evaluated trials.

    Attributes:
        co_bps: co-smoothing bits per spike (held-out neurons, window).
        fp_bps: forward-prediction bits per spike, or None without forward predictions.
        vel_r2: hand-velocity decoding R², or None without behaviour.
        psth_r2: PSTH R², or None without condition labels or PSTHs.
        notes: why each None score was left out, one sentence each.
    """

    co_bps: float
    fp_bps: float | None = None
    vel_r2: float | None = None
    psth_r2: float | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The scores under NLB's names (``co-bps``, ``fp-bps``, ``vel R2``, ``psth R2``), notes."""
        values = asdict(self)
        return {
            "co-bps": values["co_bps"],
            "fp-bps": values["fp_bps"],
            "vel R2": values["vel_r2"],
            "psth R2": values["psth_r2"],
            "notes": list(values["notes"]),
        }


def nlb_scores(
    eval_heldout_rates: np.ndarray,
    eval_heldout_spikes: np.ndarray,
    *,
    forward_rates: np.ndarray | None = None,
    forward_spikes: np.ndarray | None = None,
    train_rates: np.ndarray | JoinedRates | None = None,
    train_velocity: np.ndarray | None = None,
    eval_rates: np.ndarray | None = None,
    eval_velocity: np.ndarray | None = None,
    lag_bins: int = 20,
    eval_conditions: np.ndarray | None = None,
    psths: np.ndarray | None = None,
    psth_conditions: Sequence[str] | np.ndarray | None = None,
) -> NLBScores:
    """All four scores from arrays; a score whose inputs are missing is None, saying so.

    Args:
        eval_heldout_rates, eval_heldout_spikes: (eval trials, time, n_heldout), for :func:`co_bps`.
        forward_rates, forward_spikes: (eval trials, n_forward, neurons), for :func:`fp_bps`.
        train_rates, train_velocity, eval_rates, eval_velocity, lag_bins: for
            :func:`velocity_r2` (rates of all neurons, velocity (trials, time, 2) on their bins).
        eval_conditions, psths, psth_conditions: for :func:`psth_r2`, with ``eval_rates``.

    Returns:
        :class:`NLBScores`.
    """
    notes: list[str] = []
    forward = None
    if forward_rates is not None and forward_spikes is not None:
        forward = fp_bps(forward_rates, forward_spikes)
    else:
        notes.append("fp-bps left out: no forward-prediction rates or spikes")
    velocity = None
    if (
        train_rates is not None
        and train_velocity is not None
        and eval_rates is not None
        and eval_velocity is not None
    ):
        velocity = velocity_r2(train_rates, train_velocity, eval_rates, eval_velocity, lag_bins)
    else:
        notes.append("vel R2 left out: no hand velocity (or no rates of the training trials)")
    psth = None
    if eval_rates is not None and eval_conditions is not None and psths is not None:
        if psth_conditions is None:
            raise ValueError("nlb_scores: psths need their psth_conditions")
        psth = psth_r2(eval_rates, eval_conditions, psths, psth_conditions)
    else:
        notes.append("psth R2 left out: no condition labels or PSTHs")
    return NLBScores(
        co_bps=co_bps(eval_heldout_rates, eval_heldout_spikes),
        fp_bps=forward,
        vel_r2=velocity,
        psth_r2=psth,
        notes=tuple(notes),
    )


def score_spike_trials(
    trials: SpikeTrials,
    heldin_rates: np.ndarray,
    heldout_rates: np.ndarray,
    heldin_forward_rates: np.ndarray | None = None,
    heldout_forward_rates: np.ndarray | None = None,
    split: str = "test",
    velocity_lag: float = NLB_VELOCITY_LAG,
    psth_kernel_sd: float = NLB_PSTH_KERNEL_SD,
) -> NLBScores:
    """NLB'21's scores of a model's predictions on a :class:`SpikeTrials`, as the benchmark splits.

    The scores are computed on the ``split`` trials. The velocity decoder is fitted on the trials
    before it (``train`` for ``val``; ``train`` and ``val`` for ``test``), with all neurons' rates
    (held-in then held-out). The PSTHs are the data's, from every trial of each condition and all
    neurons (:func:`condition_psths`).

    Args:
        trials: the binned trials, their split and behaviour.
        heldin_rates: (trials, time, n_heldin) predicted rates of every trial, spikes per bin.
        heldout_rates: (trials, time, n_heldout) predicted rates of every trial.
        heldin_forward_rates: (trials, n_forward, n_heldin) predictions after the window, or None.
        heldout_forward_rates: (trials, n_forward, n_heldout) predictions after the window, or None.
        split: the evaluated trials, ``val`` or ``test``.
        velocity_lag: seconds by which velocity lags the rates (rounded to bins).
        psth_kernel_sd: seconds, sd of the PSTHs' smoothing kernel.

    Returns:
        :class:`NLBScores` (vel R2 None without behaviour, fp-bps None without forward rates or
        forward bins).
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    for name, array, expected in (
        ("heldin_rates", heldin_rates, trials.heldin.shape),
        ("heldout_rates", heldout_rates, trials.heldout.shape),
    ):
        if np.shape(array) != expected:
            raise ValueError(f"{name} has shape {np.shape(array)}, the trials need {expected}")
    scored = trials.mask(split)
    fitted = trials.mask("train")
    if split == "test":
        fitted = fitted | trials.mask("val")

    # Memory: at MC_Maze's size one (trials, time, neurons) float64 array is ~450 MB, so the
    # rates of all neurons are joined only for the trials each score reads.
    def all_neurons(which: np.ndarray) -> np.ndarray:
        return np.concatenate([heldin_rates[which], heldout_rates[which]], axis=-1)

    psths, psth_labels = trial_psths(trials, psth_kernel_sd)
    forward_rates = forward_spikes = None
    if (
        heldin_forward_rates is not None
        and heldout_forward_rates is not None
        and trials.heldin_forward.shape[1] > 0
    ):
        forward_rates = np.concatenate([heldin_forward_rates, heldout_forward_rates], axis=-1)[
            scored
        ]
        forward_spikes = np.concatenate([trials.heldin_forward, trials.heldout_forward], axis=-1)[
            scored
        ]
    behaviour = trials.behavior
    return nlb_scores(
        heldout_rates[scored],
        trials.heldout[scored],
        forward_rates=forward_rates,
        forward_spikes=forward_spikes,
        train_rates=JoinedRates((heldin_rates, heldout_rates), np.flatnonzero(fitted))
        if behaviour is not None
        else None,
        train_velocity=behaviour[fitted] if behaviour is not None else None,
        eval_rates=all_neurons(scored),
        eval_velocity=behaviour[scored] if behaviour is not None else None,
        lag_bins=round(velocity_lag / trials.bin_width),
        eval_conditions=trials.condition[scored],
        psths=psths,
        psth_conditions=psth_labels,
    )
