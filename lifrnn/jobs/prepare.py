"""Runner of ``kind: "prepare"`` jobs: prepare a fitted network's movements with several
controllers and compare them (docs/science.md §6)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.fit import targets_for
from lifrnn.networks import SavedNetwork, load_network
from lifrnn.results import JobResult
from lifrnn.specs import MovementSpec, PrepareSpec, spec_sha256
from lifrnn_core.control import (
    PreparatoryFeedback,
    ThalamicLoop,
    copy_gain_loop,
    preparatory_feedback,
    readout_gramian,
)
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.fitting import r_squared
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.preparation import (
    REACH_TOLERANCE,
    Trial,
    TrialTiming,
    fit_thalamic_loop,
    hold_input,
    preparation_cost,
    prepare_distance,
    prepare_metrics,
    run_trial,
)

logger = logging.getLogger(__name__)

_FITTED = ("W", "h", "x_sp", "C", "x_star")
_METADATA = ("tau", "dt", "gain", "n_excitatory", "duration", "directions_deg")
_FEEDBACK_SHARE = 0.3
"""Fraction of the progress bar given to the Riccati equation and the loop fit."""


def load_fitted_network(path: Path) -> SavedNetwork:
    """Load a fit job's network and check it holds everything preparation needs."""
    saved = load_network(path)
    missing = [name for name in _FITTED if name not in saved.tensors]
    missing += [f"metadata '{key}'" for key in _METADATA if key not in saved.metadata]
    if missing:
        raise InvalidNetworkError(
            f"network: not a fitted network (missing {', '.join(missing)}): preparation needs "
            "the initial states x* and readout C of a fit or retrain job's network"
        )
    return saved


