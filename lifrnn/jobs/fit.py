"""Runner of ``kind: "fit"`` jobs: fit optimal initial states ``x*`` and a readout ``C``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import load_matrix, write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.numerics import euler_step_metrics
from lifrnn.jobs.progress import FitProgress
from lifrnn.jobs.soc import build_from_spec, not_converged_message
from lifrnn.networks import load_network
from lifrnn.results import JobResult
from lifrnn.specs import FitSpec, MovementSpec, SOCSpec, spec_sha256
from lifrnn.specs.resources import fit_estimate, soc_estimate
from lifrnn_core.arm import hand_torques_for_reaches
from lifrnn_core.dynamics import background_input, gain_function, spontaneous_state
from lifrnn_core.errors import DivergenceError, InvalidNetworkError, NotConvergedError
from lifrnn_core.fitting import FitConfig, FitState, fit_initial_states
from lifrnn_core.trajectories import reach_trajectories

logger = logging.getLogger(__name__)

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
CHECKPOINT = "fit"
TYPICAL_SOC_ITERATIONS = {"hennequin2014": 2000, "kao2021": 200}
"""Iterations an SOC build usually takes at the default settings (n = 200)."""
RATE_LABELS = {"relu": "rate r(x) (a.u.)", "tanh_shifted": "rate r(x) − r₀ (Hz)"}
"""Axis label of the firing rates under each gain (docs/science.md §1)."""
TYPICAL_FIT_ITERATIONS = 5
"""L-BFGS iterations a fit usually takes (two to ten reaches)."""


def figure_seconds(movements: int) -> float:
    """Seconds to draw ``fit.png`` and write the files of a fit of ``movements`` reaches
    (measured on a 2-core machine: 0.55 s for two, 1.05 s for ten)."""
    return 0.4 + 0.065 * movements


def build_share(spec: FitSpec) -> float:
    """The share of the progress bar for building an inline network: its typical work over
    the whole job's (nominal operations, :mod:`lifrnn.specs.resources`); 0 for a stored one."""
    if not isinstance(spec.network, SOCSpec):
        return 0.0
    n = spec.network.n
    build = soc_estimate(n, TYPICAL_SOC_ITERATIONS[spec.network.method]).work
    fit = fit_estimate(
        n,
        len(spec.movements.directions_deg),
        spec.movements.steps(spec.dt),
        len(spec.output_weights),
        2 * TYPICAL_FIT_ITERATIONS,
        8,
    ).work
    return build / (build + fit)


