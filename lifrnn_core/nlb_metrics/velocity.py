"""The Neural Latents Benchmark's four scores of predicted firing rates (Pei et al. 2021, NLB'21).

Every model and baseline of a spike-train ``fit_data`` job is judged by these, on the same trials
(docs/science.md, "The Neural Latents Benchmark's scores"):

- :func:`co_bps`: co-smoothing bits per spike, the held-out neurons' spikes in the window
  predicted from the held-in neurons (the benchmark's headline score);
- :func:`fp_bps`: forward-prediction bits per spike, every neuron's spikes in the bins after the
  window;
- :func:`velocity_r2`: R² of hand velocity decoded from the predicted rates by ridge regression
  (NLB's cross-validated penalty, with the behaviour lagging the rates by 100 ms);
- :func:`psth_r2`: R² of the condition-averaged predictions against the data's PSTHs.

Each computes what ``nlb_tools.evaluation`` computes on the same arrays (checked to 1e-9 in
``tests/unit/test_nlb_metrics.py``), written afresh in numpy: the ridge penalty's grid search
shares one Gram matrix per fold across every penalty, which keeps MC_Maze's ~300,000 samples
cheap. :func:`nlb_scores` computes all four from arrays, :func:`score_spike_trials` from a
:class:`~lifrnn_core.spike_trials.SpikeTrials` and a model's rates for all of its trials.

Shapes: ``(trials, time, neurons)``; rates and counts in spikes per bin; times in seconds.

May import: numpy, :mod:`lifrnn_core.recordings`, :mod:`lifrnn_core.spike_trials`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lifrnn_core.recordings import condition_average, gaussian_smooth
from lifrnn_core.spike_trials import SpikeTrials

__all__ = [
    "NLB_CV_FOLDS",
    "NLB_PSTH_KERNEL_SD",
    "NLB_RIDGE_ALPHAS",
    "NLB_VELOCITY_LAG",
    "ZERO_RATE",
    "JoinedRates",
    "NLBScores",
    "bits_per_spike",
    "co_bps",
    "condition_psths",
    "fp_bps",
    "nlb_scores",
    "psth_r2",
    "psth_reliability",
    "score_spike_trials",
    "trial_psths",
    "velocity_r2",
]

logger = logging.getLogger(__name__)

ZERO_RATE = 1e-9
"""Spikes per bin put in place of a predicted rate of exactly 0 (as nlb-tools does), so that a
spike where a model predicted none costs a large but finite log-likelihood."""

NLB_VELOCITY_LAG = 0.1
"""Seconds by which hand velocity lags the rates decoding it (NLB's MC_Maze: 100 ms)."""

NLB_RIDGE_ALPHAS = np.logspace(-4, 0, 9)
"""Ridge penalties searched by the velocity decoder (NLB's grid)."""

NLB_CV_FOLDS = 5
"""Contiguous folds of the training samples over which the ridge penalty is chosen."""

NLB_PSTH_KERNEL_SD = 0.07
"""Seconds: sd of the Gaussian smoothing the data's spikes into PSTHs (NLB's MC_Maze: 70 ms)."""


# --- bits per spike ------------------------------------------------------------------------------


def _validated_pair(rates: np.ndarray, spikes: np.ndarray, what: str) -> tuple[np.ndarray, ...]:
    rates = np.asarray(rates, dtype=np.float64)
    spikes = np.asarray(spikes, dtype=np.float64)
    if rates.shape != spikes.shape or rates.ndim < 2:
        raise ValueError(
            f"{what}: rates {rates.shape} and spikes {spikes.shape} must have the same shape, "
            "(trials, time, neurons)"
        )
    return rates, spikes


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """How much better than each neuron's mean rate the predicted rates explain the spikes.

    (log L(rates) - log L(null)) / (total spikes * ln 2), with L the Poisson likelihood of the
    counts and the null model predicting each neuron's mean count over all the given bins.
    0 is no better than the mean rate; higher is better; the log(y!) terms cancel.

    Args:
        rates: (trials, time, neurons) predicted rates, spikes per bin, >= 0; a rate of exactly 0
            is read as ``ZERO_RATE``.
        spikes: (trials, time, neurons) observed counts; NaN marks bins left out of the score (their
            rates may be NaN too).

    Returns:
        bits per spike (float; NaN when the bins hold no spike).

    Raises:
        ValueError: shapes differ, or a scored rate is NaN or negative.
    """
    rates, spikes = _validated_pair(rates, spikes, "bits_per_spike")
    scored = ~np.isnan(spikes)
    null_rates = np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True)
    null_rates = np.broadcast_to(null_rates, spikes.shape)[scored]
    rates, spikes = rates[scored], spikes[scored]
    if np.isnan(rates).any():
        raise ValueError("bits_per_spike: NaN rate predictions in scored bins")
    if (rates < 0).any():
        raise ValueError("bits_per_spike: negative rate predictions; rates are spikes per bin")
    rates = np.where(rates == 0, ZERO_RATE, rates)
    null_rates = np.where(null_rates == 0, ZERO_RATE, null_rates)
    total_spikes = spikes.sum()
    if total_spikes == 0:
        logger.warning("bits_per_spike: no spikes in the scored bins; the score is undefined")
        return math.nan
    gain = spikes * (np.log(rates) - np.log(null_rates)) - (rates - null_rates)
    return float(gain.sum() / total_spikes / math.log(2))