def fitted_targets(saved: SavedNetwork, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The targets a fitted network was fitted to, (movements, time, outputs).

    Networks carry them (tensor ``targets``: the fit's exact targets, a targets file's
    included); older ones are rebuilt from the whole movement spec in their metadata.
    """
    if "targets" in saved.tensors:
        return torch.from_numpy(saved.tensors["targets"]).to(device, dtype)
    if "movements" not in saved.metadata:
        raise InvalidNetworkError("network: it records neither its targets nor its movements")
    movements = MovementSpec.model_validate(saved.meta("movements"))
    if movements.targets_file is not None:
        raise InvalidNetworkError(
            "network: fitted to a targets file it does not carry (made by an older lifrnn); "
            "fit it again"
        )
    movements = movements.model_copy(update={"directions_deg": saved.meta("directions_deg")})
    return targets_for(movements, float(saved.meta("dt")), dtype, device)


TABLE_MEASURES = (
    "prepare_distance",
    "state_distance",
    "input_energy",
    "reach_energy",
    "hold_energy",
    "preparation_cost",
    "motor_r2",
    "persistence",
)
"""Per-movement measures repeated in the metrics' ``table`` rows."""


def _per_movement(values: torch.Tensor) -> list[float]:
    return [float(v) for v in values.detach().cpu()]


def _thalamic_loop(
    spec: PrepareSpec,
    network: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    feedback: PreparatoryFeedback,
    n_excitatory: int,
    tau: float,
    gain: Any,
) -> tuple[ThalamicLoop, dict[str, Any]]:
    """The loop ``spec.loop_fit`` asks for and what its construction reports.

    "copy_gain": ``X Z Y`` copies ``K`` (:func:`copy_gain_loop`); "cost": ``X`` fitted to the
    preparation cost from that copy (:func:`fit_thalamic_loop`). ``network`` = (W, h, x_sp, x*).
    """
    W, h, x_sp, x_star = network
    generator = torch.Generator().manual_seed(spec.seed)
    if spec.loop_fit == "copy_gain":
        drives = hold_input(W, h, x_star, gain).cpu().numpy()
        loop = copy_gain_loop(
            feedback.K,
            n_excitatory,
            generator,
            drives=drives,
            density=spec.thalamic_density,
            tau_thalamus=spec.tau_thalamus,
            tau_relay=spec.tau_relay,
        )
        return loop, {"method": "copy_gain"}
    began = time.perf_counter()
    fit = fit_thalamic_loop(
        W,
        h,
        x_sp,
        x_star,
        feedback,
        n_excitatory,
        generator,
        tau=tau,
        gain=gain,
        density=spec.thalamic_density,
        tau_thalamus=spec.tau_thalamus,
        tau_relay=spec.tau_relay,
    )
    return fit.loop, {
        "method": "cost",
        "iterations": fit.iterations,
        "converged": fit.converged,
        "stop_reason": fit.stop_reason,
        "seconds": time.perf_counter() - began,
        "linearised_cost": [float(c) for c in fit.cost],
        "linearised_cost_copy_k": [float(c) for c in fit.initial_cost],
    }


def run_prepare(spec: PrepareSpec, context: JobContext) -> JobResult:
    """Run every controller of ``spec`` on every fitted movement and compare them.

    Artifacts: ``trials.safetensors`` (float32; per controller ``<name>.states``,
    ``<name>.inputs``, ``<name>.outputs``, ``<name>.distance`` (full state),
    ``<name>.prepare_distance`` (Kao's ``Q``); plus ``time`` and ``targets``),
    ``controllers.safetensors`` (the LQR gain ``K``, Riccati solution, ``Q``, the loop's
    ``Y``, ``Z``, ``X`` and thalamic offsets) and ``prepare.png``.
    """
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    device, dtype = torch.device(spec.device), torch.float64
    start = time.perf_counter()
    saved = load_fitted_network(context.input_path("network"))
    tau, dt = float(saved.meta("tau")), float(saved.meta("dt"))
    gain = saved.metadata["gain"]
    if gain not in ("relu", "tanh_shifted"):
        raise InvalidNetworkError(f"network: unknown gain {gain!r} in its metadata")
    n_excitatory = saved.n_excitatory
    directions = [float(d) for d in saved.meta("directions_deg")]
    tensors = {name: torch.from_numpy(saved.tensors[name]).to(device, dtype) for name in _FITTED}
    W, h, x_sp, C, x_star = (tensors[name] for name in _FITTED)
    n = W.shape[0]
    if x_star.dim() != 2 or x_star.shape[1] != n or C.shape[1] != n_excitatory:
        raise InvalidNetworkError(
            f"network: x* must be (movements, {n}) and C (outputs, {n_excitatory}); got "
            f"{tuple(x_star.shape)} and {tuple(C.shape)}"
        )
    timing = TrialTiming(
        spontaneous=spec.spontaneous,
        preparation=spec.preparation,
        delay=spec.delay,
        movement=spec.movement if spec.movement is not None else float(saved.meta("duration")),
        dt=dt,
    )
    for period in ("spontaneous", "preparation", "delay", "movement"):
        timing.steps(period)  # raises, naming the period, unless a whole number of steps
    targets = fitted_targets(saved, dtype, device)
    if targets.shape[0] != x_star.shape[0]:
        raise InvalidNetworkError(
            f"{targets.shape[0]} targets for {x_star.shape[0]} fitted initial states"
        )

    controllers = list(spec.controllers)
    W64, C64 = saved.W.astype(np.float64), saved.tensors["C"].astype(np.float64)
    context.report(0.0, "Riccati equation and readout Gramian")
    Q_readout = torch.from_numpy(readout_gramian(W64, C64, n_excitatory)).to(device, dtype)
    gains: dict[str, Any] = {"Q": Q_readout}
    metrics: dict[str, Any] = {
        "n": n,
        "n_excitatory": n_excitatory,
        "directions_deg": directions,
        "open_loop_abscissa": spectral_abscissa(W64 - np.eye(n)),
        "trial": {
            "spontaneous": timing.spontaneous,
            "preparation": timing.preparation,
            "delay": timing.delay,
            "movement": timing.movement,
            "dt": dt,
        },
    }
    K = None
    loop = None
    feedback = None
    if "lqr" in controllers or "thalamic_loop" in controllers:
        feedback = preparatory_feedback(W64, C64, n_excitatory, spec.r2, spec.state_weight)
        K = torch.from_numpy(feedback.K).to(device, dtype)
        gains.update(K=feedback.K, riccati_X=feedback.X, Q_lqr=feedback.Q)
        metrics["riccati_residual"] = feedback.residual
        metrics["closed_loop_abscissa"] = feedback.closed_loop_abscissa
        if "thalamic_loop" in controllers:
            context.report(0.05, f"thalamic loop ({spec.loop_fit})")
            loop, metrics["loop_fit"] = _thalamic_loop(
                spec, (W, h, x_sp, x_star), feedback, n_excitatory, tau, gain
            )
            gains.update(loop_Y=loop.Y, loop_Z=loop.Z, loop_X=loop.X)
            metrics["loop_gain_error"] = loop.error
            metrics["loop_gain_error_excitatory"] = loop.error_excitatory
            metrics["loop_closed_loop_abscissa"] = spectral_abscissa(
                W64 + loop.effective_gain - np.eye(n)
            )
    context.report(_FEEDBACK_SHARE, "controllers ready")

    trials: dict[str, Trial] = {}
    rows: list[dict[str, Any]] = []
    per_controller: dict[str, dict[str, Any]] = {}
    prepare_traces: dict[str, torch.Tensor] = {}
    cost_terms = None  # what the preparation cost weighs: the same for every controller
    if feedback is not None:
        cost_terms = (
            hold_input(W, h, x_star, gain),  # type: ignore[arg-type]
            torch.from_numpy(feedback.Q).to(device, dtype),
            feedback.r2,
            torch.from_numpy(feedback.X).to(device, dtype),
        )
    for index, name in enumerate(controllers):
        context.report(
            _FEEDBACK_SHARE + (1 - _FEEDBACK_SHARE) * index / len(controllers), f"{name}"
        )
        began = time.perf_counter()
        trial = run_trial(
            W,
            h,
            x_sp,
            x_star,
            C,
            n_excitatory=n_excitatory,
            controller=name,
            timing=timing,
            tau=tau,
            gain=gain,  # type: ignore[arg-type]
            K=K,
            loop=loop,
            go_cue_stimulus=spec.go_cue,
            min_energy_iterations=spec.min_energy_iterations,
        )
        seconds = time.perf_counter() - began
        if not bool(torch.isfinite(trial.states).all()):
            raise DivergenceError(f"controller {name}: the network's activity became non-finite")
        trials[name] = trial
        overlap = min(trial.outputs.shape[1], targets.shape[1])
        motor = r_squared(trial.outputs[:, :overlap], targets[:, :overlap])
        measures = prepare_metrics(trial.states, trial.inputs, x_star, x_sp, Q_readout, timing)
        entry: dict[str, Any] = {
            "prepare_distance": _per_movement(measures.prepare_distance),
            "state_distance": _per_movement(measures.state_distance),
            "reach_time": [None if np.isnan(t) else t for t in _per_movement(measures.reach_time)],
            "input_energy": _per_movement(measures.input_energy),
            "reach_energy": _per_movement(measures.reach_energy),
            "hold_energy": _per_movement(measures.hold_energy),
            "movement_energy": _per_movement(measures.movement_energy),
            "motor_r2": motor,
            "persistence": _per_movement(measures.persistence),
            "seconds": seconds,
        }
        if cost_terms is not None:
            begin = timing.steps("spontaneous")
            go = timing.go_step
            u_hold, Q_cost, r2, cost_to_go = cost_terms
            entry["preparation_cost"] = _per_movement(
                preparation_cost(
                    trial.states[:, begin : go + 1],
                    trial.inputs[:, begin:go],
                    x_star,
                    u_hold,
                    Q_cost,
                    r2,
                    tau=tau,
                    dt=dt,
                    cost_to_go=cost_to_go,
                )
            )
        if name == "min_energy":
            entry["shooting_iterations"] = trial.prepared.iterations
        if name == "thalamic_loop" and trial.prepared.offset is not None:
            gains["loop_offset"] = trial.prepared.offset
        per_controller[name] = entry
        prepare_traces[name] = prepare_distance(trial.states, x_star, x_sp, Q_readout)
        for k, direction in enumerate(directions):
            rows.append(
                {
                    "controller": name,
                    "direction_deg": direction,
                    **{key: entry[key][k] for key in TABLE_MEASURES if key in entry},
                }
            )
        logger.info(
            "%s: energy %s, prepare distance %s, motor R2 %s (%.2f s)",
            name,
            np.round(entry["input_energy"], 3).tolist(),
            np.round(entry["prepare_distance"], 4).tolist(),
            np.round(motor, 4).tolist(),
            seconds,
        )
    metrics["controllers"] = per_controller
    metrics["table"] = rows
    if "thalamic_loop" in per_controller and "lqr" in per_controller:
        loop_cost = per_controller["thalamic_loop"]["preparation_cost"]
        lqr_cost = per_controller["lqr"]["preparation_cost"]
        metrics["loop_cost_ratio"] = sum(loop_cost) / sum(lqr_cost)
        metrics["loop_cost_ratios"] = [a / b for a, b in zip(loop_cost, lqr_cost, strict=True)]
    metrics["checks"] = _checks(per_controller, metrics.get("loop_cost_ratio"))

    metadata = {
        "kind": "prepare",
        "network": spec.model_dump(mode="json")["network"],
        "controllers": controllers,
        "tau": str(tau),
        "dt": str(dt),
        "gain": gain,
        "n_excitatory": str(n_excitatory),
        "directions_deg": directions,
        "go_step": str(timing.go_step),
        "seed": str(spec.seed),
        "spec_sha256": spec_sha256(spec),
        "lifrnn_version": __version__,
    }
    time_axis = np.arange(timing.total_steps + 1) * dt
    arrays: dict[str, np.ndarray | torch.Tensor] = {
        "time": time_axis.astype(np.float32),
        "targets": targets.float(),
    }
    for label, trial in trials.items():
        arrays[f"{label}.states"] = trial.states.float()
        arrays[f"{label}.inputs"] = trial.inputs.float()
        arrays[f"{label}.outputs"] = trial.outputs.float()
        arrays[f"{label}.distance"] = trial.distance.float()
        arrays[f"{label}.prepare_distance"] = prepare_traces[label].float()
    write_safetensors(context.artifact_path("trials.safetensors"), arrays, metadata)
    write_safetensors(
        context.artifact_path("controllers.safetensors"),
        {key: torch.as_tensor(value).double() for key, value in gains.items()},
        metadata,
    )
    context.report(0.97, "figure")
    context.save_figure(
        "prepare.png",
        FigureRecipe.of(
            "prepare",
            time_axis,
            {name: torch.linalg.norm(t.inputs, dim=-1).cpu().numpy() for name, t in trials.items()},
            {name: d.cpu().numpy() for name, d in prepare_traces.items()},
            {name: t.input_energy.cpu().numpy() for name, t in trials.items()},
            {name: t.outputs.cpu().numpy() for name, t in trials.items()},
            targets.cpu().numpy(),
            directions,
            preparation_start=timing.spontaneous,
            go=timing.go_step * dt,
            dt=dt,
            title=f"preparation: {len(directions)} reaches, n={n}, delay {timing.delay:g} s",
            summary=per_controller,
        ),
    )
    metrics["seconds"] = time.perf_counter() - start
    return JobResult(
        kind="prepare", status="succeeded", metrics=metrics, artifacts=dict(context.artifacts)
    )


def _checks(
    per_controller: dict[str, dict[str, Any]], loop_cost_ratio: float | None
) -> dict[str, bool]:
    """The issues' expectations, evaluated on this run (reported, not enforced)."""
    checks: dict[str, bool] = {}
    for name in ("lqr", "min_energy"):
        if name in per_controller:
            entry = per_controller[name]
            checks[f"{name}_reaches_x_star"] = max(entry["prepare_distance"]) < REACH_TOLERANCE
            checks[f"{name}_motor_r2"] = min(entry["motor_r2"]) >= 0.95
    if "min_energy" in per_controller and "lqr" in per_controller:
        checks["min_energy_not_above_lqr"] = all(
            m <= q * (1 + 1e-9)
            for m, q in zip(
                per_controller["min_energy"]["input_energy"],
                per_controller["lqr"]["input_energy"],
                strict=True,
            )
        )
    if "feedforward" in per_controller:
        worst_other = [
            max(per_controller[name]["prepare_distance"])
            for name in ("lqr", "min_energy")
            if name in per_controller
        ]
        if worst_other:
            checks["feedforward_farther"] = min(
                per_controller["feedforward"]["prepare_distance"]
            ) > max(worst_other)
    if "thalamic_loop" in per_controller:
        checks["loop_motor_r2"] = min(per_controller["thalamic_loop"]["motor_r2"]) >= 0.95
        if loop_cost_ratio is not None:
            checks["loop_cost_within_1.5x_lqr"] = loop_cost_ratio <= 1.5
    return checks
