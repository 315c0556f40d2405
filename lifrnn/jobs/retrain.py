"""Runner of ``kind: "retrain"`` jobs: learn novel (and sequential) movements on a fitted net."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.fit import TYPICAL_FIT_ITERATIONS, fit_state_saver, load_fit_state, targets_for
from lifrnn.jobs.prepare import fitted_targets
from lifrnn.jobs.progress import FitProgress
from lifrnn.networks import SavedNetwork, load_network
from lifrnn.results import JobResult
from lifrnn.specs import MovementSpec, RetrainSpec, spec_sha256
from lifrnn_core.control import preparatory_feedback
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.retraining import (
    FittedNetwork,
    FullNetworkState,
    RetrainConfig,
    RetrainResult,
    retrain_full_network,
    retrain_initial_states,
    retrain_initial_states_and_readout,
)
from lifrnn_core.sequences import SequenceResult, run_sequence, shortest_interval
from lifrnn_core.trajectories import SEED_DIRECTIONS_DEG

logger = logging.getLogger(__name__)

_FITTED_TENSORS = ("W", "h", "x_sp", "C", "x_star")


CHECKPOINT_INITIAL = "retrain_initial_states"
CHECKPOINT_READOUT = "retrain_initial_states_and_readout"
CHECKPOINT_FULL = "retrain_full_network"
CHECKPOINTS = {
    "initial_states": CHECKPOINT_INITIAL,
    "initial_states_and_readout": CHECKPOINT_READOUT,
}


def _fitted(saved: SavedNetwork, device: torch.device) -> FittedNetwork:
    missing = [name for name in _FITTED_TENSORS if name not in saved.tensors]
    if missing or "movements" not in saved.metadata:
        raise InvalidNetworkError(
            f"network: not a fitted network (missing {missing or ['movements metadata']}); "
            "retrain needs the network of a fit or retrain job"
        )
    tensors = {name: torch.from_numpy(saved.tensors[name]).to(device) for name in _FITTED_TENSORS}
    return FittedNetwork(n_excitatory=saved.n_excitatory, **tensors)


def _new_directions(spec: RetrainSpec, trained: list[float]) -> list[float]:
    if spec.directions_deg is not None:
        overlap = sorted(set(spec.directions_deg) & set(trained))
        if overlap:
            raise InvalidNetworkError(
                f"directions_deg {overlap} are already trained; list only new directions"
            )
        return list(spec.directions_deg)
    return [d for d in SEED_DIRECTIONS_DEG if all(abs(d - t) > 1e-9 for t in trained)]


def _mode_metrics(result: RetrainResult, seconds: float) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "r2_new": result.r2_new,
        "r2_old": result.r2_old,
        "r2_new_min": min(result.r2_new),
        "r2_old_min": min(result.r2_old),
        "weight_change": result.weight_change,
        "spectral_abscissa_after": result.spectral_abscissa_after,
        "iterations": result.iterations,
        "converged": result.converged,
        "stop_reason": result.stop_reason,
        "seconds": seconds,
    }
    if result.reachability is not None:
        metrics |= result.reachability.metrics()
    if result.structure:
        metrics["structure"] = result.structure
    return metrics


def _save_network(
    context: JobContext,
    name: str,
    result: RetrainResult,
    base_metadata: dict[str, Any],
    directions: list[float],
    targets: torch.Tensor,
) -> None:
    network = result.network
    movements = {**base_metadata["movements"], "directions_deg": directions}
    write_safetensors(
        context.artifact_path(name),
        {
            "W": network.W,
            "h": network.h,
            "x_sp": network.x_sp,
            "C": network.C,
            "x_star": network.x_star,
            "targets": targets,
        },
        {
            **base_metadata,
            "movements": movements,
            "retrain_mode": result.mode,
            "directions_deg": directions,
        },
    )


MODES = {
    "initial_states": ("initial_states",),
    "initial_states_and_readout": ("initial_states_and_readout",),
    "full_network": ("full_network",),
    "both": ("initial_states", "full_network"),
    "all": ("initial_states", "initial_states_and_readout", "full_network"),
}
"""The retraining modes each ``mode`` value runs, in order."""


def _stages(mode: str) -> list[str]:
    """Modes to compute in order: full_network starts from initial_states_and_readout's x*, which
    runs first (unreported unless asked for)."""
    wanted = MODES[mode]
    stages: list[str] = [m for m in ("initial_states", "initial_states_and_readout") if m in wanted]
    if "full_network" in wanted:
        if "initial_states_and_readout" not in stages:
            stages.append("initial_states_and_readout")
        stages.append("full_network")
    return stages


def _run_modes(
    spec: RetrainSpec,
    context: JobContext,
    network: FittedNetwork,
    targets: tuple[torch.Tensor, torch.Tensor],
    config: RetrainConfig,
    metrics: dict[str, Any],
) -> dict[str, RetrainResult]:
    """Run the modes ``spec.mode`` asks for, each resumable from its checkpoint; writes each
    reported mode's metrics into ``metrics`` and returns the reported results in order."""
    stages = _stages(spec.mode)
    # A fit-like stage takes about ten evaluations, each Adam step of the full network one.
    weights = [
        spec.max_iterations if stage == "full_network" else 2 * TYPICAL_FIT_ITERATIONS
        for stage in stages
    ]
    offsets = [sum(weights[:k]) / sum(weights) for k in range(len(stages) + 1)]
    computed: dict[str, RetrainResult] = {}
    for index, stage in enumerate(stages):
        share = (offsets[index], offsets[index + 1])
        start = time.perf_counter()
        if stage == "full_network":
            computed[stage] = _full_network(
                context, network, targets, config, computed["initial_states_and_readout"], share
            )
        else:
            computed[stage] = _fit_stage(stage, spec, context, network, targets, config, share)
        if stage in MODES[spec.mode]:
            metrics[stage] = _mode_metrics(computed[stage], time.perf_counter() - start)
    return {mode: computed[mode] for mode in stages if mode in MODES[spec.mode]}


