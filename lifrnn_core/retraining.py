"""Retraining a fitted network on novel movements (docs/science.md §7).

Three answers to the seed's open question — can a trained network learn reaches it never made by
shaping new initial conditions alone, or must the whole network reorganise?

- ``initial_states``: W and C frozen; only the new movements' initial states are fitted, with
  the same Gramian parametrisation and norm constraint as the original fit, and confined to
  directions the frozen readout does not see (it stays silent during preparation).
- ``initial_states_and_readout``: W frozen; every initial state (old and new) and C are fitted
  together on old and new movements, as a fit on the frozen W.
- ``full_network``: W, C and every initial state (old and new) change together. W keeps Dale's
  law exactly (excitatory columns >= 0, inhibitory columns <= 0, no autapses) and, optionally, its
  sparsity pattern and its SOC structure (kao2021 row sums, or hennequin2014's E/I mean ratios),
  by projection after every step; its spectral abscissa is kept at or below a bound by a penalty
  and, after every step, by backtracking toward the previous W. A weighted term keeps the old
  movements. The background input follows W so that the spontaneous state stays a fixed point.
  C is eliminated exactly at every step (the best admissible readout, as in the fit). The
  optimiser is Adam with projection (L-BFGS does not combine with projections); it stops when the
  motor cost falls below ``cost_tolerance`` or the best loss stops improving (reported as
  ``converged`` and ``stop_reason``, as in the fit).

Before training, :func:`readout_reachability` says whether the new targets are reachable at all
by a mode's readout: a frozen C reaches only outputs in its column span, so with a zero row (the
y-row after fitting 0° and 180° only) no initial state can produce a reach off the trained axis.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
from lifrnn_core.gramians import spectral_abscissa

__all__ = [
    "REACHABLE_R2",
    "FittedNetwork",
    "FullNetworkState",
    "Reachability",
    "RetrainConfig",
    "RetrainResult",
    "StructureName",
    "backtrack_to_bound",
    "project_dale",
    "project_structure",
    "readout_reachability",
    "retrain_full_network",
    "retrain_initial_states",
    "retrain_initial_states_and_readout",
    "structure_measures",
]

logger = logging.getLogger(__name__)

RetrainCallback = Callable[[int, float], None]
"""Called after every step with (iteration, loss); may raise to cancel."""

StructureName = Literal["none", "kao2021_row_sums", "hennequin2014_ratios"]
"""SOC structure kept by full-network retraining: none, every row sum of W as before training
(kao2021 networks: -10), or the inhibition-to-excitation ratios of the block means
``-mean(W_EI)/mean(W_EE)`` and ``-mean(W_II)/mean(W_IE)`` as before training (hennequin2014: gamma).
"""

REACHABLE_R2 = 0.99
"""A mode can reach the new targets in principle when its readout's span allows R^2 >= this on
every new movement."""


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
        keep_structure: SOC structure full_network keeps exactly by projection (see
            :data:`StructureName`).
        patience: full_network stops (``relative_tolerance``) when its best loss improved by
            less than ``patience * relative_tolerance`` (relative) over the last ``patience``
            steps; it stops (``cost_tolerance``) as soon as the motor cost is below
            ``cost_tolerance``.
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
    keep_structure: StructureName = "none"
    patience: int = 10

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


@dataclass(frozen=True)
class Reachability:
    """Whether a mode's readout can produce the new targets at all (before any training).

    Outputs are ``C r`` with ``r`` the excitatory rates; whatever the initial states, they stay
    in the column span of ``C``. With ``C`` frozen, projecting every target sample onto that
    span by least squares gives the best R^2 any initial state could reach (an upper bound: the
    rates are also non-negative and follow the dynamics). A readout that adapts spans every
    output direction.

    Attributes:
        reachable: every new movement's best possible R^2 is at least :data:`REACHABLE_R2`.
        best_r2_possible: best possible R^2 per new movement.
        readout_rank: numerical rank of the readout (outputs when it adapts).
        outputs: number of output dimensions.
        singular_values: singular values of the frozen readout (empty when it adapts).
        reason: one sentence saying why (not) reachable.
    """

    reachable: bool
    best_r2_possible: list[float]
    readout_rank: int
    outputs: int
    singular_values: list[float]
    reason: str

    def metrics(self) -> dict[str, Any]:
        """JSON-ready metrics: ``reachable``, ``best_r2_possible`` (worst new movement),
        ``best_r2_possible_per_movement``, ``readout_rank``, ``reachability_reason``."""
        return {
            "reachable": self.reachable,
            "best_r2_possible": min(self.best_r2_possible),
            "best_r2_possible_per_movement": self.best_r2_possible,
            "readout_rank": self.readout_rank,
            "reachability_reason": self.reason,
        }


@dataclass
class RetrainResult:
    """Outcome of a retraining run.

    Attributes:
        mode: ``"initial_states"``, ``"initial_states_and_readout"`` or ``"full_network"``.
        network: the retrained network; its ``x_star`` stacks old then new movements.
        outputs_old, outputs_new: (movements, time, outputs) readouts after retraining.
        r2_old, r2_new: R^2 per movement after retraining (old: forgetting; new: learning).
        weight_change: ||W_after - W_before||_F / ||W_before||_F.
        spectral_abscissa_after: spectral abscissa of W after retraining.
        iterations: optimisation steps taken.
        history: loss after every step.
        converged: whether a stop rule (not the iteration limit) ended the training.
        stop_reason: which rule ended it (``cost_tolerance``, ``relative_tolerance``,
            ``stalled`` or ``max_iterations``).
        reachability: whether the mode's readout can reach the new targets at all.
        structure: SOC structure of W before and after (see :func:`structure_measures`) with
            ``kept`` (the constraint) and the largest deviations; empty for frozen-W modes.
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
    converged: bool = True
    stop_reason: str = "relative_tolerance"
    reachability: Reachability | None = None
    structure: dict[str, Any] = field(default_factory=dict)


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
        stop_reason: the rule that stopped it (set with ``done``).
    """

    W: Tensor
    displacement: Tensor
    history: list[float] = field(default_factory=list)
    adam: dict[str, Tensor] = field(default_factory=dict)
    done: bool = False
    stop_reason: str | None = None

    def to_tensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The state as named tensors and string metadata (for safetensors)."""
        tensors = {
            "W": self.W.detach().clone(),
            "displacement": self.displacement.detach().clone(),
            "history": torch.tensor(self.history, dtype=torch.float64),
            **{f"adam.{key}": value.detach().clone() for key, value in self.adam.items()},
        }
        metadata = {"done": "true" if self.done else "false"}
        if self.stop_reason is not None:
            metadata["stop_reason"] = self.stop_reason
        return tensors, metadata

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
            stop_reason=metadata.get("stop_reason"),
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


