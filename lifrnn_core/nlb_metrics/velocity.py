"""Velocity decoding (NLB'21's ``vel R2``): a ridge map from predicted rates to the hand velocity
a lag later, its penalty chosen by cross-validation over contiguous folds that share one Gram
matrix per fold across every penalty."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["NLB_CV_FOLDS", "NLB_RIDGE_ALPHAS", "JoinedRates", "velocity_r2"]

logger = logging.getLogger(__name__)

NLB_RIDGE_ALPHAS = np.logspace(-4, 0, 9)
"""Ridge penalties searched by the velocity decoder (NLB's grid)."""


NLB_CV_FOLDS = 5
"""Contiguous folds of the training samples over which the ridge penalty is chosen."""


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
