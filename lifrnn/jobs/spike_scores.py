"""The scores and metrics of the spike-train ``fit_data`` job (:mod:`lifrnn.jobs.fit_spikes`):
every model's NLB scores, the network's noise ceiling and its margin over the strongest baseline
(bootstrapped over the test trials), the headline, the honest warnings, jPCA of the data and of
the network, and the job's metrics dict that gathers them."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from lifrnn.jobs.numerics import euler_step_metrics
from lifrnn.jobs.spike_models import ModelPrediction, _Network
from lifrnn.networks import SavedNetwork
from lifrnn.specs.fit_data import FitDataSpec
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.jpca import JPCAResult, jpca
from lifrnn_core.nlb_metrics import (
    NLBScores,
    condition_psths,
    psth_r2,
    psth_reliability,
    score_spike_trials,
    trial_psths,
)
from lifrnn_core.recordings import condition_average
from lifrnn_core.spike_trials import SpikeTrials
from lifrnn_core.synthetic_recordings import generator_problems

logger = logging.getLogger(__name__)

BOOTSTRAP_SAMPLES = 1000
"""Resamples of the test trials behind the headline's interval."""
JPCA_SOFT_NORMALISATION = 5.0
"""Spikes/s added to each neuron's PSTH range before jPCA divides by it (as the Gaussian path)."""


# --- scores, noise ceiling, headline -------------------------------------------------------------


def _scores(trials: SpikeTrials, prediction: ModelPrediction) -> NLBScores:
    n_heldin = trials.heldin.shape[2]
    forward = prediction.forward
    return score_spike_trials(
        trials,
        prediction.heldin,
        prediction.heldout,
        None if forward is None else forward[..., :n_heldin],
        None if forward is None else forward[..., n_heldin:],
    )


def _noise_ceiling(
    spec: FitDataSpec, trials: SpikeTrials, network: ModelPrediction
) -> dict[str, Any]:
    """The network's in-sample (train) PSTH R² and co-bps beside the PSTHs' reliability."""
    train = trials.mask("train")
    counts = np.concatenate([trials.heldin[train], trials.heldout[train]], axis=-1)
    rates = np.concatenate([network.heldin[train], network.heldout[train]], axis=-1)
    conditions = trials.condition[train]
    reliability = psth_reliability(
        counts, conditions, trials.bin_width, np.random.default_rng([spec.seed, 28])
    )
    psths, labels = condition_psths(counts, conditions, trials.bin_width)
    in_sample = psth_r2(rates, conditions, psths, labels)
    from lifrnn_core.nlb_metrics import co_bps

    train_co_bps = co_bps(network.heldout[train], trials.heldout[train])
    return {
        "psth_reliability": reliability,
        "train_psth_r2": in_sample,
        "train_co_bps": train_co_bps,
        "above": bool(math.isfinite(reliability) and in_sample > reliability),
    }