def _fit_stage(
    stage: str,
    spec: RetrainSpec,
    context: JobContext,
    network: FittedNetwork,
    targets: tuple[torch.Tensor, torch.Tensor],
    config: RetrainConfig,
    share: tuple[float, float],
) -> RetrainResult:
    """``initial_states`` or ``initial_states_and_readout``: an L-BFGS fit with W frozen."""
    low, high = share
    name = CHECKPOINTS[stage]
    series = "cost" if stage == "initial_states" else "readout_cost"
    pace = FitProgress(config.cost_tolerance, config.relative_tolerance, config.max_iterations)
    last = [f"{stage}: first guess"]

    def on_fit_iteration(iteration: int, cost: float) -> None:
        last[0] = f"{stage} step {iteration}: loss {cost:.3g}"
        context.report(low + (high - low) * pace.iteration(iteration, cost), last[0])
        context.record(series, iteration, cost)

    def on_evaluation() -> None:
        context.report(low + (high - low) * pace.evaluation(), last[0])

    resume = load_fit_state(context, name, network.W)
    if resume is not None:
        context.report(
            low,
            f"resuming {stage} from its checkpoint at step {len(resume.history)}",
            milestone=True,
        )
    retrain = (
        retrain_initial_states if stage == "initial_states" else retrain_initial_states_and_readout
    )
    return retrain(
        network,
        targets[1],
        targets[0],
        config=config,
        # Each mode draws its first guess from the seed alone, whichever modes ran before it.
        generator=torch.Generator().manual_seed(spec.seed),
        callback=on_fit_iteration,
        resume=resume,
        checkpoint=fit_state_saver(context, name),
        on_evaluation=on_evaluation,
    )