def _network(
    spec: FitSpec, context: JobContext, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """W, n_excitatory and (for a saved fit) its spontaneous state."""
    if isinstance(spec.network, SOCSpec):
        share = build_share(spec)  # once, not on every SOC iteration's report
        initial = (
            context.input_path("network.initial_weights") if spec.network.initial_weights else None
        )
        result = build_from_spec(
            spec.network, lambda f, m: context.report(share * f, m), context, initial
        )
        if not result.converged:
            reason = not_converged_message(result.history, result.parameters.target_abscissa)
            raise NotConvergedError(f"the inline SOC network {reason}")
        W = torch.from_numpy(result.weights)
        return W.to(device, dtype), result.parameters.n_excitatory, None
    saved = load_network(context.input_path("network"))
    x_sp = saved.tensors.get("x_sp")
    W = torch.from_numpy(saved.W).to(device, dtype)
    if x_sp is not None:
        return W, saved.n_excitatory, torch.from_numpy(x_sp).to(device, dtype)
    return W, saved.n_excitatory, None


def targets_for(
    movements: MovementSpec,
    dt: float,
    dtype: torch.dtype,
    device: torch.device,
    targets_file: Path | None = None,
) -> torch.Tensor:
    """Target readout (movements, time, outputs) for ``movements`` sampled every ``dt``.

    ``targets_file``: the local copy of ``movements.targets_file`` when the spec names one.
    """
    n_time = movements.steps(dt)
    if movements.targets_file is not None:
        if targets_file is None:
            raise InvalidNetworkError("movements.targets_file: the stored file was not provided")
        targets = torch.from_numpy(load_matrix(targets_file, name="targets"))
        expected = (len(movements.directions_deg), n_time)
        if targets.dim() != 3 or tuple(targets.shape[:2]) != expected:
            raise InvalidNetworkError(
                f"movements.targets_file holds shape {tuple(targets.shape)}; expected "
                f"(movements, time, outputs) with (movements, time) = {expected}"
            )
        if not bool(torch.isfinite(targets).all()):
            raise InvalidNetworkError("movements.targets_file contains NaN or infinite values")
        return targets.to(device, dtype)
    reaches = reach_trajectories(
        movements.directions_deg,
        profile=movements.profile,
        beta=movements.beta,
        distance=movements.distance,
        duration=movements.duration,
        dt=dt,
        dtype=torch.float64,
    )
    if movements.target == "joint_torque":
        return hand_torques_for_reaches(reaches).to(device, dtype)
    return reaches.velocity.to(device, dtype)


def load_fit_state(context: JobContext, name: str, like: torch.Tensor) -> FitState | None:
    """The fit state saved as checkpoint ``name``, or None."""
    if context.checkpoints is None:
        return None
    saved = context.checkpoints.load(name)
    return None if saved is None else FitState.from_tensors(saved[0], saved[2], like)


def fit_state_saver(context: JobContext, name: str) -> Callable[[FitState], None]:
    """A ``checkpoint`` callback of :func:`fit_initial_states` saving to checkpoint ``name``."""

    def save(state: FitState) -> None:
        tensors, metadata = state.to_tensors()
        context.save_checkpoint(
            name, tensors, len(state.history), metadata, force=state.stop_reason is not None
        )

    return save


def run_fit(spec: FitSpec, context: JobContext) -> JobResult:
    """Fit ``x*`` and ``C``; write ``network.safetensors``, ``targets.safetensors``, ``fit.png``.

    A divergence ends the job as failed ("diverged at iteration i") and keeps the last finite
    initial states in ``last_finite.safetensors``.
    """
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    device, dtype = torch.device(spec.device), _DTYPES[spec.dtype]
    start = time.perf_counter()
    W, n_excitatory, x_sp = _network(spec, context, device, dtype)
    n = W.shape[0]
    generator = torch.Generator().manual_seed(spec.seed)
    if x_sp is None:
        x_sp = spontaneous_state(n, generator, dtype=dtype, device=device)
    h = background_input(W, x_sp, spec.gain)
    targets_file = (
        context.input_path("movements.targets_file") if spec.movements.targets_file else None
    )
    targets = targets_for(spec.movements, spec.dt, dtype, device, targets_file)
    config = FitConfig(
        tau=spec.tau,
        dt=spec.dt,
        gain=spec.gain,
        state_radius=spec.state_radius,
        output_weights=tuple(spec.output_weights),
        n_modes=spec.n_modes,
        max_iterations=spec.max_iterations,
        cost_tolerance=spec.cost_tolerance,
        relative_tolerance=spec.relative_tolerance,
    )
    base = build_share(spec)

    pace = FitProgress(
        spec.cost_tolerance,
        spec.relative_tolerance,
        spec.max_iterations,
        finish_seconds=figure_seconds(len(spec.movements.directions_deg)),
    )
    last = ["fitting initial states and readout"]

    def on_iteration(iteration: int, cost: float) -> None:
        last[0] = f"fit iteration {iteration}: motor cost {cost:.3g}"
        if iteration == 0:
            last[0] = f"first guess: motor cost {cost:.3g}"
        context.report(base + (1 - base) * pace.iteration(iteration, cost), last[0])
        context.record("cost", iteration, cost)

    def on_evaluation() -> None:
        context.report(base + (1 - base) * pace.evaluation(), last[0])

    metadata = {
        "kind": "fit",
        "n_excitatory": str(n_excitatory),
        "tau": str(spec.tau),
        "dt": str(spec.dt),
        "gain": spec.gain,
        "duration": str(spec.movements.duration),
        "directions_deg": spec.movements.directions_deg,
        "target": spec.movements.target,
        "movements": spec.movements.model_dump(mode="json"),
        "output_weights": spec.output_weights,
        "state_radius": str(spec.state_radius),
        "seed": str(spec.seed),
        "spec_sha256": spec_sha256(spec),
        "lifrnn_version": __version__,
    }
    context.report(base, "fitting initial states and readout")
    resume = load_fit_state(context, CHECKPOINT, W)
    if resume is not None:
        context.report(
            base,
            f"resuming the fit from its checkpoint at iteration {len(resume.history)}",
            milestone=True,
        )
    save = fit_state_saver(context, CHECKPOINT)

    try:
        result = fit_initial_states(
            W,
            h,
            x_sp,
            targets,
            n_excitatory=n_excitatory,
            config=config,
            generator=generator,
            callback=on_iteration,
            resume=resume,
            checkpoint=save,
            on_evaluation=on_evaluation,
        )
    except DivergenceError as error:
        tensors = {"W": W, "h": h, "x_sp": x_sp}
        if isinstance(error.last_finite, torch.Tensor):
            tensors["x_star"] = error.last_finite
        write_safetensors(
            context.artifact_path("last_finite.safetensors"),
            tensors,
            {**metadata, "diverged_at_iteration": str(error.iteration)},
        )
        return JobResult(
            kind="fit",
            status="failed",
            error=f"diverged: {error}",
            metrics={"diverged_at_iteration": error.iteration},
            artifacts=dict(context.artifacts),
        )
    seconds = time.perf_counter() - start
    write_safetensors(
        context.artifact_path("network.safetensors"),
        {
            "W": W,
            "h": h,
            "x_sp": x_sp,
            "C": result.C,
            "x_star": result.x_star,
            "targets": targets,
        },
        metadata,
    )
    write_safetensors(
        context.artifact_path("targets.safetensors"),
        {"targets": targets, "outputs": result.outputs},
        metadata,
    )
    time_axis = np.arange(targets.shape[1]) * spec.dt
    context.save_figure(
        "fit.png",
        FigureRecipe.of(
            "fit",
            time_axis,
            targets.cpu().double().numpy(),
            result.outputs.cpu().double().numpy(),
            result.states.cpu().double().numpy(),
            list(spec.movements.directions_deg),
            target_kind=spec.movements.target,
            dt=spec.dt,
            title=f"fit: {len(spec.movements.directions_deg)} reaches, n={n}",
            rates=gain_function(spec.gain)(result.states).cpu().double().numpy(),
            rate_label=RATE_LABELS[spec.gain],
            r2=result.r2,
            cost_history=result.history,
        ),
    )
    metrics = {
        "cost_move": result.cost_move,
        "cost": result.cost,
        "r2": result.r2,
        "r2_min": min(result.r2),
        # the first guess (random x*, its readout solved exactly): what optimising x* added
        "cost_move_initial": result.cost_move_initial,
        "cost_initial": result.cost_initial,
        "r2_initial": result.r2_initial,
        "r2_min_initial": min(result.r2_initial),
        "null_residual": result.null_residual,
        "iterations": result.iterations,
        "converged": result.converged,
        "stop_reason": result.stop_reason,
        "seconds": seconds,
        "x_star_norms": torch.linalg.norm(result.x_star - x_sp, dim=1).tolist(),
        "n": n,
        "n_excitatory": n_excitatory,
        **euler_step_metrics(W, spec.tau, spec.dt, logger),
    }
    error_message = None
    if not result.converged:
        error_message = (
            f"did not converge: motor cost {result.cost_move:.3g} after {result.iterations} "
            f"iterations ({result.stop_reason}); the network was saved"
        )
    return JobResult(
        kind="fit",
        status="succeeded" if result.converged else "failed",
        error=error_message,
        metrics=metrics,
        artifacts=dict(context.artifacts),
    )