def co_bps(heldout_rates: np.ndarray, heldout_spikes: np.ndarray) -> float:
    """Co-smoothing bits per spike: the held-out neurons of the evaluated trials, in the window.

    Args:
        heldout_rates: (trials, time, n_heldout) rates predicted for the held-out neurons from the
            held-in ones, spikes per bin.
        heldout_spikes: (trials, time, n_heldout) their observed counts.

    Returns:
        :func:`bits_per_spike` of the held-out neurons (NLB'21's ``co-bps``).
    """
    return bits_per_spike(heldout_rates, heldout_spikes)


def fp_bps(forward_rates: np.ndarray, forward_spikes: np.ndarray) -> float:
    """Forward-prediction bits per spike: every neuron in the bins after the window.

    Args:
        forward_rates: (trials, n_forward, neurons) rates predicted for the bins after the window
            from the window's held-in spikes, spikes per bin; neurons are the held-in ones then the
            held-out ones (NLB concatenates both).
        forward_spikes: (trials, n_forward, neurons) their observed counts, in the same order.

    Returns:
        :func:`bits_per_spike` of the forward bins (NLB'21's ``fp-bps``); its null model is each
        neuron's mean over the forward bins themselves.
    """
    return bits_per_spike(forward_rates, forward_spikes)


# --- velocity decoding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinedRates:
    """Rates of some trials with neuron groups side by side, (trials, time, neurons), read
    without joining them: at MC_Maze's size each joined copy of the training trials is ~0.2 GB.

    Attributes:
        parts: arrays (all trials, time, n_i) of the groups (e.g. held-in, held-out neurons).
        trials: (trials,) indices of the trials this view stands for, in order.
    """

    parts: tuple[np.ndarray, ...]
    trials: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.trials), self.parts[0].shape[1], sum(p.shape[2] for p in self.parts))

    def rows(self, trial: np.ndarray, time: np.ndarray) -> np.ndarray:
        """(k, neurons) rates at (``trial[k]``, ``time[k]``), trials counted in this view."""
        which = self.trials[trial]
        return np.concatenate([part[which, time] for part in self.parts], axis=-1)