def backtrack_to_bound(W: Tensor, previous: Tensor, bound: float) -> float:
    """Move W (in place) back toward ``previous``, halving the step until W's spectral abscissa
    is at most ``bound`` (back to ``previous`` itself if 20 halvings do not do); returns the
    abscissa of the W kept. A convex combination of two matrices meeting the same linear and
    sign constraints (Dale's law, a zero pattern, row sums) meets them too.

    Args:
        W: (n, n) weights after an optimiser step and its projection.
        previous: (n, n) the admissible weights before that step.
        bound: the largest spectral abscissa allowed.
    """
    fraction = 1.0
    abscissa = spectral_abscissa(W)
    while abscissa > bound and fraction > 1e-6:
        fraction /= 2.0
        W.copy_(previous + fraction * (W - previous))
        abscissa = spectral_abscissa(W)
    if abscissa > bound:
        W.copy_(previous)
        abscissa = spectral_abscissa(W)
    return abscissa


def readout_reachability(
    readout: Tensor | None, targets: Tensor, *, output_names: tuple[str, ...] = ("x", "y")
) -> Reachability:
    """Can a readout produce ``targets`` at all? The measured answer and its reason.

    Args:
        readout: (outputs, n_e) frozen readout C, or None when the mode adapts C (then every
            output direction is reachable).
        targets: (movements, time, outputs) new targets.
        output_names: names of the output dimensions, for the reason (hand velocity: x, y).

    Returns:
        The :class:`Reachability`: best possible R^2 per movement is that of the least-squares
        projection of every target sample onto the column span of ``readout``.
    """
    n_outputs = targets.shape[-1]
    if readout is None:
        return Reachability(
            reachable=True,
            best_r2_possible=[1.0] * targets.shape[0],
            readout_rank=n_outputs,
            outputs=n_outputs,
            singular_values=[],
            reason=f"the readout adapts: its {n_outputs} rows can span every output direction",
        )
    C = readout.detach().to(torch.float64).cpu()
    left, singular, _ = torch.linalg.svd(C, full_matrices=False)
    tolerance = (
        max(C.shape)
        * torch.finfo(C.dtype).eps
        * (float(singular.max()) if singular.numel() else 0.0)
    )
    rank = int((singular > tolerance).sum())
    span = left[:, :rank]  # (outputs, rank) orthonormal basis of C's column span
    flat = targets.detach().to(torch.float64).cpu()
    projected = flat @ span @ span.T
    best = r_squared(projected, flat)
    reachable = min(best) >= REACHABLE_R2
    if rank == n_outputs:
        reason = f"the frozen readout has full rank {rank}: it can produce any output direction"
    else:
        row_norms = torch.linalg.norm(C, dim=1).tolist()
        rows = ", ".join(
            f"{output_names[i] if i < len(output_names) else i} {norm:.2g}"
            for i, norm in enumerate(row_norms)
        )
        worst = int(torch.tensor(best).argmin())
        reason = (
            f"the frozen readout has rank {rank} of {n_outputs} (row norms {rows}): outputs "
            f"outside its span cannot be produced from any initial state; least squares on its "
            f"span gives at best R^2 {best[worst]:.3g} on new movement {worst}"
        )
        if reachable:
            reason += ", enough: the new targets lie in that span"
    return Reachability(
        reachable=reachable,
        best_r2_possible=best,
        readout_rank=rank,
        outputs=n_outputs,
        singular_values=[float(v) for v in singular],
        reason=reason,
    )


