"""What every baseline shares: the hyper-parameter grids more than one of them searches, the
:class:`BaselinePrediction` each returns, and the helpers that split the trials, smooth them and
choose hyper-parameters on the validation trials."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lifrnn_core.recordings import gaussian_smooth
from lifrnn_core.spike_trials import SpikeTrials

logger = logging.getLogger(__name__)

KERNEL_WIDTHS: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08)
"""Standard deviations (seconds) of the Gaussian kernels tried for smoothing held-in spikes
(NLB'21 chose 40-60 ms on MC_Maze)."""

ALPHAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
"""L2 penalties tried for the Poisson GLMs (scikit-learn's ``PoissonRegressor`` scale)."""

RATE_FLOOR = 0.1
"""Spikes per second below which no baseline predicts (ridge and condition means can reach
zero, and a zero rate where a spike falls has log-likelihood minus infinity)."""


@dataclass(frozen=True)
class BaselinePrediction:
    """What one baseline predicts for every trial of a :class:`SpikeTrials`.

    Attributes:
        rates: (trials, time, n_heldout) predicted rates of the held-out neurons in the window,
            spikes per bin, every trial (train, val and test).
        forward_rates: (trials, n_forward, n_heldin + n_heldout) predicted rates in the bins
            after the window (held-in neurons first), spikes per bin; None when the baseline
            cannot forecast.
        hyperparameters: the values chosen on the validation trials (kernel widths in seconds).
        fit_seconds: wall-clock seconds of fitting and predicting, selection included.
        selection: validation log-likelihood (nats, held-out neurons of the val trials used,
            without the ``log y!`` term) of each candidate of the main search, by label
            (``"kernel_width=0.04, alpha=0.01"``, ``"x_dim=8"``).
    """

    rates: np.ndarray
    forward_rates: np.ndarray | None
    hyperparameters: dict[str, float]
    fit_seconds: float
    selection: dict[str, float] = field(default_factory=dict)


def _split_indices(trials: SpikeTrials) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and val trials; a ValueError names an empty split."""
    train = np.flatnonzero(trials.mask("train"))
    val = np.flatnonzero(trials.mask("val"))
    for name, index in (("train", train), ("val", val)):
        if index.size == 0:
            raise ValueError(f"the baselines need {name} trials; this SpikeTrials has none")
    return train, val


def _selection_subset(index: np.ndarray, max_trials: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_trials`` of ``index`` (sorted), drawn without replacement."""
    if index.size <= max_trials:
        return index
    return np.sort(rng.choice(index, size=max_trials, replace=False))


def _flat(x: np.ndarray) -> np.ndarray:
    """(trials, time, n) -> (trials * time, n)."""
    return x.reshape(-1, x.shape[-1])


def _smooth(counts: np.ndarray, width: float, bin_width: float) -> np.ndarray:
    """Gaussian-smoothed counts along time (axis 1), spikes per bin."""
    return gaussian_smooth(counts, width, bin_width, axis=1)


def _trial_log_likelihood(rates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(trials,) Poisson log-likelihood of each trial's counts, without ``log y!`` (nats)."""
    rates = np.asarray(rates, dtype=np.float64)
    return (np.asarray(counts, dtype=np.float64) * np.log(rates) - rates).sum(axis=(1, 2))


def _label(candidate: dict[str, float]) -> str:
    """``kernel_width=0.04, alpha=0.01``: a candidate's name in ``BaselinePrediction.selection``."""
    return ", ".join(f"{name}={value:g}" for name, value in candidate.items())


def _select(
    candidates: Sequence[dict[str, float]],
    score: Callable[[dict[str, float]], np.ndarray],
    *,
    parsimonious: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """The best candidate on the validation trials.

    Args:
        candidates: hyper-parameter sets, simplest first when ``parsimonious``.
        score: a candidate's (val trials,) log-likelihoods.
        parsimonious: choose the first candidate within one standard error (over val trials,
            of its difference from the best) of the best total, the "one-standard-error rule":
            the simplest model the validation data cannot tell from the best.

    Returns:
        (chosen candidate, {label: total validation log-likelihood} of every candidate).
    """
    scores = [score(candidate) for candidate in candidates]
    totals = np.array([float(trial_scores.sum()) for trial_scores in scores])
    best = int(np.argmax(totals))
    if parsimonious:
        for k, trial_scores in enumerate(scores):
            difference = scores[best] - trial_scores
            standard_error = float(np.std(difference, ddof=1) * np.sqrt(difference.size))
            if totals[k] >= totals[best] - standard_error:
                best = k
                break
    selection = {_label(c): float(t) for c, t in zip(candidates, totals, strict=True)}
    logger.debug("validation log-likelihoods %s; chose %s", selection, candidates[best])
    return dict(candidates[best]), selection
