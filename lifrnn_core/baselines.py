"""The baselines a fitted network is judged beside, on the Neural Latents Benchmark's split.

NLB'21 (Pei et al. 2021, "Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks) scores
every model on the same held-out tensors; these are the simple models every submission is
compared with, each a pure function of a :class:`~lifrnn_core.spike_trials.SpikeTrials`:

- :func:`smoothing_baseline`: held-in spikes smoothed with a Gaussian kernel, log-transformed,
  then a Poisson GLM to the held-out neurons (NLB's spike-smoothing baseline);
- :func:`gpfa_baseline`: GPFA latents (Yu et al. 2009, ``elephant``'s implementation) of the
  held-in neurons, then a Poisson GLM to the held-out neurons; the latents' Gaussian process
  also extrapolates into the forward-prediction bins;
- :func:`ridge_baseline`: ridge regression from smoothed held-in rates to held-out counts;
- :func:`condition_mean_baseline`: each trial predicted by its condition's mean over training
  trials (a PSTH), which never looks at the trial itself;
- :func:`run_baselines`: all of them, same split, same seed.

Every baseline fits on ``train`` trials only (held-out neurons of ``val`` and ``test`` trials, and
their forward bins, are never read), chooses its hyper-parameters on ``val`` trials by the
held-out neurons' Poisson log-likelihood, and returns rates in spikes per bin for every trial.
:func:`fit_poisson_glm` is the GLM they share: scikit-learn's ``PoissonRegressor`` objective,
fitted for all output neurons at once.

Linear algebra runs on one BLAS thread: at MC_Maze's size on two shared cores, a GLM fit took
3.0 s on one thread and 7.2 s on two, a ridge path 0.14 s against 1.6 s (the products are thin,
and idle threads spin against the other work on the machine).

Shapes: ``(trials, time, neurons)``; times in seconds; counts and rates in spikes per bin.

May import: numpy, scipy, elephant (GPFA, imported when used), :mod:`lifrnn_core.recordings`,
:mod:`lifrnn_core.spike_trials`, :mod:`lifrnn_core.threads`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from lifrnn_core.recordings import gaussian_smooth
from lifrnn_core.spike_trials import SpikeTrials
from lifrnn_core.threads import blas_threads

__all__ = [
    "ALPHAS",
    "CONDITION_KERNEL_WIDTHS",
    "GPFA_LATENT_DIMS",
    "KERNEL_WIDTHS",
    "LOG_OFFSET",
    "RATE_FLOOR",
    "RIDGE_ALPHAS",
    "BaselinePrediction",
    "GPFAFit",
    "PoissonGLM",
    "condition_mean_baseline",
    "fit_gpfa",
    "fit_poisson_glm",
    "gpfa_baseline",
    "poisson_log_likelihood",
    "ridge_baseline",
    "ridge_path",
    "run_baselines",
    "smoothing_baseline",
]

logger = logging.getLogger(__name__)

KERNEL_WIDTHS: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08)
"""Standard deviations (seconds) of the Gaussian kernels tried for smoothing held-in spikes
(NLB'21 chose 40-60 ms on MC_Maze)."""

CONDITION_KERNEL_WIDTHS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04)
"""Kernel widths (seconds) tried for smoothing condition-mean PSTHs: averages over many trials
need less smoothing than single trials."""

ALPHAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
"""L2 penalties tried for the Poisson GLMs (scikit-learn's ``PoissonRegressor`` scale)."""

RIDGE_ALPHAS: tuple[float, ...] = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5)
"""Penalties tried for ridge co-smoothing (scikit-learn's ``Ridge`` scale: against summed
squares, so the useful range grows with the data; each extra penalty costs almost nothing)."""

GPFA_LATENT_DIMS: tuple[int, ...] = (4, 8, 16, 32)
"""GPFA latent dimensions tried (NLB'21's GPFA on MC_Maze used 52)."""

