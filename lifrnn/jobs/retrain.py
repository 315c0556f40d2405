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
from lifrnn.jobs.base import JobContext, JobResult
from lifrnn.jobs.fit import TYPICAL_FIT_ITERATIONS, fit_state_saver, load_fit_state, targets_for
from lifrnn.jobs.prepare import fitted_targets
from lifrnn.jobs.progress import FitProgress
from lifrnn.networks import SavedNetwork, load_network
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
)
from lifrnn_core.sequences import SequenceResult, run_sequence, shortest_interval
from lifrnn_core.trajectories import SEED_DIRECTIONS_DEG

logger = logging.getLogger(__name__)

_FITTED_TENSORS = ("W", "h", "x_sp", "C", "x_star")


CHECKPOINT_INITIAL = "retrain_initial_states"
CHECKPOINT_FULL = "retrain_full_network"


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
    return {
        "r2_new": result.r2_new,
        "r2_old": result.r2_old,
        "r2_new_min": min(result.r2_new),
        "r2_old_min": min(result.r2_old),
        "weight_change": result.weight_change,
        "spectral_abscissa_after": result.spectral_abscissa_after,
        "iterations": result.iterations,
        "seconds": seconds,
    }


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


def run_retrain(spec: RetrainSpec, context: JobContext) -> JobResult:
    """Retrain ``spec.network`` on new directions in the requested mode(s).

    Writes ``network.safetensors`` (the full-network result when that mode ran, else the
    initial-states one; its ``x_star`` stacks trained then new movements), for ``mode: both``
    also ``network_initial_states.safetensors``, ``targets.safetensors`` and ``retrain.png``.
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
    generator = torch.Generator().manual_seed(spec.seed)
    metrics: dict[str, Any] = {
        "new_directions_deg": new_directions,
        "trained_directions_deg": trained,
        "stability_bound": bound,
        "parent_sha256": parent_sha256,
    }
    # The initial-state fit takes about ten evaluations, each Adam step of the full network one.
    full_steps = spec.max_iterations if spec.mode != "initial_states" else 0
    first_share = 2 * TYPICAL_FIT_ITERATIONS / (2 * TYPICAL_FIT_ITERATIONS + full_steps)
    pace = FitProgress(config.cost_tolerance, config.relative_tolerance, config.max_iterations)
    last = ["initial_states: first guess"]

    def on_fit_iteration(iteration: int, cost: float) -> None:
        last[0] = f"initial_states step {iteration}: loss {cost:.3g}"
        context.report(first_share * pace.iteration(iteration, cost), last[0])
        context.record("cost", iteration, cost)

    def on_evaluation() -> None:
        context.report(first_share * pace.evaluation(), last[0])

    def on_adam_step(iteration: int, loss: float) -> None:
        fraction = first_share + (1 - first_share) * iteration / spec.max_iterations
        context.report(fraction, f"full_network step {iteration}: loss {loss:.3g}")
        context.record("loss", iteration, loss)

    results: dict[str, RetrainResult] = {}
    start = time.perf_counter()
    resume_initial = load_fit_state(context, CHECKPOINT_INITIAL, network.W)
    if resume_initial is not None:
        context.report(
            0.0,
            f"resuming initial_states from its checkpoint at step {len(resume_initial.history)}",
            milestone=True,
        )
    initial = retrain_initial_states(
        network,
        new_targets,
        old_targets,
        config=config,
        generator=generator,
        callback=on_fit_iteration,
        resume=resume_initial,
        checkpoint=fit_state_saver(context, CHECKPOINT_INITIAL),
        on_evaluation=on_evaluation,
    )
    if spec.mode != "full_network":
        results["initial_states"] = initial
        metrics["initial_states"] = _mode_metrics(initial, time.perf_counter() - start)
    if spec.mode != "initial_states":
        start = time.perf_counter()
        resume_full = _load_full_state(context, network.W)
        if resume_full is not None:
            context.report(
                first_share,
                f"resuming full_network from its checkpoint at step {len(resume_full.history)}",
                milestone=True,
            )
        full = retrain_full_network(
            network,
            new_targets,
            old_targets,
            config=config,
            new_x_star=initial.network.x_star[len(trained) :],
            callback=on_adam_step,
            resume=resume_full,
            checkpoint=lambda state: _save_full_state(context, state),
        )
        results["full_network"] = full
        metrics["full_network"] = _mode_metrics(full, time.perf_counter() - start)
    if len(results) == 2:
        metrics["comparison"] = _compare(results["initial_states"], results["full_network"])

    directions = trained + new_directions
    main = results.get("full_network", initial)
    sequence = None
    if spec.sequence is not None:
        context.report(0.97, "executing the sequence")
        sequence = _sequence(spec, main.network, movements, directions, dt, tau, saved)
        metrics["sequence"] = sequence.metrics
    all_targets = torch.cat([old_targets, new_targets])
    _save_network(context, "network.safetensors", main, base_metadata, directions, all_targets)
    if len(results) == 2:
        _save_network(
            context,
            "network_initial_states.safetensors",
            results["initial_states"],
            base_metadata,
            directions,
            all_targets,
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


def _compare(initial: RetrainResult, full: RetrainResult) -> dict[str, Any]:
    initial_mean = float(np.mean(initial.r2_new))
    full_mean = float(np.mean(full.r2_new))
    holds = all(f >= i for f, i in zip(full.r2_new, initial.r2_new, strict=True))
    summary = (
        f"full_network learns the new reaches at least as well as initial_states on every "
        f"direction (mean R^2 {full_mean:.4f} vs {initial_mean:.4f})"
        if holds
        else f"full_network does NOT beat initial_states on every direction (mean R^2 "
        f"{full_mean:.4f} vs {initial_mean:.4f})"
    )
    return {
        "full_network_at_least_as_good": holds,
        "r2_new_mean_initial_states": initial_mean,
        "r2_new_mean_full_network": full_mean,
        "summary": summary,
    }
