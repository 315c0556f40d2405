"""The condition-level fit: one x* per condition and the readout of every neuron, by L-BFGS on
the training trials' summed counts, over the regularisation grid (readout decay, x* prior),
early-stopped and chosen on the val trials; its first guess (:func:`_warm_start`)."""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.data_fitting import DataFitConfig, fit_to_data
from lifrnn_core.errors import DivergenceError
from lifrnn_core.fitting import random_initial_states
from lifrnn_core.lbfgs import Iteration, LBFGSDriver, RememberingClosure, divergence_error
from lifrnn_core.recordings import gaussian_smooth
from lifrnn_core.spike_fitting.config import (
    _TOLERANCE_RULES,
    SpikeFitCallback,
    SpikeFitConfig,
    _stop_rules,
)
from lifrnn_core.spike_fitting.poisson import (
    PoissonReadout,
    _DivergedError,
    _expected_and_log,
    _Simulator,
)
from lifrnn_core.spike_fitting.results import GridPoint
from lifrnn_core.spike_trials import SpikeTrials

logger = logging.getLogger(__name__)


# --- the data, per condition ---------------------------------------------------------------------


@dataclass(frozen=True)
class _SplitCounts:
    """Sufficient statistics of one split for condition-level predictions.

    ``sums`` (K, bins, neurons) summed counts, ``trials`` (K, 1, 1) trials per condition,
    ``saturated`` (K, bins, neurons) the per-entry constant that makes the NLL a deviance,
    ``nll_offset`` what turns the deviance back into the full NLL (log y! included), ``spikes``.
    """

    sums: Tensor
    trials: Tensor
    saturated: Tensor
    nll_offset: float
    spikes: float

    @classmethod
    def of(
        cls,
        trials: SpikeTrials,
        mask: np.ndarray,
        codes: np.ndarray,
        n_conditions: int,
        like: Tensor,
    ) -> _SplitCounts:
        """The statistics of the trials in ``mask`` (codes: every trial's condition index),
        gathered one condition at a time to keep memory at one condition's counts."""
        bins = trials.heldin.shape[1] + trials.heldin_forward.shape[1]
        n_neurons = trials.heldin.shape[2] + trials.heldout.shape[2]
        sums = np.zeros((n_conditions, bins, n_neurons))
        counts_per_condition = np.zeros((n_conditions, 1, 1))
        log_factorials = 0.0
        for condition in range(n_conditions):
            index = np.flatnonzero(mask & (codes == condition))
            if len(index) == 0:
                continue
            counts = _all_neurons(trials, index)
            sums[condition] = counts.sum(axis=0)
            counts_per_condition[condition] = len(index)
            log_factorials += float(torch.lgamma(torch.from_numpy(counts + 1.0)).sum())
        means = np.divide(
            sums, counts_per_condition, out=np.ones_like(sums), where=counts_per_condition > 0
        )
        saturated = np.where(sums > 0, sums * np.log(np.where(sums > 0, means, 1.0)), 0.0) - sums
        return cls(
            sums=torch.from_numpy(sums).to(like),
            trials=torch.from_numpy(counts_per_condition).to(like),
            saturated=torch.from_numpy(saturated).to(like),
            nll_offset=log_factorials - float(saturated.sum()),
            spikes=max(float(sums.sum()), 1.0),
        )

    def deviance(self, expected: Tensor, log_expected: Tensor) -> Tensor:
        """Half the Poisson deviance of condition predictions (K, bins, neurons) per bin: >= 0,
        0 when every prediction is its condition's mean count."""
        terms = self.trials * expected - self.sums * log_expected + self.saturated
        return terms.sum(dtype=torch.float64)

    def nll_per_spike(self, deviance: float) -> float:
        """The full negative log-likelihood, nats per spike, from :meth:`deviance`."""
        return (deviance + self.nll_offset) / self.spikes


def _all_neurons(trials: SpikeTrials, index: np.ndarray) -> np.ndarray:
    """(len(index), time + n_forward, neurons) counts of the trials in ``index``, held-in
    neurons first, float64."""
    window = np.concatenate([trials.heldin[index], trials.heldout[index]], axis=-1)
    forward = np.concatenate([trials.heldin_forward[index], trials.heldout_forward[index]], axis=-1)
    return np.concatenate([window, forward], axis=1).astype(np.float64)


# --- the condition fit ---------------------------------------------------------------------------


