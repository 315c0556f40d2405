"""Retraining a fitted network on novel movements (docs/science.md §7).

Two answers to the seed's open question — can a trained network learn reaches it never made by
shaping new initial conditions alone, or must the whole network reorganise?

- ``initial_states``: W and C frozen; only the new movements' initial states are fitted, with
  the same Gramian parametrisation and norm constraint as the original fit, and confined to
  directions the frozen readout does not see (it stays silent during preparation).
- ``full_network``: W, C and every initial state (old and new) change together. W keeps Dale's
  law exactly (excitatory columns >= 0, inhibitory columns <= 0, no autapses) and, optionally, its
  sparsity pattern, by projection after every step; its spectral abscissa is kept at or below a
  bound by a penalty and, after every step, by backtracking toward the previous W. A weighted term
  keeps the old movements. The background input follows W so that the spontaneous state stays a
  fixed point. C is eliminated exactly at every step (the best admissible readout, as in the fit).
  The optimiser is Adam with projection (L-BFGS does not combine with projections).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, background_input, gain_function, simulate
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.fitting import (
    FitConfig,
    FitState,
    admissible_readout,
    fit_initial_states,
    r_squared,
)

__all__ = [
    "FittedNetwork",
    "FullNetworkState",
    "RetrainConfig",
    "RetrainResult",
    "project_dale",
    "retrain_full_network",
    "retrain_initial_states",
]

logger = logging.getLogger(__name__)

RetrainCallback = Callable[[int, float], None]
"""Called after every step with (iteration, loss); may raise to cancel."""


@dataclass(frozen=True)
class FittedNetwork:
    """A fitted network: everything needed to re-simulate its movements.

    Attributes:
        W: (n, n) weights, columns presynaptic.
        h: (n,) background input.
        x_sp: (n,) spontaneous state.
        C: (outputs, n_excitatory) readout.
        x_star: (movements, n) initial states of the trained movements.
        n_excitatory: number of excitatory units (the first).
    """

    W: Tensor
    h: Tensor
    x_sp: Tensor
    C: Tensor
    x_star: Tensor
    n_excitatory: int


@dataclass(frozen=True)
class RetrainConfig:
    """Settings of a retraining run (simulation settings as in :class:`FitConfig`).

    Attributes:
        stability_bound: the spectral abscissa of W never exceeds this (full_network).
        keep_old_weight: weight of the old movements' error relative to the new ones'.
        keep_sparsity: full_network keeps W's zero pattern (True) or may grow connections.
        learning_rate: Adam step on W and the initial states (full_network).
        stability_penalty: weight of ``relu(abscissa - 0.95 bound)^2`` in the loss.
    """

    tau: float = 0.15
    dt: float = 1e-3
    gain: GainName = "relu"
    state_radius: float = 0.2
    output_weights: tuple[float, ...] = (1.0, 3.0)
    max_iterations: int = 200
    cost_tolerance: float = 1e-4
    relative_tolerance: float = 1e-4
    stability_bound: float = 0.9
    keep_old_weight: float = 1.0
    keep_sparsity: bool = True
    learning_rate: float = 2e-3
    stability_penalty: float = 10.0

    def fit_config(self) -> FitConfig:
        """The matching configuration of the cost-to-go fit."""
        return FitConfig(
            tau=self.tau,
            dt=self.dt,
            gain=self.gain,
            state_radius=self.state_radius,
            output_weights=self.output_weights,
            max_iterations=self.max_iterations,
            cost_tolerance=self.cost_tolerance,
            relative_tolerance=self.relative_tolerance,
        )


@dataclass
class RetrainResult:
    """Outcome of a retraining run.

    Attributes:
        mode: ``"initial_states"`` or ``"full_network"``.
        network: the retrained network; its ``x_star`` stacks old then new movements.
        outputs_old, outputs_new: (movements, time, outputs) readouts after retraining.
        r2_old, r2_new: R^2 per movement after retraining (old: forgetting; new: learning).
        weight_change: ||W_after - W_before||_F / ||W_before||_F.
        spectral_abscissa_after: spectral abscissa of W after retraining.
        iterations: optimisation steps taken.
        history: loss after every step.
    """

    mode: str
    network: FittedNetwork
    outputs_old: Tensor
    outputs_new: Tensor
    r2_old: list[float]
    r2_new: list[float]
    weight_change: float
    spectral_abscissa_after: float
    iterations: int
    history: list[float] = field(default_factory=list)


@dataclass
class FullNetworkState:
    """Everything :func:`retrain_full_network` needs to go on exactly where it stopped.

    Attributes:
        W: (n, n) current weights (constraints enforced).
        displacement: (movements, n) current ``x* - x_sp`` before normalisation.
        history: loss after each step so far (its length is the step count).
        adam: Adam's moments per parameter (``W.exp_avg``, ``W.exp_avg_sq``,
            ``displacement.exp_avg``, ``displacement.exp_avg_sq``) and ``step``.
        done: True once the run has stopped; resuming then only evaluates the result.
    """

    W: Tensor
    displacement: Tensor
    history: list[float] = field(default_factory=list)
    adam: dict[str, Tensor] = field(default_factory=dict)
    done: bool = False

    def to_tensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The state as named tensors and string metadata (for safetensors)."""
        tensors = {
            "W": self.W.detach().clone(),
            "displacement": self.displacement.detach().clone(),
            "history": torch.tensor(self.history, dtype=torch.float64),
            **{f"adam.{key}": value.detach().clone() for key, value in self.adam.items()},
        }
        return tensors, {"done": "true" if self.done else "false"}

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, Any], metadata: dict[str, str], like: Tensor
    ) -> FullNetworkState:
        """Rebuild a state saved by :meth:`to_tensors`; tensors take ``like``'s dtype/device."""

        def load(name: str) -> Tensor:
            return torch.as_tensor(tensors[name]).to(like.device)

        return cls(
            W=load("W").to(like.dtype),
            displacement=load("displacement").to(like.dtype),
            history=[float(v) for v in torch.as_tensor(tensors["history"]).tolist()],
            adam={key[5:]: load(key) for key in tensors if key.startswith("adam.")},
            done=metadata.get("done") == "true",
        )