def _full_network(
    context: JobContext,
    network: FittedNetwork,
    targets: tuple[torch.Tensor, torch.Tensor],
    config: RetrainConfig,
    start: RetrainResult,
    share: tuple[float, float],
) -> RetrainResult:
    """``full_network``, from the initial states of ``start`` (the W-frozen joint fit)."""
    low, high = share

    def on_adam_step(iteration: int, loss: float) -> None:
        fraction = low + (high - low) * iteration / config.max_iterations
        context.report(fraction, f"full_network step {iteration}: loss {loss:.3g}")
        context.record("loss", iteration, loss)

    resume = _load_full_state(context, network.W)
    if resume is not None:
        context.report(
            low,
            f"resuming full_network from its checkpoint at step {len(resume.history)}",
            milestone=True,
        )
    n_old = targets[0].shape[0]
    return retrain_full_network(
        network,
        targets[1],
        targets[0],
        config=config,
        new_x_star=start.network.x_star[n_old:],
        old_x_star=start.network.x_star[:n_old],
        callback=on_adam_step,
        resume=resume,
        checkpoint=lambda state: _save_full_state(context, state),
    )


def run_retrain(spec: RetrainSpec, context: JobContext) -> JobResult:
    """Retrain ``spec.network`` on new directions in the requested mode(s).

    Writes ``network.safetensors`` (the last mode's result: full_network when it ran; its
    ``x_star`` stacks trained then new movements), ``network_<mode>.safetensors`` for each
    earlier mode (``mode: both``: ``network_initial_states.safetensors``),
    ``targets.safetensors`` and ``retrain.png``.
    """
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    device = torch.device(spec.device)
    path = context.input_path("network")
    saved = load_network(path)
    network = _fitted(saved, device)
    trained = [float(d) for d in saved.meta("directions_deg")]
    movements = MovementSpec.model_validate(
        {**saved.meta("movements"), "directions_deg": trained, "targets_file": None}
    )
    dt, tau = float(saved.meta("dt")), float(saved.meta("tau"))
    new_directions = _new_directions(spec, trained)
    if not new_directions:
        raise InvalidNetworkError("no new direction to learn: every direction is trained")
    new_movements = movements.model_copy(update={"directions_deg": new_directions})
    old_targets = fitted_targets(saved, torch.float64, device)
    new_targets = targets_for(new_movements, dt, torch.float64, device)
    if old_targets.shape[2] != new_targets.shape[2]:
        raise InvalidNetworkError(
            f"network: fitted to {old_targets.shape[2]} outputs from a targets file; new reaches "
            f"have {new_targets.shape[2]} (hand velocity or joint torques)"
        )
    abscissa = float(torch.linalg.eigvals(network.W).real.max())
    bound = spec.stability_bound if spec.stability_bound is not None else min(abscissa + 0.05, 0.99)
    config = RetrainConfig(
        tau=tau,
        dt=dt,
        gain=saved.meta("gain"),
        state_radius=float(saved.meta("state_radius")),
        output_weights=tuple(saved.meta("output_weights")),
        max_iterations=spec.max_iterations,
        stability_bound=bound,
        keep_old_weight=spec.keep_old_weight,
        keep_sparsity=spec.keep_sparsity,
        learning_rate=spec.learning_rate,
        cost_tolerance=spec.cost_tolerance,
        relative_tolerance=spec.relative_tolerance,
        keep_structure=spec.keep_structure,
    )
    parent_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    base_metadata: dict[str, Any] = {
        **saved.metadata,
        "movements": saved.meta("movements"),
        "kind": "retrain",
        "parent_network": spec.model_dump(mode="json")["network"],
        "parent_sha256": parent_sha256,
        "stability_bound": str(bound),
        "seed": str(spec.seed),
        "spec_sha256": spec_sha256(spec),
        "lifrnn_version": __version__,
    }
    metrics: dict[str, Any] = {
        "new_directions_deg": new_directions,
        "trained_directions_deg": trained,
        "stability_bound": bound,
        "parent_sha256": parent_sha256,
    }
    results = _run_modes(spec, context, network, (old_targets, new_targets), config, metrics)
    if "initial_states" in results and "full_network" in results:
        metrics["comparison"] = _compare(results)

    directions = trained + new_directions
    main = results[list(results)[-1]]
    sequence = None
    if spec.sequence is not None:
        context.report(0.97, "executing the sequence")
        sequence = _sequence(spec, main.network, movements, directions, dt, tau, saved)
        metrics["sequence"] = sequence.metrics
    all_targets = torch.cat([old_targets, new_targets])
    _save_network(context, "network.safetensors", main, base_metadata, directions, all_targets)
    for mode, result in list(results.items())[:-1]:
        _save_network(
            context, f"network_{mode}.safetensors", result, base_metadata, directions, all_targets
        )
    write_safetensors(
        context.artifact_path("targets.safetensors"),
        {
            "targets_old": old_targets,
            "targets_new": new_targets,
            **{f"outputs_new_{mode}": r.outputs_new for mode, r in results.items()},
            **{f"outputs_old_{mode}": r.outputs_old for mode, r in results.items()},
        },
        {"dt": str(dt), "trained_directions_deg": trained, "new_directions_deg": new_directions},
    )
    if sequence is not None:
        write_safetensors(
            context.artifact_path("sequence.safetensors"),
            {
                "states": sequence.result.states,
                "outputs": sequence.result.outputs,
                "targets": sequence.targets,
            },
            {
                "dt": str(dt),
                "directions_deg": sequence.metrics["directions_deg"],
                "interval": str(spec.interval),
            },
        )
        context.save_figure(
            "sequence.png",
            FigureRecipe.of(
                "sequence",
                sequence.result.outputs.cpu().numpy(),
                sequence.targets.cpu().numpy(),
                sequence.metrics["directions_deg"],
                interval=spec.interval,
                dt=dt,
                title=f"sequence on the retrained network (n={network.W.shape[0]})",
            ),
        )
    context.save_figure(
        "retrain.png",
        _figure_recipe(
            network,
            results,
            (old_targets, new_targets),
            (trained, new_directions),
            dt=dt,
            bound=bound,
        ),
    )
    return JobResult(
        kind="retrain", status="succeeded", metrics=metrics, artifacts=dict(context.artifacts)
    )