@dataclass
class _Scales:
    """Units of the fitted parameters, so that every unknown is of order 1 and the readout's
    unknowns are not correlated by the rates' mean: x* - x_sp in ``radius``; the readout as
    ``softplus(C~ (r - centre) unit + b~ offset)``: ``centre`` (n_e,) the excitatory units' mean
    rates, ``unit = nu / (r_scale sqrt(n_e))`` with ``r_scale`` their RMS deviation from it and
    ``nu = offset`` the data's mean rate (spikes/s)."""

    radius: float
    readout: float
    offset: float
    centre: Tensor

    def scaled(self, readout: PoissonReadout) -> tuple[Tensor, Tensor]:
        """(C~, b~) of a readout."""
        return readout.C / self.readout, (readout.b + readout.C @ self.centre) / self.offset

    def readout_of(self, C_scaled: Tensor, b_scaled: Tensor) -> PoissonReadout:
        """The readout (C, b) of (C~, b~)."""
        C = C_scaled * self.readout
        return PoissonReadout(C, b_scaled * self.offset - C @ self.centre)


class _Parameters:
    """The condition fit's unknowns packed into one flat tensor (for L-BFGS):
    ``theta~`` (K, modes) when x* is fitted, ``C~`` (neurons, n_e), ``b~`` (neurons,)."""

    def __init__(
        self,
        x_sp: Tensor,
        basis: Tensor,
        fixed_x_star: Tensor | None,
        n_conditions: int,
        n_neurons: int,
        n_excitatory: int,
        scales: _Scales,
        n_trials: int,
    ) -> None:
        self.x_sp, self.basis, self.fixed_x_star, self.scales = x_sp, basis, fixed_x_star, scales
        self.n_trials = n_trials
        modes = basis.shape[1]
        self.shapes = [(n_neurons, n_excitatory), (n_neurons,)]
        if fixed_x_star is None:
            self.shapes.insert(0, (n_conditions, modes))
        self.sizes = [math.prod(shape) for shape in self.shapes]

    def pack(self, theta: Tensor | None, readout: PoissonReadout) -> Tensor:
        """Flat tensor from theta (K, modes) in radius units and the readout."""
        parts = list(self.scales.scaled(readout))
        if self.fixed_x_star is None and theta is not None:
            parts.insert(0, theta)
        return torch.cat([part.reshape(-1) for part in parts])

    def unpack(self, flat: Tensor) -> tuple[Tensor | None, Tensor, PoissonReadout]:
        """(theta~ or None, x* (K, n), readout in natural units) from the flat tensor."""
        pieces = [
            piece.reshape(shape)
            for piece, shape in zip(torch.split(flat, self.sizes), self.shapes, strict=True)
        ]
        if self.fixed_x_star is None:
            theta = pieces.pop(0)
            x_star = self.x_sp + self.scales.radius * theta @ self.basis.T
        else:
            theta, x_star = None, self.fixed_x_star
        return theta, x_star, self.scales.readout_of(*pieces)

    def penalty(self, flat: Tensor, readout_decay: float, state_prior: float) -> Tensor:
        """``(decay mean(C~^2) + prior ||X* - x_sp||^2 / (K n radius^2)) / training trials``."""
        theta, _, _ = self.unpack(flat)
        C_scaled = flat[-self.sizes[-1] - self.sizes[-2] : -self.sizes[-1]]
        total = readout_decay * C_scaled.pow(2).mean()
        if theta is not None:
            total = total + state_prior * theta.pow(2).sum() / (theta.shape[0] * self.x_sp.numel())
        return total / self.n_trials


@dataclass
class _PointFit:
    flat: Tensor
    point: GridPoint