def project_dale(W: Tensor, n_excitatory: int, mask: Tensor | None = None) -> Tensor:
    """Nearest matrix (Frobenius) obeying Dale's law on columns, no autapses, and ``mask``.

    Excitatory columns are clipped at 0 from below, inhibitory columns from above, the diagonal
    and (if given) entries where ``mask`` is False are set to zero. Returns a new tensor.
    """
    projected = torch.cat(
        [W[:, :n_excitatory].clamp(min=0.0), W[:, n_excitatory:].clamp(max=0.0)], dim=1
    )
    projected = projected * (1.0 - torch.eye(W.shape[0], dtype=W.dtype, device=W.device))
    if mask is not None:
        projected = projected * mask
    return projected


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


def _spectral_abscissa(W: Tensor) -> float:
    return float(torch.linalg.eigvals(W.detach()).real.max())


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
    retrained = FittedNetwork(
        W=network.W,
        h=network.h,
        x_sp=network.x_sp,
        C=network.C,
        x_star=torch.cat([network.x_star, fit.x_star]),
        n_excitatory=network.n_excitatory,
    )
    return RetrainResult(
        mode="initial_states",
        network=retrained,
        outputs_old=outputs_old,
        outputs_new=fit.outputs,
        r2_old=r_squared(outputs_old, old_targets),
        r2_new=fit.r2,
        weight_change=0.0,
        spectral_abscissa_after=_spectral_abscissa(network.W),
        iterations=fit.iterations,
        history=fit.history,
    )