@dataclass(frozen=True)
class _LaggedSamples:
    """The samples of a velocity decoder: rates at bin t of each trial (read a block at a time,
    never copied whole) and the velocity lag_bins later, samples without velocity left out.
    Samples run trial by trial, bin by bin, as NLB's reshaped arrays have them."""

    rates: np.ndarray | JoinedRates
    bins: int
    kept: np.ndarray
    y: np.ndarray
    what: str

    def __len__(self) -> int:
        return len(self.kept)

    def x(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(samples, neurons) float64 rates of samples ``start:stop``."""
        trial, time = np.divmod(self.kept[start:stop], self.bins)
        rates = self.rates
        block = rates.rows(trial, time) if isinstance(rates, JoinedRates) else rates[trial, time]
        block = block.astype(np.float64)
        if np.isnan(block).any():
            raise ValueError(f"{self.what}: NaN rate predictions where velocity is known")
        return block


def _lagged_samples(
    rates: np.ndarray | JoinedRates, velocity: np.ndarray, lag_bins: int, what: str
) -> _LaggedSamples:
    """The samples of rates (trials, time, neurons) and velocity (trials, time, outputs)
    lag_bins later, NaN rows dropped (see :class:`_LaggedSamples`)."""
    if not isinstance(rates, JoinedRates):
        rates = np.asarray(rates)
    velocity = np.asarray(velocity)
    if len(rates.shape) != 3 or velocity.ndim != 3 or rates.shape[:2] != velocity.shape[:2]:
        raise ValueError(
            f"{what}: rates {rates.shape} (trials, time, neurons) and velocity {velocity.shape} "
            "(trials, time, 2) must share trials and time"
        )
    n_time = rates.shape[1]
    if not 0 <= lag_bins < n_time:
        raise ValueError(f"{what}: lag_bins must lie in [0, {n_time}), got {lag_bins}")
    y = velocity[:, lag_bins:].reshape(-1, velocity.shape[2])
    # nlb-tools drops the samples whose first behaviour channel is NaN.
    kept = np.flatnonzero(~np.isnan(y[:, 0]))
    return _LaggedSamples(rates, n_time - lag_bins, kept, y[kept].astype(np.float64), what)


def _r2_per_output(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(..., outputs) R² of prediction (..., samples, outputs) against y (samples, outputs).

    An output without variance scores 1 if predicted exactly, else 0 (as scikit-learn does).
    """
    residual = ((y - prediction) ** 2).sum(axis=-2)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    safe_total = np.where(total == 0, 1.0, total)
    return np.where(total == 0, np.where(residual == 0, 1.0, 0.0), 1.0 - residual / safe_total)


@dataclass(frozen=True)
class _Moments:
    """Sums of one block of samples that a least-squares fit with an offset needs."""

    n: int
    sum_x: np.ndarray
    sum_y: np.ndarray
    xx: np.ndarray
    xy: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> _Moments:
        return cls(len(x), x.sum(axis=0), y.sum(axis=0), x.T @ x, x.T @ y)

    def __add__(self, other: _Moments) -> _Moments:
        return _Moments(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_y + other.sum_y,
            self.xx + other.xx,
            self.xy + other.xy,
        )

    def __sub__(self, other: _Moments) -> _Moments:
        return _Moments(
            self.n - other.n,
            self.sum_x - other.sum_x,
            self.sum_y - other.sum_y,
            self.xx - other.xx,
            self.xy - other.xy,
        )

    def ridge(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ridge fits with an unpenalised offset, one per penalty, from one eigendecomposition.

        Returns:
            weights: (alphas, neurons, outputs); offsets: (alphas, outputs).
        """
        mean_x, mean_y = self.sum_x / self.n, self.sum_y / self.n
        centred_xx = self.xx - self.n * np.outer(mean_x, mean_x)
        centred_xy = self.xy - self.n * np.outer(mean_x, mean_y)
        eigenvalues, eigenvectors = np.linalg.eigh((centred_xx + centred_xx.T) / 2)
        projected = eigenvectors.T @ centred_xy
        shrink = 1.0 / (eigenvalues[None, :] + alphas[:, None])
        weights = np.einsum("ij,aj,jo->aio", eigenvectors, shrink, projected)
        offsets = mean_y[None, :] - np.einsum("i,aio->ao", mean_x, weights)
        return weights, offsets


def _fold_bounds(n_samples: int, n_folds: int) -> list[tuple[int, int]]:
    """Contiguous folds, the first ``n_samples % n_folds`` one sample longer (as KFold cuts)."""
    sizes = np.full(n_folds, n_samples // n_folds)
    sizes[: n_samples % n_folds] += 1
    ends = np.cumsum(sizes)
    return [(int(end - size), int(end)) for end, size in zip(ends, sizes, strict=True)]


def velocity_r2(
    train_rates: np.ndarray | JoinedRates,
    train_velocity: np.ndarray,
    eval_rates: np.ndarray,
    eval_velocity: np.ndarray,
    lag_bins: int = 20,
    alphas: Sequence[float] | np.ndarray = NLB_RIDGE_ALPHAS,
    n_folds: int = NLB_CV_FOLDS,
) -> float:
    """R² of hand velocity decoded from predicted rates, as NLB'21 scores it.

    A ridge map from the rates at bin t to the velocity at bin t + lag_bins is fitted on the
    training trials, its penalty chosen from ``alphas`` by the mean R² over ``n_folds``
    contiguous folds of the training samples (trial-major order), refitted on all of them and
    scored on the eval trials (R² averaged over the velocity components). Samples whose
    velocity is NaN are left out.

    Args:
        train_rates: (train trials, time, neurons) predicted rates, spikes per bin (NLB uses all
            neurons, held-in then held-out), or a :class:`JoinedRates` view of them (read a
            fold at a time, never joined whole).
        train_velocity: (train trials, time, 2) hand velocity on the same bins as the rates.
        eval_rates: (eval trials, time, neurons) predicted rates.
        eval_velocity: (eval trials, time, 2) hand velocity on the same bins.
        lag_bins: bins by which the velocity lags the rates (NLB's MC_Maze: 100 ms, 20 bins of
            5 ms). The last lag_bins bins of the rates have no velocity and are not used; pass
            velocity already shifted by the lag (NLB's own tensors) with lag_bins=0.
        alphas: ridge penalties searched.
        n_folds: cross-validation folds for the search.

    Returns:
        R² on the eval trials (1 is perfect, 0 is the eval velocity's mean; can be negative).
    """
    train = _lagged_samples(train_rates, train_velocity, lag_bins, "velocity_r2 train")
    evaluated = _lagged_samples(eval_rates, eval_velocity, lag_bins, "velocity_r2 eval")
    penalties = np.asarray(alphas, dtype=np.float64)
    if len(train) < n_folds or len(evaluated) == 0:
        raise ValueError(
            f"velocity_r2: {len(train)} training and {len(evaluated)} eval samples with "
            f"velocity; need at least {n_folds} and 1"
        )
    # Float64 one fold at a time, read from the rates as they are: at MC_Maze's size no copy of
    # all training samples is made.
    bounds = _fold_bounds(len(train), n_folds)
    fold_moments = [_Moments.of(train.x(a, b), train.y[a:b]) for a, b in bounds]
    total = fold_moments[0]
    for moments in fold_moments[1:]:
        total = total + moments
    fold_scores = np.empty((n_folds, len(penalties)))
    for fold, ((a, b), moments) in enumerate(zip(bounds, fold_moments, strict=True)):
        weights, offsets = (total - moments).ridge(penalties)
        prediction = np.einsum("si,aio->aso", train.x(a, b), weights, optimize=True)
        fold_scores[fold] = _r2_per_output(train.y[a:b], prediction + offsets[:, None, :]).mean(
            axis=-1
        )
    # The first of equally good penalties, as scikit-learn's GridSearchCV picks.
    best = int(np.argmax(fold_scores.mean(axis=0)))
    weights, offsets = total.ridge(penalties[best : best + 1])
    prediction = evaluated.x() @ weights[0] + offsets[0]
    logger.debug("velocity_r2: ridge penalty %g of %s", penalties[best], penalties)
    return float(_r2_per_output(evaluated.y, prediction).mean())


# --- PSTHs ---------------------------------------------------------------------------------------


def condition_psths(
    spikes: np.ndarray,
    conditions: np.ndarray,
    bin_width: float,
    kernel_sd: float = NLB_PSTH_KERNEL_SD,
) -> tuple[np.ndarray, list[str]]:
    """The data's PSTHs: spikes averaged over each condition's trials, smoothed in time.

    NLB smooths the continuous 1 ms spike trains and then bins them; here the binned counts of
    each trial's window are smoothed (averaging first, which gives the same for a linear filter),
    with the window's ends mirrored, so the first and last ~2 sd are approximate.

    Args:
        spikes: (trials, time, neurons) counts, spikes per bin (NLB uses every trial of the
            condition, whatever its split, and all neurons).
        conditions: (trials,) condition label of each trial (compared as ``str``).
        bin_width: seconds per bin.
        kernel_sd: seconds, sd of the Gaussian kernel (NLB's MC_Maze: 70 ms).

    Returns:
        psths: (conditions, time, neurons) spikes per bin; labels: the conditions in natural order.
    """
    averages, labels, _ = condition_average(np.asarray(spikes), conditions)
    return gaussian_smooth(averages, kernel_sd, bin_width, axis=1), labels


def trial_psths(
    trials: SpikeTrials, kernel_sd: float = NLB_PSTH_KERNEL_SD
) -> tuple[np.ndarray, list[str]]:
    """:func:`condition_psths` of every trial's held-in then held-out neurons, (conditions,
    time, neurons). The two groups are averaged apart and joined (smoothing is per neuron, so
    the numbers are the same): joining every trial's counts first costs ~0.5 GB at MC_Maze's
    size."""
    parts = [
        condition_psths(counts, trials.condition, trials.bin_width, kernel_sd)
        for counts in (trials.heldin, trials.heldout)
    ]
    return np.concatenate([part[0] for part in parts], axis=-1), parts[0][1]


def psth_r2(
    rates: np.ndarray,
    conditions: np.ndarray,
    psths: np.ndarray,
    psth_conditions: Sequence[str] | np.ndarray,
) -> float:
    """R² of the condition-averaged predicted rates against the data's PSTHs, as NLB'21 scores it.

    For each PSTH's condition with evaluated trials, the predicted rates of those trials are
    averaged; the bins where the PSTH is NaN (its first neuron's) are left out; the R² of all
    conditions' bins stacked is averaged over neurons. Conditions without evaluated trials, and
    trials of conditions without a PSTH, are left out.

    Args:
        rates: (trials, time, neurons) predicted rates of the evaluated trials, spikes per bin.
        conditions: (trials,) condition label of each evaluated trial (compared as ``str``).
        psths: (conditions, time, neurons) the data's PSTHs, spikes per bin (see
            :func:`condition_psths`), NaN where a condition is shorter.
        psth_conditions: (conditions,) the label of each PSTH.

    Returns:
        R² averaged over neurons (a neuron whose PSTHs are constant scores 1 if matched exactly,
        else 0, as scikit-learn does).
    """
    rates = np.asarray(rates)  # averaged in float64 below, without a float64 copy of it all
    psths = np.asarray(psths, dtype=np.float64)
    labels = np.array([str(label) for label in conditions], dtype=object)
    if rates.ndim != 3 or psths.ndim != 3 or rates.shape[1:] != psths.shape[1:]:
        raise ValueError(
            f"psth_r2: rates {rates.shape} and psths {psths.shape} must be "
            "(trials | conditions, time, neurons) with the same time and neurons"
        )
    if len(labels) != len(rates) or len(psth_conditions) != len(psths):
        raise ValueError("psth_r2: one condition label per trial and per PSTH is needed")
    observed, predicted = [], []
    for label, psth in zip(psth_conditions, psths, strict=True):
        trials = labels == str(label)
        if not trials.any():
            continue
        known = ~np.isnan(psth[:, 0])
        mean_rates = rates[trials].mean(axis=0, dtype=np.float64)[known]
        if np.isnan(mean_rates).any():
            raise ValueError(f"psth_r2: NaN rate predictions in condition {label!r}")
        observed.append(psth[known])
        predicted.append(mean_rates)
    if not observed:
        raise ValueError("psth_r2: no evaluated trial belongs to a condition with a PSTH")
    return float(_r2_per_output(np.vstack(observed), np.vstack(predicted)).mean())


# --- all four ------------------------------------------------------------------------------------


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


def psth_reliability(
    counts: np.ndarray, conditions: np.ndarray, bin_width: float, generator: np.random.Generator
) -> float:
    """Split-half reliability of the PSTHs, Spearman-Brown corrected: the noise ceiling.

    Each condition's trials are split at random into two halves; each half's PSTHs are smoothed
    as NLB smooths them (:func:`condition_psths`); per neuron, ``r`` is the
    correlation of the two halves' PSTHs over conditions and time, and ``2 r / (1 + r)`` the
    reliability of the PSTHs of all the trials (Spearman-Brown): the share of their variance that
    is not trial noise, so the largest R² any model of the true PSTHs reaches on them.

    Args:
        counts: (trials, time, neurons) spike counts.
        conditions: (trials,) condition labels.
        bin_width: seconds per bin.
        generator: draws the halves.

    Returns:
        The reliability averaged over neurons whose halves vary (NaN when none does, or when no
        condition has two trials).
    """
    labels = np.asarray(conditions).astype(str)
    half = np.zeros(len(labels), dtype=bool)
    usable = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < 2:
            continue
        usable[members] = True
        half[generator.permutation(members)[: members.size // 2]] = True
    if not usable.any():
        return math.nan
    first, order = condition_psths(counts[usable & half], labels[usable & half], bin_width)
    second, other = condition_psths(counts[usable & ~half], labels[usable & ~half], bin_width)
    if order != other:
        return math.nan
    a = first.reshape(-1, first.shape[-1])
    b = second.reshape(-1, second.shape[-1])
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    scale = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    varies = scale > 0
    if not varies.any():
        return math.nan
    r = (a[:, varies] * b[:, varies]).sum(axis=0) / scale[varies]
    corrected = 2 * r / (1 + r)
    return float(np.mean(np.where(r > -1, corrected, -1.0)))
