"""The three retraining modes: new initial states alone (:func:`retrain_initial_states`), every
initial state and the readout (:func:`retrain_initial_states_and_readout`), and the whole network
(:func:`retrain_full_network`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lifrnn_core.dynamics import background_input, gain_function, simulate
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.fitting import (
    FitResult,
    FitState,
    admissible_readout,
    fit_initial_states,
    r_squared,
)
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.retraining.config import FittedNetwork, RetrainCallback, RetrainConfig
from lifrnn_core.retraining.constraints import (
    backtrack_to_bound,
    project_structure,
    structure_measures,
)
from lifrnn_core.retraining.reachability import Reachability, readout_reachability
from lifrnn_core.retraining.results import FullNetworkState, RetrainResult

__all__ = [
    "retrain_full_network",
    "retrain_initial_states",
    "retrain_initial_states_and_readout",
]

logger = logging.getLogger(__name__)


def _readout_of(
    network: FittedNetwork, x_star: Tensor, config: RetrainConfig, steps: int
) -> tuple[Tensor, Tensor]:
    states = simulate(
        network.W,
        x_star,
        tau=config.tau,
        dt=config.dt,
        steps=steps,
        h=network.h,
        gain=config.gain,
    )
    rates = gain_function(config.gain)(states[..., : network.n_excitatory])
    return states, rates @ network.C.T


def _with_w_frozen(
    mode: str,
    network: FittedNetwork,
    fit: FitResult,
    *,
    C: Tensor,
    x_star: Tensor,
    outputs_old: Tensor,
    outputs_new: Tensor,
    r2_old: list[float],
    r2_new: list[float],
    reachability: Reachability,
) -> RetrainResult:
    """The result of a mode that keeps W (and h, x_sp): ``network`` with readout ``C`` and
    initial states ``x_star``, trained by the L-BFGS ``fit`` (its iterations, history, stop)."""
    retrained = FittedNetwork(
        W=network.W,
        h=network.h,
        x_sp=network.x_sp,
        C=C,
        x_star=x_star,
        n_excitatory=network.n_excitatory,
    )
    return RetrainResult(
        mode=mode,
        network=retrained,
        outputs_old=outputs_old,
        outputs_new=outputs_new,
        r2_old=r2_old,
        r2_new=r2_new,
        weight_change=0.0,
        spectral_abscissa_after=spectral_abscissa(network.W),
        iterations=fit.iterations,
        history=fit.history,
        converged=fit.converged,
        stop_reason=fit.stop_reason,
        reachability=reachability,
    )


def retrain_initial_states(
    network: FittedNetwork,
    new_targets: Tensor,
    old_targets: Tensor,
    *,
    config: RetrainConfig,
    generator: torch.Generator,
    callback: RetrainCallback | None = None,
    resume: FitState | None = None,
    checkpoint: Callable[[FitState], None] | None = None,
    on_evaluation: Callable[[], None] | None = None,
) -> RetrainResult:
    """Learn new movements with W and C frozen: fit only their initial states.

    Args:
        network: the fitted network.
        new_targets: (new movements, time, outputs) targets of the novel reaches.
        old_targets: (old movements, time, outputs) targets the network was fitted on.
        callback, resume, checkpoint, on_evaluation: as for
            :func:`~lifrnn_core.fitting.fit_initial_states`.
    """
    reachability = readout_reachability(network.C, new_targets)
    logger.info("initial_states: %s", reachability.reason)
    fit = fit_initial_states(
        network.W,
        network.h,
        network.x_sp,
        new_targets,
        n_excitatory=network.n_excitatory,
        config=config.fit_config(),
        generator=generator,
        callback=callback,
        readout=network.C,
        resume=resume,
        checkpoint=checkpoint,
        on_evaluation=on_evaluation,
    )
    _, outputs_old = _readout_of(network, network.x_star, config, old_targets.shape[1] - 1)
    return _with_w_frozen(
        "initial_states",
        network,
        fit,
        C=network.C,
        x_star=torch.cat([network.x_star, fit.x_star]),
        outputs_old=outputs_old,
        outputs_new=fit.outputs,
        r2_old=r_squared(outputs_old, old_targets),
        r2_new=fit.r2,
        reachability=reachability,
    )


def retrain_initial_states_and_readout(
    network: FittedNetwork,
    new_targets: Tensor,
    old_targets: Tensor,
    *,
    config: RetrainConfig,
    generator: torch.Generator,
    callback: RetrainCallback | None = None,
    resume: FitState | None = None,
    checkpoint: Callable[[FitState], None] | None = None,
    on_evaluation: Callable[[], None] | None = None,
) -> RetrainResult:
    """Learn new movements with W frozen: fit every initial state and the readout C anew.

    The cost-to-go fit of :func:`~lifrnn_core.fitting.fit_initial_states` on old and new
    movements together (same Gramian basis, global norm, admissible C silent at every x* and
    x_sp); the old movements' x* are fitted again too, so ``r2_old`` measures forgetting.
    ``config.keep_old_weight`` does not apply (every movement weighs the same, as in a fit).

    Args:
        network: the fitted network (its W, h and x_sp are kept).
        new_targets: (new movements, time, outputs) targets of the novel reaches.
        old_targets: (old movements, time, outputs) targets the network was fitted on.
        callback, resume, checkpoint, on_evaluation: as for
            :func:`~lifrnn_core.fitting.fit_initial_states`.
    """
    if new_targets.shape[1:] != old_targets.shape[1:]:
        raise InvalidNetworkError("old and new movements must share their duration and outputs")
    reachability = readout_reachability(None, new_targets)
    targets = torch.cat([old_targets, new_targets.to(old_targets)])
    fit = fit_initial_states(
        network.W,
        network.h,
        network.x_sp,
        targets,
        n_excitatory=network.n_excitatory,
        config=config.fit_config(),
        generator=generator,
        callback=callback,
        resume=resume,
        checkpoint=checkpoint,
        on_evaluation=on_evaluation,
    )
    n_old = old_targets.shape[0]
    return _with_w_frozen(
        "initial_states_and_readout",
        network,
        fit,
        C=fit.C,
        x_star=fit.x_star,
        outputs_old=fit.outputs[:n_old],
        outputs_new=fit.outputs[n_old:],
        r2_old=fit.r2[:n_old],
        r2_new=fit.r2[n_old:],
        reachability=reachability,
    )


def _plateaued(history: list[float], patience: int, tolerance: float) -> bool:
    """True when the best loss of the last ``patience`` steps improved on the best before them
    by less than ``patience * tolerance`` (relative): Adam's loss is noisy step to step."""
    if len(history) <= patience:
        return False
    before, recent = min(history[:-patience]), min(history[-patience:])
    return recent >= before - patience * tolerance * abs(before)