def retrain_full_network(
    network: FittedNetwork,
    new_targets: Tensor,
    old_targets: Tensor,
    *,
    config: RetrainConfig,
    new_x_star: Tensor,
    callback: RetrainCallback | None = None,
    inspect: Callable[[Tensor], None] | None = None,
    resume: FullNetworkState | None = None,
    checkpoint: Callable[[FullNetworkState], None] | None = None,
) -> RetrainResult:
    """Learn new movements by reorganising W, C and all initial states together.

    Args:
        network: the fitted network (W must already satisfy the stability bound).
        new_targets: (new movements, time, outputs).
        old_targets: (old movements, time, outputs).
        new_x_star: (new movements, n) starting initial states of the new movements (e.g. those
            of :func:`retrain_initial_states`).
        callback: called after every step with (iteration, loss); may raise.
        inspect: called with W (n, n) after every step, once its constraints are enforced.
        resume: a state saved by ``checkpoint``: training goes on from it exactly as if it
            had never stopped.
        checkpoint: called with the :class:`FullNetworkState` after every step and once more
            when training stops.

    Raises:
        InvalidNetworkError: when W breaks the stability bound before training starts.
        DivergenceError: when the loss becomes non-finite.
    """
    W0, x_sp, n_e = network.W, network.x_sp, network.n_excitatory
    if new_targets.shape[1] != old_targets.shape[1]:
        raise InvalidNetworkError("old and new movements must share their duration")
    abscissa0 = _spectral_abscissa(W0)
    if abscissa0 > config.stability_bound:
        raise InvalidNetworkError(
            f"the network's spectral abscissa {abscissa0:.4f} already exceeds the stability "
            f"bound {config.stability_bound}"
        )
    mask = (W0 != 0).to(W0.dtype) if config.keep_sparsity else None
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

    W = W0.clone().requires_grad_(True)
    displacement = (torch.cat([network.x_star, new_x_star.to(W0)]) - x_sp).clone()
    displacement.requires_grad_(True)
    optimiser = torch.optim.Adam([W, displacement], lr=config.learning_rate)
    history: list[float] = []
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
        )

    def forward(W: Tensor, displacement: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
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
        abscissa = torch.linalg.eigvals(W).real.max()
        penalty = torch.relu(abscissa - 0.95 * config.stability_bound) ** 2
        loss = motor + C.pow(2).sum() / (2 * n_e) + config.stability_penalty * penalty
        return loss, x_star, C, outputs, h

    iteration = len(history)
    finished = resume is not None and resume.done
    for iteration in range(len(history) + 1, 0 if finished else config.max_iterations + 1):
        optimiser.zero_grad()
        loss, *_ = forward(W, displacement)
        if not bool(torch.isfinite(loss)):
            raise DivergenceError(f"diverged at iteration {iteration}", iteration=iteration)
        loss.backward()  # type: ignore[no-untyped-call]
        previous = W.detach().clone()
        optimiser.step()
        with torch.no_grad():
            W.copy_(project_dale(W, n_e, mask))
            # Backtrack toward the previous (admissible) W until the bound holds: a convex
            # combination of two Dale matrices with the same mask is again one.
            fraction = 1.0
            while _spectral_abscissa(W) > config.stability_bound and fraction > 1e-6:
                fraction /= 2.0
                W.copy_(previous + fraction * (W - previous))
            if _spectral_abscissa(W) > config.stability_bound:
                W.copy_(previous)
        history.append(float(loss.detach()))
        if inspect is not None:
            inspect(W.detach())
        stop = len(history) > 1 and abs(history[-2] - history[-1]) <= (
            config.relative_tolerance * history[-2]
        )
        if checkpoint is not None and not stop:
            checkpoint(state_now(done=False))
        if callback is not None:
            callback(iteration, history[-1])
        if stop:
            break
    if checkpoint is not None and not finished:
        checkpoint(state_now(done=True))

    with torch.no_grad():
        _, x_star, C, outputs, h = forward(W, displacement)
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
    logger.info("full-network retraining: %d steps, loss %.3g", iteration, history[-1])
    return RetrainResult(
        mode="full_network",
        network=retrained,
        outputs_old=outputs_old.detach(),
        outputs_new=outputs_new.detach(),
        r2_old=r_squared(outputs_old, targets[:n_old]),
        r2_new=r_squared(outputs_new, targets[n_old:]),
        weight_change=float(torch.linalg.norm(W_after - W0) / torch.linalg.norm(W0)),
        spectral_abscissa_after=_spectral_abscissa(W_after),
        iterations=iteration,
        history=history,
    )