def _figure_recipe(
    before: FittedNetwork,
    results: dict[str, RetrainResult],
    targets: tuple[torch.Tensor, torch.Tensor],
    directions: tuple[list[float], list[float]],
    *,
    dt: float,
    bound: float,
) -> FigureRecipe:
    """``retrain.png``: reaches per mode, losses, spectrum before/after against the stability
    bound, and the weight change (only when the full network was retrained)."""
    W_before = before.W.detach().cpu().double().numpy()
    spectra = {"before": np.linalg.eigvals(W_before)}
    change = None
    if "full_network" in results:
        W_after = results["full_network"].network.W.detach().cpu().double().numpy()
        spectra["after full_network"] = np.linalg.eigvals(W_after)
        change = W_after - W_before
    old, new = directions
    return FigureRecipe.of(
        "retrain",
        targets[0].cpu().numpy(),
        targets[1].cpu().numpy(),
        {
            mode: (r.outputs_old.cpu().numpy(), r.outputs_new.cpu().numpy())
            for mode, r in results.items()
        },
        old,
        new,
        dt=dt,
        title=(
            f"retraining: {len(new)} new on {len(old)} trained reaches, n={W_before.shape[0]}, "
            f"stability bound {bound:.3g}"
        ),
        histories={mode: r.history for mode, r in results.items()},
        spectra=spectra,
        stability_bound=bound,
        weight_change=change,
        n_excitatory=before.n_excitatory,
        r2={mode: (r.r2_old, r.r2_new) for mode, r in results.items()},
        best_r2_possible={
            mode: r.reachability.best_r2_possible
            for mode, r in results.items()
            if r.reachability is not None
        },
    )