def _trial_gains(rates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(trials,) Poisson log-likelihood of each trial's counts (nats, without log y!)."""
    rates = np.where(rates == 0, 1e-9, np.asarray(rates, dtype=np.float64))
    return (counts * np.log(rates) - rates).sum(axis=(1, 2))


def _margin(
    trials: SpikeTrials, network: ModelPrediction, other: ModelPrediction, seed: int
) -> dict[str, Any]:
    """The network's co-bps minus another model's on the test trials, with a bootstrap over
    the test trials: the difference is the two log-likelihoods' difference over the spikes
    (the null model cancels), so each resample costs two sums."""
    test = trials.mask("test")
    counts = trials.heldout[test].astype(np.float64)
    difference = _trial_gains(network.test_rows(test).heldout, counts) - _trial_gains(
        other.test_rows(test).heldout, counts
    )
    spikes = counts.sum(axis=(1, 2))
    rng = np.random.default_rng([seed, 29])
    draws = rng.integers(0, len(spikes), size=(BOOTSTRAP_SAMPLES, len(spikes)))
    resampled = (
        difference[draws].sum(axis=1) / np.maximum(spikes[draws].sum(axis=1), 1) / math.log(2)
    )
    low, high = np.quantile(resampled, [0.025, 0.975])
    return {
        "difference": float(difference.sum() / max(spikes.sum(), 1) / math.log(2)),
        "standard_error": float(resampled.std(ddof=1)),
        "interval": [float(low), float(high)],
    }


def headline(
    network_co_bps: float,
    n_heldout: int,
    n_test: int,
    strongest: str | None,
    strongest_co_bps: float | None,
    finding: bool,
) -> str:
    """The job's headline: where the network stands against the strongest baseline."""
    start = (
        f"the network's co-bps {network_co_bps:.4f} on {n_heldout} held-out neurons of "
        f"{n_test} test trials"
    )
    if strongest is None or strongest_co_bps is None:
        return f"{start} has no baseline beside it: not a finding"
    side = "above" if network_co_bps > strongest_co_bps else "below"
    verdict = "a finding" if finding else "not a finding"
    return (
        f"{start} is {side} the strongest baseline ({strongest}, {strongest_co_bps:.4f}): {verdict}"
    )


# --- warnings ------------------------------------------------------------------------------------


def _provenance_problems(saved: SavedNetwork) -> list[str]:
    """What the network file's own metadata says went wrong when it was made."""
    metadata = saved.metadata
    problems = []
    if str(metadata.get("converged", "")).lower() == "false":
        problems.append("the network file says its fit did not converge")
    if "poor" in metadata:
        try:
            poor = saved.meta("poor")
        except ValueError:
            poor = metadata["poor"]
        if isinstance(poor, list):
            problems += [str(problem) for problem in poor]
    target = None
    if "target_abscissa" in metadata:
        try:
            target = float(metadata["target_abscissa"])
        except ValueError:
            target = None
    elif metadata.get("method") in ("kao2021", "hennequin2014") and metadata.get("kind") == "soc":
        from lifrnn_core.soc_parameters import SOCParameters

        target = SOCParameters.for_method(metadata["method"], n=saved.W.shape[0]).target_abscissa  # type: ignore[arg-type]
    if target is not None:
        problems += generator_problems(
            spectral_abscissa=spectral_abscissa(saved.W), target_abscissa=target
        )
    return list(dict.fromkeys(problems))


def _warnings(
    network: _Network,
    n_units: int,
    fit: ModelPrediction,
    ceiling: dict[str, Any],
) -> tuple[list[str], dict[str, Any]]:
    """The honest warnings, each with the metric behind it."""
    warnings: list[str] = []
    too_many = network.n_excitatory > n_units
    if too_many:
        warnings.append(
            f"the network has {network.n_excitatory} excitatory units for {n_units} recorded "
            "neurons: more readout units than data, so the fit can follow trial noise"
        )
    if ceiling["above"]:
        warnings.append(
            f"in-sample fit above the noise ceiling: train PSTH R² {ceiling['train_psth_r2']:.3f} "
            f"> the PSTHs' split-half reliability {ceiling['psth_reliability']:.3f} "
            "(Spearman-Brown): the fit follows trial noise"
        )
    stop_reason = fit.info["stop_reason"]
    if stop_reason in ("max_iterations", "stalled"):
        warnings.append(
            f"the network's Poisson fit did not converge (stop reason {stop_reason} after "
            f"{fit.info['iterations']} iterations): raise max_iterations"
        )
    provenance = _provenance_problems(network.saved)
    warnings += [f"the network given: {problem}" for problem in provenance]
    metrics = {
        "excitatory_exceeds_neurons": too_many,
        "above_noise_ceiling": ceiling["above"],
        "network_provenance_problems": provenance,
    }
    return warnings, metrics


def _jpca(trials: SpikeTrials, network: ModelPrediction) -> dict[str, Any]:
    """jPCA of the data's PSTHs and of the network's condition-averaged predictions (window,
    all neurons, soft-normalised), each with R² of the full fit and every plane's frequency.

    The held-in and held-out neurons are averaged apart and joined as (conditions, time,
    neurons) averages: joining every trial first took ~0.9 GB at MC_Maze's size."""
    data, labels = trial_psths(trials)
    averages = [
        condition_average(rates, trials.condition) for rates in (network.heldin, network.heldout)
    ]
    model = np.concatenate([average[0] for average in averages], axis=-1)
    assert labels == averages[0][1]
    scale = (
        data.max(axis=(0, 1)) - data.min(axis=(0, 1)) + JPCA_SOFT_NORMALISATION * trials.bin_width
    )
    found: dict[str, Any] = {}
    for name, x in (("data", data), ("network", model)):
        try:
            result = jpca(x / scale, trials.bin_width)
        except ValueError as error:
            found[name] = {"note": f"jPCA left out: {error}"}
            continue
        found[name] = _jpca_summary(result)
    return found


def _jpca_summary(result: JPCAResult) -> dict[str, Any]:
    return {
        "ratio": result.ratio,
        "r2_skew": result.r2_skew,
        "r2_full": result.r2_full,
        "frequency_hz": result.frequency_hz,
        "frequencies_hz": list(result.frequencies_hz),
        "variance_captured": result.variance_captured,
    }


# --- the metrics -------------------------------------------------------------------------------


def _metrics(
    spec: FitDataSpec,
    trials: SpikeTrials,
    network: _Network,
    n_units: int,
    models: dict[str, ModelPrediction],
    scores: dict[str, NLBScores],
    notes: list[str],
) -> dict[str, Any]:
    """Every model's four scores (``scores``, made as the models were), the headline, the
    warnings and the fit's own numbers."""
    for name, score in scores.items():
        notes += [f"{name}: {note}" for note in score.notes]
    fit = models["network"]
    baseline_scores = {name: s.co_bps for name, s in scores.items() if name != "network"}
    strongest = (
        max(baseline_scores, key=lambda name: baseline_scores[name]) if baseline_scores else None
    )
    margin = None if strongest is None else _margin(trials, fit, models[strongest], spec.seed)
    network_co_bps = scores["network"].co_bps
    beats = strongest is not None and network_co_bps > baseline_scores[strongest]
    finding = bool(beats and margin is not None and margin["interval"][0] > 0)
    n_test = int(trials.mask("test").sum())
    n_heldout = int(trials.heldout.shape[2])
    text = headline(
        network_co_bps,
        n_heldout,
        n_test,
        strongest,
        None if strongest is None else baseline_scores[strongest],
        finding,
    )
    ceiling = _noise_ceiling(spec, trials, fit)
    warnings, warning_metrics = _warnings(network, n_units, fit, ceiling)
    if trials.behavior is None:
        notes.append("vel_r2 left out for every model: the file has no hand velocity")
    split = {name: int(trials.mask(name).sum()) for name in ("train", "val", "test")}
    return {
        "observation": "poisson",
        "nlb": {
            "bin_width": trials.bin_width,
            "split": {**split, "rule": trials.split_rule},
            "heldin_neurons": int(trials.heldin.shape[2]),
            "heldout_neurons": n_heldout,
            "scores": {
                name: {
                    "co_bps": score.co_bps,
                    "fp_bps": score.fp_bps,
                    "vel_r2": score.vel_r2,
                    "psth_r2": score.psth_r2,
                }
                for name, score in scores.items()
            },
            "strongest_baseline": strongest,
            "beats_strongest_baseline": bool(beats),
            "finding": finding,
            "margin": margin,
            "headline": text,
            "notes": list(dict.fromkeys(notes)),
        },
        "initial_state_variance_explained": fit.info["trial_variance_explained"],
        "initial_state_variance_explainable": fit.info["trial_variance_explainable"],
        "noise_ceiling": ceiling,
        "warnings": warnings,
        **warning_metrics,
        "converged": fit.info["converged"],
        "stop_reason": fit.info["stop_reason"],
        "iterations": fit.info["iterations"],
        "regularisation": {
            "readout_decay": fit.info["readout_decay"],
            "state_prior": fit.info["state_prior"],
            "prior_width": fit.info["prior_width"],
        },
        "models": {
            name: prediction.info
            for name, prediction in models.items()
            if name not in ("network", "random_network")
        },
        "jpca": _jpca(trials, fit),
        "conditions": len(np.unique(trials.condition)),
        "neurons": n_units,
        "trials_used": trials.n_trials,
        "excluded_trials": dict(trials.excluded_trials),
        "spectral_abscissa": spectral_abscissa(network.W),
        **euler_step_metrics(network.W, spec.tau, spec.spike_step, logger),
        "n": int(network.W.shape[0]),
        "n_excitatory": network.n_excitatory,
    }