LOG_OFFSET = 1e-4
"""Added to smoothed spike counts (spikes/bin) before their logarithm, as NLB's smoothing
baseline does, so silent stretches stay finite."""

RATE_FLOOR = 0.1
"""Spikes per second below which no baseline predicts (ridge and condition means can reach
zero, and a zero rate where a spike falls has log-likelihood minus infinity)."""

_MAX_LOG_RATE = 30.0
"""Log-rates are clipped here so a line search cannot overflow ``exp``."""


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


# --- the Poisson GLM ------------------------------------------------------------------------


@dataclass(frozen=True)
class PoissonGLM:
    """Log-link Poisson regression from features to the counts of several neurons.

    Attributes:
        weights: (features, outputs).
        intercept: (outputs,).
    """

    weights: np.ndarray
    intercept: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Rates ``exp(features @ weights + intercept)``.

        Args:
            features: (..., features).

        Returns:
            (..., outputs) rates in the counts' units (spikes per bin).
        """
        log_rate = np.asarray(features, dtype=np.float64) @ self.weights + self.intercept
        return np.exp(np.clip(log_rate, -_MAX_LOG_RATE, _MAX_LOG_RATE))


def fit_poisson_glm(
    features: np.ndarray,
    counts: np.ndarray,
    alpha: float,
    *,
    init: PoissonGLM | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
) -> PoissonGLM:
    """Fit a Poisson GLM with log link for every output at once.

    Minimises, for each output ``j``, scikit-learn's ``PoissonRegressor`` objective
    ``mean_i(exp(eta_ij) - y_ij eta_ij) + alpha/2 ||w_j||^2`` with ``eta = X w_j + b_j`` (the
    intercept is not penalised), so ``alpha`` means what it means there. The outputs are
    independent; fitting them as one L-BFGS problem replaces a Python loop over neurons by
    matrix products. Features are centred and whitened inside (with the penalty transformed to
    match, so the solution is unchanged), which keeps L-BFGS well conditioned.

    Args:
        features: (samples, features).
        counts: (samples, outputs) non-negative counts (spikes per bin).
        alpha: L2 penalty on the weights, >= 0.
        init: a previous fit to start from (e.g. the same data at a neighbouring ``alpha``).
        max_iter: most L-BFGS iterations.
        tol: L-BFGS tolerance on the projected gradient (and on the relative decrease of the
            objective, times 1e-3).

    Returns:
        The fitted :class:`PoissonGLM`.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(counts, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"features (samples, features) and counts (samples, outputs) must share samples, "
            f"got {x.shape} and {y.shape}"
        )
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    with blas_threads(1):
        return _fit_poisson_glm(x, y, alpha, init, max_iter, tol)


def _fit_poisson_glm(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    init: PoissonGLM | None,
    max_iter: int,
    tol: float,
) -> PoissonGLM:
    """:func:`fit_poisson_glm` on validated float64 arrays."""
    n_samples, n_features = x.shape
    n_outputs = y.shape[1]
    # Whitened features z = (x - centre) @ basis / sqrt(variance): the intercept and every
    # weight direction then see the same curvature, so L-BFGS needs far fewer iterations than on
    # raw, correlated features. With w = basis @ (w_z / sqrt(variance)), the penalty
    # alpha/2 ||w||^2 is alpha/2 sum_k w_z,k^2 / variance_k: still diagonal, solution unchanged.
    centre = x.mean(axis=0)
    variance, basis = np.linalg.eigh(np.cov(x, rowvar=False, bias=True).reshape(n_features, -1))
    variance = np.maximum(variance, max(float(variance.max()), 1.0) * 1e-12)
    projection = basis / np.sqrt(variance)
    z = (x - centre) @ projection
    penalty = alpha / variance
    if init is None:
        w_z0 = np.zeros((n_features, n_outputs))
        b_z0 = np.log(np.maximum(y.mean(axis=0), 1e-10))
    else:
        w_z0 = (basis.T @ init.weights) * np.sqrt(variance)[:, None]
        b_z0 = init.intercept + centre @ init.weights

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w_z = theta[: n_features * n_outputs].reshape(n_features, n_outputs)
        b_z = theta[n_features * n_outputs :]
        log_rate = np.clip(z @ w_z + b_z, -_MAX_LOG_RATE, _MAX_LOG_RATE)
        rate = np.exp(log_rate)
        value = (rate.sum() - (y * log_rate).sum()) / n_samples
        value += 0.5 * float((penalty[:, None] * w_z**2).sum())
        residual = (rate - y) / n_samples
        grad_w = z.T @ residual + penalty[:, None] * w_z
        grad_b = residual.sum(axis=0)
        return value, np.concatenate([grad_w.ravel(), grad_b])

    result = minimize(
        objective,
        np.concatenate([w_z0.ravel(), b_z0]),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": tol, "ftol": tol * 1e-3, "maxcor": 20},
    )
    if not result.success:
        logger.info("Poisson GLM stopped before converging: %s", result.message)
    w_z = result.x[: n_features * n_outputs].reshape(n_features, n_outputs)
    b_z = result.x[n_features * n_outputs :]
    weights = projection @ w_z
    return PoissonGLM(weights=weights, intercept=b_z - centre @ weights)