def _fit_point(
    simulator: _Simulator,
    parameters: _Parameters,
    start: Tensor,
    train: _SplitCounts,
    val: _SplitCounts,
    null_deviance: float,
    readout_decay: float,
    state_prior: float,
    bins: int,
    config: SpikeFitConfig,
    callback: SpikeFitCallback | None,
    iteration_offset: int,
) -> _PointFit:
    """L-BFGS on one grid point's penalised cost, keeping the iterate with the best val NLL."""
    flat = start.clone().requires_grad_(True)
    seen: deque[tuple[Tensor, float, float]] = deque(maxlen=16)

    def cost(with_grad: bool) -> tuple[Tensor, float]:
        _, x_star, readout = parameters.unpack(flat)
        expected, log_expected = _expected_and_log(
            readout, simulator.rates(x_star, bins), simulator.bin_width
        )
        deviance = train.deviance(expected, log_expected)
        total = deviance / null_deviance + parameters.penalty(flat, readout_decay, state_prior)
        if not bool(torch.isfinite(total)):
            raise _DivergedError
        with torch.no_grad():
            val_deviance = float(val.deviance(expected, log_expected))
        seen.append(
            (
                flat.detach().clone(),
                train.nll_per_spike(float(deviance.detach())),
                val.nll_per_spike(val_deviance),
            )
        )
        if with_grad:
            total.backward()  # type: ignore[no-untyped-call]
        return total, float(total.detach())

    def recorded() -> tuple[float, float]:
        point = flat.detach()
        for remembered, train_nll, val_nll in reversed(seen):
            if torch.equal(remembered, point):
                return train_nll, val_nll
        raise RuntimeError("the accepted point was never evaluated")  # pragma: no cover

    def forward() -> float:
        return cost(with_grad=False)[1]

    try:
        with torch.no_grad():
            first = forward()
    except _DivergedError:
        raise DivergenceError("diverged at the first guess", iteration=0) from None
    train_nll, val_nll = map(list, zip(recorded(), strict=True))
    best_flat, best_val, best_iteration = flat.detach().clone(), val_nll[0], 0
    if callback is not None:
        callback(iteration_offset, first)

    def after(step: Iteration) -> str | None:
        nonlocal best_flat, best_val, best_iteration
        train_now, val_now = recorded()
        train_nll.append(train_now)
        val_nll.append(val_now)
        if callback is not None:
            callback(iteration_offset + step.number, step.cost)
        if val_now < best_val:
            best_flat, best_val, best_iteration = flat.detach().clone(), val_now, step.number
        return "early_stopping" if step.number - best_iteration >= config.patience else None

    driver = LBFGSDriver(
        RememberingClosure(flat, lambda: cost(with_grad=True)),
        forward,
        _stop_rules(config.relative_tolerance),
    )
    stop_reason = driver.run(
        config.max_iterations,
        before=first,
        after=after,
        on_divergence=lambda iteration: divergence_error(iteration, config.divergence_limit),
    )
    history = [first, *driver.history]
    point = GridPoint(
        readout_decay=readout_decay,
        state_prior=state_prior,
        best_val_nll=best_val,
        best_iteration=best_iteration,
        iterations=len(history) - 1,
        converged=stop_reason in _TOLERANCE_RULES,
        stop_reason=stop_reason,
        history=history,
        train_nll=train_nll,
        val_nll=val_nll,
    )
    return _PointFit(best_flat, point)


def _warm_start(
    W: Tensor,
    h: Tensor,
    x_sp: Tensor,
    train: _SplitCounts,
    in_train: Tensor,
    n_excitatory: int,
    config: SpikeFitConfig,
    bin_width: float,
    generator: torch.Generator,
) -> Tensor:
    """First guess of x* (K, n): the Gaussian fit of :mod:`lifrnn_core.data_fitting` to the
    training PSTHs (smoothed, spikes/s), or random states when ``warm_start_iterations`` is 0;
    conditions without training trials at ``x_sp``."""
    x_star = x_sp.expand(in_train.shape[0], -1).clone()
    if config.warm_start_iterations == 0:
        x_star[in_train] = random_initial_states(
            W, x_sp, int(in_train.sum()), generator, radius=config.state_radius, gain=config.gain
        )
        return x_star
    mean_counts = (train.sums / train.trials.clamp_min(1.0))[in_train]
    psth = gaussian_smooth(
        mean_counts.cpu().double().numpy() / bin_width, config.warm_start_smoothing, bin_width
    )
    gaussian = fit_to_data(
        W,
        h,
        x_sp,
        torch.from_numpy(psth).to(W),
        n_excitatory=n_excitatory,
        config=DataFitConfig(
            tau=config.tau,
            dt=bin_width,
            integration_dt=config.integration_dt,
            gain=config.gain,
            state_radius=config.state_radius,
            n_modes=config.n_modes,
            max_iterations=config.warm_start_iterations,
            divergence_limit=config.divergence_limit,
        ),
        generator=generator,
    )
    x_star[in_train] = gaussian.x_star
    return x_star


def _fit_conditions(
    simulator: _Simulator,
    parameters: _Parameters,
    start: Tensor,
    train: _SplitCounts,
    val: _SplitCounts,
    null_deviance: float,
    bins: int,
    config: SpikeFitConfig,
    callback: SpikeFitCallback | None,
) -> tuple[_PointFit, int, list[GridPoint]]:
    """Every grid point's condition fit, strongest regularisation first, each starting from the
    previous point's kept iterate; returns the one with the best val NLL and the whole grid."""
    settings = sorted(
        itertools.product(config.readout_decays, config.state_priors),
        key=lambda setting: (-setting[0], -setting[1]),
    )
    fits: list[_PointFit] = []
    offset = 0
    for readout_decay, state_prior in settings:
        fit = _fit_point(
            simulator,
            parameters,
            start,
            train,
            val,
            null_deviance,
            readout_decay,
            state_prior,
            bins,
            config,
            callback,
            offset,
        )
        offset += fit.point.iterations + 1
        fits.append(fit)
        start = fit.flat
        logger.info(
            "spike fit, decay %g, prior %g: val NLL %.5f nats/spike (iteration %d of %d, %s)",
            readout_decay,
            state_prior,
            fit.point.best_val_nll,
            fit.point.best_iteration,
            fit.point.iterations,
            fit.point.stop_reason,
        )
    chosen = min(range(len(fits)), key=lambda index: fits[index].point.best_val_nll)
    return fits[chosen], chosen, [fit.point for fit in fits]