def _load_full_state(context: JobContext, like: torch.Tensor) -> FullNetworkState | None:
    if context.checkpoints is None:
        return None
    saved = context.checkpoints.load(CHECKPOINT_FULL)
    return None if saved is None else FullNetworkState.from_tensors(saved[0], saved[2], like)


def _save_full_state(context: JobContext, state: FullNetworkState) -> None:
    tensors, metadata = state.to_tensors()
    context.save_checkpoint(CHECKPOINT_FULL, tensors, len(state.history), metadata, state.done)


@dataclass
class _Sequence:
    result: SequenceResult
    targets: torch.Tensor
    metrics: dict[str, Any]


def _sequence(
    spec: RetrainSpec,
    network: FittedNetwork,
    movements: MovementSpec,
    directions: list[float],
    dt: float,
    tau: float,
    saved: SavedNetwork,
) -> _Sequence:
    """Run ``spec.sequence`` on the retrained network with LQR preparation in the intervals."""
    assert spec.sequence is not None
    order = []
    for direction in spec.sequence:
        matches = [i for i, d in enumerate(directions) if abs(d - direction) < 1e-9]
        if not matches:
            raise InvalidNetworkError(
                f"sequence direction {direction:g} is neither trained nor among the new "
                f"directions {directions}"
            )
        order.append(matches[0])
    sequence_movements = movements.model_copy(update={"directions_deg": list(spec.sequence)})
    targets = targets_for(sequence_movements, dt, network.W.dtype, network.W.device)
    feedback = preparatory_feedback(
        network.W.cpu().numpy(), network.C.cpu().numpy(), network.n_excitatory
    )
    K = torch.from_numpy(feedback.K).to(network.W)
    gain = saved.meta("gain")
    result = run_sequence(
        network, order, targets, interval=spec.interval, tau=tau, dt=dt, gain=gain, K=K
    )
    gap = shortest_interval(
        network,
        order,
        targets,
        longest=spec.interval,
        step=max(dt, 0.01),
        r2_required=0.9,
        tau=tau,
        dt=dt,
        gain=gain,
        K=K,
    )
    metrics = {
        "directions_deg": list(spec.sequence),
        "interval": spec.interval,
        "controller": result.controller,
        "r2": result.segment_r2,
        "r2_min": min(result.segment_r2),
        "transition_error": result.transition_errors,
        "gap_needed": gap,
    }
    return _Sequence(result=result, targets=targets, metrics=metrics)


def _compare(results: dict[str, RetrainResult]) -> dict[str, Any]:
    """Does full_network learn the new reaches at least as well as initial_states (and, when it
    ran, initial_states_and_readout) on every direction? With each mode's mean R^2."""
    full = results["full_network"]
    means = {mode: float(np.mean(r.r2_new)) for mode, r in results.items()}
    holds = all(f >= i for f, i in zip(full.r2_new, results["initial_states"].r2_new, strict=True))
    summary = (
        f"full_network learns the new reaches at least as well as initial_states on every "
        f"direction (mean R^2 {means['full_network']:.4f} vs {means['initial_states']:.4f})"
        if holds
        else f"full_network does NOT beat initial_states on every direction (mean R^2 "
        f"{means['full_network']:.4f} vs {means['initial_states']:.4f})"
    )
    if "initial_states_and_readout" in results:
        summary += (
            f"; with W frozen but the readout adapting, mean R^2 "
            f"{means['initial_states_and_readout']:.4f}"
        )
    return {
        "full_network_at_least_as_good": holds,
        **{f"r2_new_mean_{mode}": mean for mode, mean in means.items()},
        "summary": summary,
    }