def retrain_full_network(
    network: FittedNetwork,
    new_targets: Tensor,
    old_targets: Tensor,
    *,
    config: RetrainConfig,
    new_x_star: Tensor,
    old_x_star: Tensor | None = None,
    callback: RetrainCallback | None = None,
    inspect: Callable[[Tensor], None] | None = None,
    resume: FullNetworkState | None = None,
    checkpoint: Callable[[FullNetworkState], None] | None = None,
) -> RetrainResult:
    """Learn new movements by reorganising W, C and all initial states together.

    Every iteration evaluates the loss; it stops there, without a step, when the motor cost is
    below ``config.cost_tolerance`` (``cost_tolerance``) or the loss has stopped improving
    (``relative_tolerance``, see ``config.patience``); otherwise it takes one Adam step and
    projects W back onto its constraints. At ``config.max_iterations`` it stops unconverged.

    Args:
        network: the fitted network (W must already satisfy the stability bound).
        new_targets: (new movements, time, outputs).
        old_targets: (old movements, time, outputs).
        new_x_star: (new movements, n) starting initial states of the new movements (e.g. those
            of :func:`retrain_initial_states_and_readout`).
        old_x_star: (old movements, n) starting initial states of the old movements (default:
            the network's own).
        callback: called after every iteration with (iteration, loss); may raise.
        inspect: called with W (n, n) after every iteration, once its constraints are enforced.
        resume: a state saved by ``checkpoint``: training goes on from it exactly as if it
            had never stopped.
        checkpoint: called with the :class:`FullNetworkState` after every step and once more
            when training stops.

    Raises:
        InvalidNetworkError: when W breaks the stability bound before training starts, also
            once projected onto ``config.keep_structure``.
        DivergenceError: when the loss becomes non-finite.
    """
    W0, x_sp, n_e = network.W, network.x_sp, network.n_excitatory
    if new_targets.shape[1] != old_targets.shape[1]:
        raise InvalidNetworkError("old and new movements must share their duration")
    bound = config.stability_bound
    abscissa0 = spectral_abscissa(W0)
    if abscissa0 > bound:
        raise InvalidNetworkError(
            f"the network's spectral abscissa {abscissa0:.4f} already exceeds the stability "
            f"bound {bound}"
        )
    mask = (W0 != 0).to(W0.dtype) if config.keep_sparsity else None

    def project(W: Tensor) -> Tensor:
        return project_structure(W, n_e, mask, config.keep_structure, W0)

    W_start = project(W0)
    if config.keep_structure != "none" and spectral_abscissa(W_start) > bound:
        raise InvalidNetworkError(
            f"W projected onto its {config.keep_structure} structure has spectral abscissa "
            f"{spectral_abscissa(W_start):.4f} above the stability bound {bound}"
        )
    targets = torch.cat([old_targets, new_targets]).to(W0)
    n_old = old_targets.shape[0]
    n_total = targets.shape[0]
    # Per-movement weight, folded into rates and targets as its square root (the cost is
    # quadratic), so that the exact readout solve weighs movements like the loss does.
    movement_weight = torch.ones(n_total, dtype=W0.dtype, device=W0.device)
    movement_weight[:n_old] = config.keep_old_weight
    root_weight = movement_weight.sqrt()[:, None, None]
    output_weights = torch.tensor(config.output_weights, dtype=W0.dtype, device=W0.device)
    steps = targets.shape[1] - 1
    gain_fn = gain_function(config.gain)
    radius2 = x_sp.shape[0] * n_total * config.state_radius**2

    W = W_start.clone().requires_grad_(True)
    old_start = network.x_star if old_x_star is None else old_x_star
    displacement = (torch.cat([old_start.to(W0), new_x_star.to(W0)]) - x_sp).clone()
    displacement.requires_grad_(True)
    optimiser = torch.optim.Adam([W, displacement], lr=config.learning_rate)
    history: list[float] = []
    stop_reason = "max_iterations"
    if resume is not None:
        with torch.no_grad():
            W.copy_(resume.W.to(W0))
            displacement.copy_(resume.displacement.to(W0))
        history = list(resume.history)
        if resume.adam:
            for name, parameter in (("W", W), ("displacement", displacement)):
                optimiser.state[parameter] = {
                    "step": resume.adam["step"].clone().to(torch.float32).cpu(),
                    "exp_avg": resume.adam[f"{name}.exp_avg"].to(W0),
                    "exp_avg_sq": resume.adam[f"{name}.exp_avg_sq"].to(W0),
                }
        if resume.done:
            stop_reason = resume.stop_reason or "relative_tolerance"
    # The abscissa of the current W, known from its last check: the penalty (and its costly
    # eigenvalue gradient) is zero while it stays below 0.95 bound.
    abscissa = spectral_abscissa(W.detach())

    def state_now(done: bool) -> FullNetworkState:
        adam: dict[str, Tensor] = {}
        for name, parameter in (("W", W), ("displacement", displacement)):
            memory = optimiser.state.get(parameter, {})
            if memory:
                adam["step"] = memory["step"]
                adam[f"{name}.exp_avg"] = memory["exp_avg"]
                adam[f"{name}.exp_avg_sq"] = memory["exp_avg_sq"]
        return FullNetworkState(
            W=W.detach(),
            displacement=displacement.detach(),
            history=list(history),
            adam=adam,
            done=done,
            stop_reason=stop_reason if done else None,
        )

    def forward(
        W: Tensor, displacement: Tensor, abscissa: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        scale = math.sqrt(radius2) / torch.linalg.norm(displacement)
        x_star = x_sp + scale * displacement
        h = background_input(W, x_sp, config.gain)
        states = simulate(
            W, x_star, tau=config.tau, dt=config.dt, steps=steps, h=h, gain=config.gain
        )
        rates = gain_fn(states[..., :n_e])
        null_states = torch.cat([x_star, x_sp[None]])[:, :n_e].T
        C = admissible_readout(
            rates * root_weight,
            targets * root_weight,
            null_states,
            dt=config.dt,
            output_weights=output_weights,
        )
        outputs = rates @ C.T
        errors = ((outputs - targets) * output_weights).pow(2).sum(dim=(1, 2)) * config.dt
        motor = (errors * movement_weight).sum() / n_total
        loss = motor + C.pow(2).sum() / (2 * n_e)
        if abscissa > 0.95 * bound:
            excess = torch.linalg.eigvals(W).real.max() - 0.95 * bound
            loss = loss + config.stability_penalty * torch.relu(excess) ** 2
        return loss, motor, x_star, C, outputs, h

    finished = resume is not None and resume.done
    for iteration in range(len(history) + 1, 0 if finished else config.max_iterations + 1):
        optimiser.zero_grad()
        loss, motor, *_ = forward(W, displacement, abscissa)
        if not bool(torch.isfinite(loss)):
            raise DivergenceError(f"diverged at iteration {iteration}", iteration=iteration)
        history.append(float(loss.detach()))
        if float(motor.detach()) < config.cost_tolerance:
            stop_reason = "cost_tolerance"
        elif _plateaued(history, config.patience, config.relative_tolerance):
            stop_reason = "relative_tolerance"
        if stop_reason != "max_iterations":
            if inspect is not None:
                inspect(W.detach())
            if callback is not None:
                callback(iteration, history[-1])
            break
        loss.backward()  # type: ignore[no-untyped-call]
        previous = W.detach().clone()
        optimiser.step()
        with torch.no_grad():
            W.copy_(project(W))
            abscissa = backtrack_to_bound(W, previous, bound)
        if inspect is not None:
            inspect(W.detach())
        if checkpoint is not None:
            checkpoint(state_now(done=False))
        if callback is not None:
            callback(iteration, history[-1])
    if checkpoint is not None and not finished:
        checkpoint(state_now(done=True))

    with torch.no_grad():
        _, _, x_star, C, outputs, h = forward(W, displacement, abscissa)
    W_after = W.detach()
    retrained = FittedNetwork(
        W=W_after,
        h=h.detach(),
        x_sp=x_sp,
        C=C.detach(),
        x_star=x_star.detach(),
        n_excitatory=n_e,
    )
    outputs_old, outputs_new = outputs[:n_old], outputs[n_old:]
    iteration = len(history)
    logger.info(
        "full-network retraining: %d iterations, loss %.3g (%s)",
        iteration,
        history[-1],
        stop_reason,
    )
    before, after = structure_measures(W0, n_e), structure_measures(W_after, n_e)
    structure: dict[str, Any] = {
        "kept": config.keep_structure,
        "before": before,
        "after": after,
        "row_sum_deviation": float((W_after.sum(dim=1) - W0.sum(dim=1)).abs().max()),
        "ratio_deviation": max(
            abs(after["inhibition_ratio_e"] - before["inhibition_ratio_e"]),
            abs(after["inhibition_ratio_i"] - before["inhibition_ratio_i"]),
        ),
    }
    return RetrainResult(
        mode="full_network",
        network=retrained,
        outputs_old=outputs_old.detach(),
        outputs_new=outputs_new.detach(),
        r2_old=r_squared(outputs_old, targets[:n_old]),
        r2_new=r_squared(outputs_new, targets[n_old:]),
        weight_change=float(torch.linalg.norm(W_after - W0) / torch.linalg.norm(W0)),
        spectral_abscissa_after=spectral_abscissa(W_after),
        iterations=iteration,
        history=history,
        converged=stop_reason != "max_iterations",
        stop_reason=stop_reason,
        reachability=readout_reachability(None, new_targets),
        structure=structure,
    )
