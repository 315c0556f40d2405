"""Single trials: each trial's MAP initial state from its held-in counts
(:func:`infer_initial_states`), the prior width chosen by co-smoothing on training trials, the
readout refitted on their inferred trajectories, and the trial-to-trial variance explained."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.errors import DivergenceError
from lifrnn_core.lbfgs import LBFGSDriver, RememberingClosure
from lifrnn_core.spike_fitting.conditions import _Parameters
from lifrnn_core.spike_fitting.config import _TOLERANCE_RULES, SpikeFitConfig, _stop_rules
from lifrnn_core.spike_fitting.poisson import (
    PoissonReadout,
    _DivergedError,
    _expected_and_log,
    _poisson_nll,
    _predict,
    _Simulator,
)
from lifrnn_core.spike_fitting.results import InferredStates


def _minimise(
    parameter: Tensor,
    cost: Callable[[bool], tuple[Tensor, float]],
    max_iterations: int,
    tolerance: float,
) -> tuple[int, str]:
    """L-BFGS on ``cost(with_grad)`` over ``parameter`` until a stop rule or the limit; returns
    (iterations, stop reason). ``cost`` raises _DivergedError on blow-up, which passes through."""
    with torch.no_grad():
        before = cost(False)[1]
    driver = LBFGSDriver(
        RememberingClosure(parameter, lambda: cost(True)),
        lambda: cost(False)[1],
        _stop_rules(tolerance),
    )
    rule = driver.run(max_iterations, before=before)
    return len(driver.history), rule


def infer_initial_states(
    W: Tensor,
    h: Tensor,
    centres: Tensor,
    heldin_counts: Tensor | np.ndarray,
    readout: PoissonReadout,
    *,
    n_excitatory: int,
    prior_width: float,
    bin_width: float,
    config: SpikeFitConfig | None = None,
    basis: Tensor | None = None,
    initial: Tensor | None = None,
) -> InferredStates:
    """Each trial's MAP initial state given its held-in counts (and nothing else).

    Minimises, for all trials of a batch at once (one L-BFGS per ``config.trial_batch`` trials;
    the trials' terms do not interact), ``sum_i NLL(heldin_counts_i | x0_i) + ||x0_i -
    centre_i||^2 / (2 s^2)`` with ``x0_i = centre_i + s u_i V^T``, in the whitened ``u``.

    Args:
        W: (n, n) weights; dtype and device of the result.
        h: (n,) background input.
        centres: (trials, n) prior means: each trial's condition x*.
        heldin_counts: (trials, time, n_heldin) counts of the held-in neurons in the window (a
            tensor, or an integer array read a batch at a time in W's dtype).
        readout: Poisson readout of the held-in neurons, (n_heldin, n_excitatory).
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        prior_width: isotropic prior sd ``s`` of x0 around its centre (units of x); 0 returns
            the centres.
        bin_width: seconds per bin.
        config: tau, gain, Euler step, iteration limit, tolerance, batch size (None: defaults).
        basis: (n, modes) orthonormal directions x0 - centre may take (None: all n).
        initial: (trials, n) first guess (None: the centres).

    Returns:
        the states (trials, n), L-BFGS iterations over all batches, and whether every batch met
        ``config.inference_tolerance``.
    """
    config = config or SpikeFitConfig()
    centres = centres.detach().to(W)
    if prior_width == 0 or centres.shape[0] == 0:
        return InferredStates(centres.clone(), 0, True)
    simulator = _Simulator(W, h, n_excitatory, config, bin_width)
    readout = readout.detach()
    bins = heldin_counts.shape[1]
    identity = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    directions = identity if basis is None else basis.to(W)
    states, iterations, converged = [], 0, True
    for start in range(0, centres.shape[0], config.trial_batch):
        batch = slice(start, start + config.trial_batch)
        centre, y = centres[batch], torch.as_tensor(heldin_counts[batch]).to(W)
        saturated = torch.xlogy(y, y) - y
        first = centre if initial is None else initial[batch].detach().to(W)
        u = ((first - centre) @ directions / prior_width).requires_grad_(True)

        def cost(
            with_grad: bool,
            u: Tensor = u,
            centre: Tensor = centre,
            y: Tensor = y,
            saturated: Tensor = saturated,
        ) -> tuple[Tensor, float]:
            x0 = centre + prior_width * u @ directions.T
            rates = simulator.rates(x0, bins)
            expected, log_expected = _expected_and_log(readout, rates, bin_width)
            deviance = (expected - y * log_expected + saturated).sum(dtype=torch.float64)
            total = (deviance + 0.5 * u.pow(2).sum(dtype=torch.float64)) / centre.shape[0]
            if not bool(torch.isfinite(total)):
                raise _DivergedError
            if with_grad:
                total.backward()  # type: ignore[no-untyped-call]
            return total, float(total.detach())

        try:
            taken, rule = _minimise(
                u, cost, config.inference_iterations, config.inference_tolerance
            )
        except _DivergedError:
            raise DivergenceError(
                "single-trial inference diverged: activity became non-finite or exceeded "
                f"{config.divergence_limit:g}"
            ) from None
        iterations += taken
        converged = converged and rule in _TOLERANCE_RULES
        states.append((centre + prior_width * u.detach() @ directions.T).detach())
    return InferredStates(torch.cat(states), iterations, converged)


@dataclass(frozen=True)
class _TrainingTrials:
    """The training trials on which the prior width is chosen and the readout refitted."""

    centres: Tensor
    heldin: Tensor
    counts: Tensor


def _choose_prior_width(
    W: Tensor,
    h: Tensor,
    sample: _TrainingTrials,
    readout: PoissonReadout,
    n_heldin: int,
    n_excitatory: int,
    simulator: _Simulator,
    config: SpikeFitConfig,
    basis: Tensor,
) -> tuple[float, list[tuple[float, float]], Tensor, int]:
    """The width whose held-in inference best predicts the held-out neurons of ``sample``:
    (width, (width, held-out NLL per spike) per width, the sample's states at that width,
    iterations). Widths are tried in increasing order, each starting from the last's states,
    until one scores worse than the one before."""
    n_time = sample.heldin.shape[1]
    heldout = sample.counts[:, :n_time, n_heldin:]
    scores: list[tuple[float, float]] = []
    best: tuple[float, float, Tensor] | None = None
    states, iterations = sample.centres, 0
    for relative in sorted(config.prior_widths):
        width = relative * config.state_radius
        inferred = infer_initial_states(
            W,
            h,
            sample.centres,
            sample.heldin,
            readout.rows(slice(0, n_heldin)),
            n_excitatory=n_excitatory,
            prior_width=width,
            bin_width=simulator.bin_width,
            config=config,
            basis=basis,
            initial=states,
        )
        states, iterations = inferred.states, iterations + inferred.iterations
        predicted = _predict(
            simulator, states, readout.rows(slice(n_heldin, None)), n_time, config.trial_batch
        )
        scores.append((width, _poisson_nll(predicted, heldout)))
        if best is not None and scores[-1][1] >= best[1]:
            break  # past the optimum: the held-out likelihood is unimodal in the width
        best = (width, scores[-1][1], states)
    assert best is not None  # the grid is not empty (SpikeFitConfig)
    return best[0], scores, best[2], iterations


def _refit_readout(
    simulator: _Simulator,
    states: Tensor,
    counts: Tensor,
    readout: PoissonReadout,
    parameters: _Parameters,
    readout_decay: float,
    null_deviance: float,
    config: SpikeFitConfig,
) -> tuple[PoissonReadout, str]:
    """The readout of every neuron refitted on single trials: Poisson deviance of ``counts``
    (trials, bins, neurons) given the trajectories from ``states`` (trials, n), over
    ``null_deviance`` (the condition fit's, per trial, times the trials here: the same scale as
    the condition fit's cost, whose gradient this one's equals when all of a condition's trials
    share x*), plus the decay penalty; returns (readout, stop reason). The condition fit only
    sees the directions in which the conditions' trajectories differ; single trials visit
    others."""
    bins = counts.shape[1]
    with torch.no_grad():
        rates = torch.cat(
            [
                simulator.rates(states[i : i + config.trial_batch], bins)
                for i in range(0, states.shape[0], config.trial_batch)
            ]
        )
    saturated = torch.xlogy(counts, counts) - counts
    scales = parameters.scales
    flat = torch.cat([part.reshape(-1) for part in scales.scaled(readout)])
    flat = flat.detach().clone().requires_grad_(True)
    n_weights = readout.C.numel()

    def cost(with_grad: bool) -> tuple[Tensor, float]:
        C_scaled, b_scaled = flat[:n_weights].reshape(readout.C.shape), flat[n_weights:]
        candidate = scales.readout_of(C_scaled, b_scaled)
        expected, log_expected = _expected_and_log(candidate, rates, simulator.bin_width)
        deviance = (expected - counts * log_expected + saturated).sum(dtype=torch.float64)
        penalty = readout_decay * C_scaled.pow(2).mean() / parameters.n_trials
        total = deviance / null_deviance + penalty
        if with_grad:
            total.backward()  # type: ignore[no-untyped-call]
        return total, float(total.detach())

    _, stop_reason = _minimise(flat, cost, config.max_iterations, config.refit_tolerance)
    fitted = flat.detach()
    refitted = scales.readout_of(fitted[:n_weights].reshape(readout.C.shape), fitted[n_weights:])
    return refitted, stop_reason


def _variance_explained(
    counts: np.ndarray, psth: np.ndarray, single: np.ndarray, condition: np.ndarray
) -> tuple[float, float]:
    """(explained, explainable) share of ``counts - psth``: see :class:`SpikeFit`."""
    residual = counts - psth
    total = float((residual**2).sum())
    if counts.size == 0 or total <= 0:
        return math.nan, math.nan
    explained = 1.0 - float(((residual - (single - condition)) ** 2).sum()) / total
    return explained, 1.0 - float(psth.sum()) / total