def poisson_log_likelihood(rates: np.ndarray, counts: np.ndarray) -> float:
    """Poisson log-likelihood of counts under rates, without the ``log y!`` term (nats).

    Args:
        rates: predicted rates, spikes per bin, > 0; any shape.
        counts: observed counts of the same shape.

    Returns:
        ``sum(y log(rate) - rate)``: differences between models of the same counts are exact
        log-likelihood differences.
    """
    rates = np.asarray(rates, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    return float((counts * np.log(rates) - rates).sum())


# --- shared helpers ---------------------------------------------------------------------------


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


def _glm_path(
    features: np.ndarray,
    counts: np.ndarray,
    alphas: Sequence[float],
    val_features: np.ndarray,
    val_counts: np.ndarray,
) -> tuple[float, PoissonGLM, np.ndarray]:
    """Fit a GLM per alpha (largest first, each warm-starting the next); keep the best on val.

    Args:
        features, counts: (samples, features) and (samples, outputs) training data.
        alphas: penalties to try.
        val_features, val_counts: (trials, time, features) and (trials, time, outputs).

    Returns:
        (alpha, glm, (val trials,) log-likelihoods) of the best alpha.
    """
    best: tuple[float, PoissonGLM, np.ndarray] | None = None
    glm: PoissonGLM | None = None
    for alpha in sorted(alphas, reverse=True):
        glm = fit_poisson_glm(features, counts, alpha, init=glm)
        score = _trial_log_likelihood(glm.predict(val_features), val_counts)
        if best is None or score.sum() > best[2].sum():
            best = (alpha, glm, score)
    if best is None:
        raise ValueError("alphas must not be empty")
    return best


# --- 1. spike smoothing -----------------------------------------------------------------------


def smoothing_baseline(
    trials: SpikeTrials,
    *,
    kernel_widths: Sequence[float] = KERNEL_WIDTHS,
    alphas: Sequence[float] = ALPHAS,
    max_selection_trials: int = 400,
    seed: int = 0,
) -> BaselinePrediction:
    """NLB'21's spike-smoothing baseline: smoothed held-in spikes -> Poisson GLM -> held-out.

    Each trial's held-in counts are smoothed with a Gaussian kernel, ``log(smoothed +
    LOG_OFFSET)`` is taken (as NLB's baseline does: the GLM's log link then makes the held-out
    rates products of powers of held-in rates), and a Poisson GLM maps it to the held-out counts.
    The kernel width is chosen on val at the middle ``alpha``, then ``alpha`` at that width
    (a coordinate search: len(widths) + len(alphas) - 1 fits instead of their product), on at
    most ``max_selection_trials`` train and val trials each; the final GLM is fitted on every
    train trial.

    Args:
        trials: the binned trials and their split.
        kernel_widths: kernel standard deviations to try, seconds.
        alphas: GLM penalties to try.
        max_selection_trials: most train (and val) trials used to choose hyper-parameters.
        seed: draws those trials when there are more.

    Returns:
        Held-out rates (trials, time, n_heldout) spikes per bin; no forward prediction.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    rng = np.random.default_rng(seed)
    sel_train = _selection_subset(train, max_selection_trials, rng)
    sel_val = _selection_subset(val, max_selection_trials, rng)

    def log_rates(width: float, index: np.ndarray) -> np.ndarray:
        """(trials, time, n_heldin) log of the smoothed held-in counts."""
        return np.log(_smooth(trials.heldin[index], width, trials.bin_width) + LOG_OFFSET)

    def score(candidate: dict[str, float]) -> np.ndarray:
        width, alpha = candidate["kernel_width"], candidate["alpha"]
        glm = fit_poisson_glm(
            _flat(log_rates(width, sel_train)), _flat(trials.heldout[sel_train]), alpha
        )
        return _trial_log_likelihood(
            glm.predict(log_rates(width, sel_val)), trials.heldout[sel_val]
        )

    middle_alpha = sorted(alphas)[len(alphas) // 2]
    chosen, selection = _select(
        [{"kernel_width": w, "alpha": middle_alpha} for w in kernel_widths], score
    )
    width = chosen["kernel_width"]
    alpha, _, _ = _glm_path(
        _flat(log_rates(width, sel_train)),
        _flat(trials.heldout[sel_train]),
        alphas,
        log_rates(width, sel_val),
        trials.heldout[sel_val],
    )
    glm = fit_poisson_glm(_flat(log_rates(width, train)), _flat(trials.heldout[train]), alpha)
    rates = glm.predict(log_rates(width, np.arange(trials.n_trials)))
    return BaselinePrediction(
        rates=rates,
        forward_rates=None,
        hyperparameters={"kernel_width": width, "alpha": alpha},
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )


# --- 2. GPFA ----------------------------------------------------------------------------------


def _gpfa_sequences(counts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Elephant's GPFA data structure from counts, as ``gpfa_util.get_seqs`` builds it.

    Args:
        counts: (trials, time, neurons) spike counts.
        keep: (neurons,) bool, the neurons GPFA models (those that spiked in training).

    Returns:
        Record array with ``T`` (bins) and ``y`` ((neurons, T) square-rooted counts) per trial:
        elephant bins ``neo.SpikeTrain`` objects into exactly this, so skipping the round trip
        through per-trial, per-neuron Python objects changes nothing but the time it takes.
    """
    sqrt_counts = np.sqrt(np.asarray(counts, dtype=np.float64)[:, :, keep]).transpose(0, 2, 1)
    seqs = np.empty(len(sqrt_counts), dtype=[("T", int), ("y", "O")])
    seqs["T"] = counts.shape[1]
    for k, trial in enumerate(sqrt_counts):
        seqs["y"][k] = np.ascontiguousarray(trial)
    return seqs


@dataclass(frozen=True)
class GPFAFit:
    """Elephant's estimated GPFA parameters and the neurons they cover.

    Attributes:
        params: elephant's parameter dict (``C``, ``d``, ``R``, ``gamma``, ``eps``, ...; GP
            times in bins).
        keep: (neurons,) bool, the neurons modelled (those that spiked in training).
        bin_width: seconds per bin.
    """

    params: dict[str, Any]
    keep: np.ndarray
    bin_width: float

    def latents(self, counts: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """(trials, time, x_dim) posterior-mean latents (not orthonormalised) from counts.

        Trials are inferred ``chunk`` at a time: elephant stacks a chunk's square-rooted
        counts several times over, and at NLB's sizes all trials at once would take gigabytes.
        """
        from elephant.gpfa import gpfa_core

        out: list[np.ndarray] = []
        with blas_threads(1):
            for first in range(0, len(counts), chunk):
                seqs, _ = gpfa_core.exact_inference_with_ll(
                    _gpfa_sequences(counts[first : first + chunk], self.keep),
                    self.params,
                    get_ll=False,
                )
                out.extend(latent.T for latent in seqs["latent_variable"])
        return np.stack(out)

    def extrapolate(self, latents: np.ndarray, n_forward: int) -> np.ndarray:
        """(trials, n_forward, x_dim) posterior means of the latents after the window.

        The future of each latent GP given the data is the GP's conditional mean given the
        window's latents, ``K_fw K_ww^-1 E[x_w | y]``: the spikes depend on the future only
        through the window's latents, so this is exact for the posterior mean.
        """
        n_time = latents.shape[1]
        window = np.arange(n_time, dtype=np.float64)
        future = np.arange(n_time, n_time + n_forward, dtype=np.float64)
        out = np.empty((latents.shape[0], n_forward, latents.shape[2]))
        for i, (gamma, eps) in enumerate(
            zip(self.params["gamma"], self.params["eps"], strict=True)
        ):
            k_ww = (1 - eps) * np.exp(-gamma / 2 * (window[:, None] - window[None, :]) ** 2)
            k_ww += eps * np.eye(n_time)
            k_fw = (1 - eps) * np.exp(-gamma / 2 * (future[:, None] - window[None, :]) ** 2)
            gain = np.linalg.solve(k_ww, k_fw.T).T
            out[:, :, i] = latents[:, :, i] @ gain.T
        return out


def fit_gpfa(
    counts: np.ndarray,
    bin_width: float,
    x_dim: int,
    *,
    em_max_iters: int = 50,
    tau_init: float = 0.1,
) -> GPFAFit:
    """Fit GPFA with ``elephant`` (``gpfa_core.fit``, what ``elephant.gpfa.GPFA.fit`` runs).

    Args:
        counts: (trials, time, neurons) training spike counts.
        bin_width: seconds per bin.
        x_dim: latent dimension.
        em_max_iters: most EM iterations (elephant's default is 500).
        tau_init: initial GP timescale, seconds.

    Returns:
        The fit; ``latents`` infers (trials, time, x_dim) posterior means from any counts.
    """
    from elephant.gpfa import gpfa_core

    keep = np.asarray(counts, dtype=np.float64).sum(axis=(0, 1)) > 0
    seqs = _gpfa_sequences(counts, keep)
    # elephant reports its progress with print(); keep it out of the caller's output. Its EM
    # works on 20-bin segments: small matrices, fastest on one BLAS thread (so is inference:
    # one (x_dim * time)^2 inverse, then products that threads barely speed up).
    with contextlib.redirect_stdout(io.StringIO()), blas_threads(1):
        params, _ = gpfa_core.fit(
            seqs_train=seqs,
            x_dim=x_dim,
            bin_width=bin_width * 1e3,
            em_max_iters=em_max_iters,
            tau_init=tau_init * 1e3,
        )
    return GPFAFit(params=params, keep=keep, bin_width=bin_width)


def gpfa_baseline(
    trials: SpikeTrials,
    *,
    latent_dims: Sequence[int] = GPFA_LATENT_DIMS,
    alphas: Sequence[float] = ALPHAS,
    em_max_iters: int = 50,
    max_em_trials: int = 200,
    max_selection_trials: int = 400,
    seed: int = 0,
) -> BaselinePrediction:
    """GPFA (Yu et al. 2009) on the held-in neurons, then Poisson GLMs to what is predicted.

    GPFA (``elephant``, square-rooted counts at the data's bin width) is fitted on the held-in
    neurons of train trials; each trial's latents are inferred from its own held-in spikes only.
    A Poisson GLM from latents to held-out counts gives co-smoothing rates. For forward
    prediction, each latent's Gaussian process is continued past the window
    (``K_fw K_ww^-1 x_w``) and a second Poisson GLM, from the continued latents to every
    neuron's counts, is fitted on the train trials' forward bins. Both GLMs'
    penalties are chosen on val trials, and so is the latent dimension, by the
    one-standard-error rule: the smallest dimension whose validation log-likelihood is within
    one standard error (over val trials) of the best. Beyond the true dimension the score is
    flat within noise, and the rule keeps the latent space as small as the data allow.
    GPFA's EM, whose cost grows with the trials and the dimension, runs on at most
    ``max_em_trials`` train trials (at NLB's sizes, tens of thousands of bins: ample for its
    ``C``, ``d``, ``R`` and timescales); the final GLMs use every train trial.

    Args:
        trials: the binned trials and their split.
        latent_dims: latent dimensions to try (each below the number of held-in neurons).
        alphas: GLM penalties to try.
        em_max_iters: most EM iterations per GPFA fit.
        max_em_trials: most train trials GPFA's EM runs on.
        max_selection_trials: most train (and val) trials used to choose hyper-parameters.
        seed: draws those trials when there are more.

    Returns:
        Held-out rates (trials, time, n_heldout) and forward rates
        (trials, n_forward, n_heldin + n_heldout), spikes per bin.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    n_heldin = trials.heldin.shape[2]
    dims = sorted({int(d) for d in latent_dims if 0 < int(d) < n_heldin})
    if not dims:
        raise ValueError(f"no latent dimension in {tuple(latent_dims)} is in 1..{n_heldin - 1}")
    rng = np.random.default_rng(seed)
    sel_train = _selection_subset(train, max_selection_trials, rng)
    sel_val = _selection_subset(val, max_selection_trials, rng)

    em_train = _selection_subset(sel_train, max_em_trials, rng)
    fits: dict[int, GPFAFit] = {}
    n_sel = sel_train.size

    def score(candidate: dict[str, float]) -> np.ndarray:
        x_dim = int(candidate["x_dim"])
        fits[x_dim] = fit_gpfa(
            trials.heldin[em_train], trials.bin_width, x_dim, em_max_iters=em_max_iters
        )
        # One inference call for both subsets: its cost is dominated by a per-length inverse.
        latents = fits[x_dim].latents(trials.heldin[np.concatenate([sel_train, sel_val])])
        _, _, value = _glm_path(
            _flat(latents[:n_sel]),
            _flat(trials.heldout[sel_train]),
            alphas,
            latents[n_sel:],
            trials.heldout[sel_val],
        )
        return value

    chosen, selection = _select([{"x_dim": float(d)} for d in dims], score, parsimonious=True)
    x_dim = int(chosen["x_dim"])
    gpfa = fits[x_dim]
    latents = gpfa.latents(trials.heldin)
    alpha, glm, _ = _glm_path(
        _flat(latents[train]),
        _flat(trials.heldout[train]),
        alphas,
        latents[val],
        trials.heldout[val],
    )
    rates = glm.predict(latents)
    hyperparameters = {"x_dim": float(x_dim), "alpha": alpha}

    forward_rates = None
    n_forward = trials.heldin_forward.shape[1]
    if n_forward > 0:
        features = gpfa.extrapolate(latents, n_forward)
        counts = np.concatenate([trials.heldin_forward, trials.heldout_forward], axis=2)
        forward_alpha, forward_glm, _ = _glm_path(
            _flat(features[train]), _flat(counts[train]), alphas, features[val], counts[val]
        )
        forward_rates = forward_glm.predict(features)
        hyperparameters["forward_alpha"] = forward_alpha
    return BaselinePrediction(
        rates=rates,
        forward_rates=forward_rates,
        hyperparameters=hyperparameters,
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )


# --- 3. ridge co-smoothing --------------------------------------------------------------------


def ridge_baseline(
    trials: SpikeTrials,
    *,
    kernel_widths: Sequence[float] = KERNEL_WIDTHS,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> BaselinePrediction:
    """Ridge co-smoothing: smoothed held-in rates -> held-out counts, linear, clipped.

    scikit-learn's ``Ridge`` (with intercept) maps each bin's smoothed held-in counts to the
    held-out counts of the same bin; predictions below ``RATE_FLOOR`` are raised to it. Kernel
    width and penalty are chosen together on val, all on every train trial: per width, one
    eigendecomposition of the features' scatter matrix gives the fit at every penalty (what
    ``Ridge`` computes once per penalty; :func:`ridge_path`).

    Args:
        trials: the binned trials and their split.
        kernel_widths: kernel standard deviations to try, seconds.
        alphas: ridge penalties to try.

    Returns:
        Held-out rates (trials, time, n_heldout) spikes per bin; no forward prediction.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    floor = RATE_FLOOR * trials.bin_width

    def predict(fit: tuple[np.ndarray, np.ndarray], smoothed: np.ndarray) -> np.ndarray:
        """(trials, time, n_heldout) floored predictions from (trials, time, n_heldin)."""
        weights, intercept = fit
        return np.maximum(smoothed @ weights + intercept, floor)

    best: tuple[float, dict[str, float], tuple[np.ndarray, np.ndarray]] | None = None
    selection: dict[str, float] = {}
    for width in kernel_widths:
        x_train = _flat(_smooth(trials.heldin[train], width, trials.bin_width))
        path = ridge_path(x_train, _flat(trials.heldout[train]), alphas)
        del x_train
        x_val = _smooth(trials.heldin[val], width, trials.bin_width)
        for alpha, fit in zip(alphas, path, strict=True):
            candidate = {"kernel_width": width, "alpha": alpha}
            score = poisson_log_likelihood(predict(fit, x_val), trials.heldout[val])
            selection[_label(candidate)] = score
            if best is None or score > best[0]:
                best = (score, candidate, fit)
    if best is None:
        raise ValueError("kernel_widths and alphas must not be empty")
    _, chosen, fit = best
    logger.debug("ridge validation log-likelihoods %s; chose %s", selection, chosen)
    rates = predict(fit, _smooth(trials.heldin, chosen["kernel_width"], trials.bin_width))
    return BaselinePrediction(
        rates=rates,
        forward_rates=None,
        hyperparameters=chosen,
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )


def ridge_path(
    features: np.ndarray, targets: np.ndarray, alphas: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ridge regression with intercept at several penalties, from one eigendecomposition.

    Solves scikit-learn's ``Ridge(alpha)`` problem, ``min ||Y - X W - b||^2 + alpha ||W||^2``
    with the intercept unpenalised: centring removes ``b``, and with ``Xc^T Xc = V S V^T``,
    ``W = V (S + alpha)^-1 V^T Xc^T Yc``.

    Args:
        features: (samples, features).
        targets: (samples, outputs).
        alphas: penalties (>= 0; 0 needs full-rank features).

    Returns:
        (weights (features, outputs), intercept (outputs,)) for each alpha, in order.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    centred = x - x_mean
    with blas_threads(1):
        eigenvalues, basis = np.linalg.eigh(centred.T @ centred)
        rotated = basis.T @ (centred.T @ (y - y_mean))
    fits = []
    for alpha in alphas:
        if alpha < 0:
            raise ValueError(f"ridge penalties must be >= 0, got {alpha}")
        weights = basis @ (rotated / (np.maximum(eigenvalues, 0.0) + alpha)[:, None])
        fits.append((weights, y_mean - x_mean @ weights))
    return fits


# --- 4. condition-mean PSTH -------------------------------------------------------------------


def condition_mean_baseline(
    trials: SpikeTrials, *, kernel_widths: Sequence[float] = CONDITION_KERNEL_WIDTHS
) -> BaselinePrediction:
    """Each trial predicted by its condition's mean over train trials (a smoothed PSTH).

    The mean runs over the window and the forward bins together (held-in and held-out neurons),
    so it forecasts too; it is smoothed along that whole span. A condition with no train trial
    gets the mean over all train trials. Rates are floored at ``RATE_FLOOR``. The kernel width
    is chosen on val.

    Args:
        trials: the binned trials and their split.
        kernel_widths: kernel standard deviations to try, seconds (0: no smoothing).

    Returns:
        Held-out rates (trials, time, n_heldout) and forward rates
        (trials, n_forward, n_heldin + n_heldout), spikes per bin.
    """
    start = time.perf_counter()
    train, val = _split_indices(trials)
    n_time = trials.heldin.shape[1]
    n_heldin = trials.heldin.shape[2]
    labels, code = np.unique(trials.condition, return_inverse=True)
    code = code.ravel()
    n_per_condition = np.bincount(code[train], minlength=len(labels))[:, None, None]

    def condition_means(counts: np.ndarray) -> np.ndarray:
        """(conditions, time, n) mean over each condition's train trials (all train if none)."""
        sums = np.zeros((len(labels), *counts.shape[1:]))
        np.add.at(sums, code[train], counts[train])
        fallback = counts[train].mean(axis=0, dtype=np.float64)
        return np.where(n_per_condition > 0, sums / np.maximum(n_per_condition, 1), fallback)

    # (conditions, time + n_forward, heldin + heldout): the whole span every neuron was recorded.
    means = np.concatenate(
        [
            np.concatenate([condition_means(trials.heldin), condition_means(trials.heldout)], 2),
            np.concatenate(
                [condition_means(trials.heldin_forward), condition_means(trials.heldout_forward)],
                2,
            ),
        ],
        axis=1,
    )
    floor = RATE_FLOOR * trials.bin_width

    def psth(width: float) -> np.ndarray:
        return np.maximum(_smooth(means, width, trials.bin_width), floor)

    def score(candidate: dict[str, float]) -> np.ndarray:
        predicted = psth(candidate["kernel_width"])[code[val], :n_time, n_heldin:]
        return _trial_log_likelihood(predicted, trials.heldout[val])

    chosen, selection = _select([{"kernel_width": w} for w in kernel_widths], score)
    predicted = psth(chosen["kernel_width"])
    return BaselinePrediction(
        rates=predicted[:, :n_time, n_heldin:][code],
        forward_rates=predicted[:, n_time:, :][code] if predicted.shape[1] > n_time else None,
        hyperparameters=chosen,
        fit_seconds=time.perf_counter() - start,
        selection=selection,
    )


# --- all of them ------------------------------------------------------------------------------


def run_baselines(
    trials: SpikeTrials,
    *,
    seed: int = 0,
    latent_dims: Sequence[int] = GPFA_LATENT_DIMS,
    em_max_iters: int = 50,
    max_em_trials: int = 200,
    max_selection_trials: int = 400,
) -> dict[str, BaselinePrediction]:
    """Every baseline on the same trials and split.

    Args:
        trials: the binned trials and their split.
        seed: draws the trials used for hyper-parameter selection when there are more than
            ``max_selection_trials``; the same seed gives the same predictions.
        latent_dims: GPFA latent dimensions to try.
        em_max_iters: most EM iterations per GPFA fit.
        max_em_trials: most train trials GPFA's EM runs on.
        max_selection_trials: most train (and val) trials used to choose hyper-parameters.

    Returns:
        ``{"smoothing", "gpfa", "ridge", "condition_mean"}`` -> :class:`BaselinePrediction`.
    """
    predictions = {
        "smoothing": smoothing_baseline(
            trials, max_selection_trials=max_selection_trials, seed=seed
        ),
        "gpfa": gpfa_baseline(
            trials,
            latent_dims=latent_dims,
            em_max_iters=em_max_iters,
            max_em_trials=max_em_trials,
            max_selection_trials=max_selection_trials,
            seed=seed,
        ),
        "ridge": ridge_baseline(trials),
        "condition_mean": condition_mean_baseline(trials),
    }
    for name, prediction in predictions.items():
        logger.info(
            "baseline %s: %s in %.1f s", name, prediction.hyperparameters, prediction.fit_seconds
        )
    return predictions