def structure_measures(W: Tensor, n_excitatory: int) -> dict[str, float]:
    """The SOC structure of W: its row sums' range and the block-mean inhibition ratios.

    Returns:
        ``row_sum_min``, ``row_sum_max`` (kao2021 networks: -10 both) and
        ``inhibition_ratio_e`` = ``-mean(W_EI)/mean(W_EE)``, ``inhibition_ratio_i`` =
        ``-mean(W_II)/mean(W_IE)`` (hennequin2014 networks: gamma both; means over whole
        blocks, zeros included).
    """
    n_e = n_excitatory
    rows = W.detach().sum(dim=1)
    blocks = W.detach()
    ee, ei = blocks[:n_e, :n_e].mean(), blocks[:n_e, n_e:].mean()
    ie, ii = blocks[n_e:, :n_e].mean(), blocks[n_e:, n_e:].mean()
    return {
        "row_sum_min": float(rows.min()),
        "row_sum_max": float(rows.max()),
        "inhibition_ratio_e": float(-ei / ee) if float(ee) != 0 else math.nan,
        "inhibition_ratio_i": float(-ii / ie) if float(ie) != 0 else math.nan,
    }


def _bounds(W: Tensor, n_excitatory: int, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-entry lower and upper bounds of Dale's law, no autapses and ``mask``."""
    n = W.shape[0]
    inf = torch.full_like(W, math.inf)
    lower = torch.zeros_like(W)
    upper = inf.clone()
    lower[:, n_excitatory:] = -math.inf
    upper[:, n_excitatory:] = 0.0
    closed = torch.eye(n, dtype=torch.bool, device=W.device)
    if mask is not None:
        closed = closed | (mask == 0)
    lower[closed] = 0.0
    upper[closed] = 0.0
    return lower, upper


def _project_groups(
    values: Tensor, weights: Tensor, totals: Tensor, lower: Tensor, upper: Tensor
) -> Tensor:
    """Nearest point (Euclidean) to each row of ``values`` within [lower, upper] whose
    ``weights``-weighted sum is ``totals``: ``clip(v + lambda a)`` with one lambda per row,
    found by bisection and then solved exactly on the entries left inside their bounds.

    All arguments are (groups, m) except ``totals`` (groups,); weights are >= 0.
    """

    def clipped(lam: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(values + lam[:, None] * weights, lower), upper)

    def weighted_sum(lam: Tensor) -> Tensor:
        return (clipped(lam) * weights).sum(dim=1)

    spread = float(values.abs().max()) + float(totals.abs().max()) + 1.0
    scale = float(weights[weights > 0].min()) if bool((weights > 0).any()) else 1.0
    low = torch.full_like(totals, -spread / scale)
    high = torch.full_like(totals, spread / scale)
    for _ in range(64):
        if not bool((weighted_sum(low) > totals).any()):
            break
        low = torch.where(weighted_sum(low) > totals, 2 * low, low)
    for _ in range(64):
        if not bool((weighted_sum(high) < totals).any()):
            break
        high = torch.where(weighted_sum(high) < totals, 2 * high, high)
    if bool((weighted_sum(low) > totals).any() or (weighted_sum(high) < totals).any()):
        raise InvalidNetworkError(
            "the SOC structure cannot be kept: a row (block) has no free connection of the "
            "sign its sum needs (e.g. a negative row sum with no inhibitory input)"
        )
    for _ in range(100):
        middle = (low + high) / 2
        below = weighted_sum(middle) < totals
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    lam = (low + high) / 2
    # The weighted sum is piecewise linear in lambda: with the entries that are inside their
    # bounds at lambda known, one linear equation gives lambda exactly (up to rounding).
    result = clipped(lam)
    free = (result > lower) & (result < upper) & (weights > 0)
    fixed_sum = (torch.where(free, 0.0, result) * weights).sum(dim=1)
    free_sum = (torch.where(free, values, 0.0) * weights).sum(dim=1)
    norm2 = (torch.where(free, weights, 0.0) ** 2).sum(dim=1)
    exact = (totals - fixed_sum - free_sum) / norm2.clamp(min=torch.finfo(values.dtype).tiny)
    solved = free & (norm2 > 0)[:, None]
    exact_values = torch.minimum(torch.maximum(values + exact[:, None] * weights, lower), upper)
    return torch.where(solved, exact_values, result)


def project_structure(
    W: Tensor,
    n_excitatory: int,
    mask: Tensor | None,
    structure: StructureName,
    reference: Tensor,
) -> Tensor:
    """Nearest matrix (Frobenius) obeying Dale's law, no autapses, ``mask`` and ``structure``.

    Args:
        W: (n, n) weights, columns presynaptic.
        n_excitatory: the first units are excitatory.
        mask: (n, n) 1 where a connection may exist, or None.
        structure: ``"none"`` (as :func:`project_dale`), ``"kao2021_row_sums"`` (each row sums
            to ``reference``'s row sum) or ``"hennequin2014_ratios"`` (``-mean(W_EI)/mean(W_EE)``
            and ``-mean(W_II)/mean(W_IE)`` equal ``reference``'s).
        reference: (n, n) the weights whose structure is kept (before training).

    Returns:
        A new (n, n) tensor; the row sums or ratios hold to rounding (~1e-14 relative).
    """
    if structure == "none":
        return project_dale(W, n_excitatory, mask)
    lower, upper = _bounds(W, n_excitatory, mask)
    n_e = n_excitatory
    if structure == "kao2021_row_sums":
        totals = reference.sum(dim=1).to(W)
        return _project_groups(W, torch.ones_like(W), totals, lower, upper)
    # hennequin2014: mean(W_EI) + g_e mean(W_EE) = 0 on the E rows and mean(W_II) + g_i
    # mean(W_IE) = 0 on the I rows: one linear constraint per row block, with weights >= 0
    # (g / |E block| on excitatory entries, 1 / |I block| on inhibitory ones).
    ratios = structure_measures(reference, n_e)
    if not all(math.isfinite(ratios[k]) for k in ("inhibition_ratio_e", "inhibition_ratio_i")):
        raise InvalidNetworkError(
            "hennequin2014_ratios needs excitation in both row blocks of W (mean(W_EE) and "
            "mean(W_IE) nonzero) to define the ratios it keeps"
        )
    n = W.shape[0]
    projected = torch.empty_like(W)
    for rows, gamma in (
        (slice(0, n_e), ratios["inhibition_ratio_e"]),
        (slice(n_e, n), ratios["inhibition_ratio_i"]),
    ):
        block = W[rows]
        weights = torch.empty_like(block)
        weights[:, :n_e] = gamma / (block.shape[0] * n_e)
        weights[:, n_e:] = 1.0 / (block.shape[0] * (n - n_e))
        result = _project_groups(
            block.reshape(1, -1),
            weights.reshape(1, -1),
            torch.zeros(1, dtype=W.dtype, device=W.device),
            lower[rows].reshape(1, -1),
            upper[rows].reshape(1, -1),
        )
        projected[rows] = result.reshape(block.shape)
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
        spectral_abscissa_after=spectral_abscissa(network.W),
        iterations=fit.iterations,
        history=fit.history,
        converged=fit.converged,
        stop_reason=fit.stop_reason,
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
    retrained = FittedNetwork(
        W=network.W,
        h=network.h,
        x_sp=network.x_sp,
        C=fit.C,
        x_star=fit.x_star,
        n_excitatory=network.n_excitatory,
    )
    return RetrainResult(
        mode="initial_states_and_readout",
        network=retrained,
        outputs_old=fit.outputs[:n_old],
        outputs_new=fit.outputs[n_old:],
        r2_old=fit.r2[:n_old],
        r2_new=fit.r2[n_old:],
        weight_change=0.0,
        spectral_abscissa_after=spectral_abscissa(network.W),
        iterations=fit.iterations,
        history=fit.history,
        converged=fit.converged,
        stop_reason=fit.stop_reason,
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
