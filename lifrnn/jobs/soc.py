"""Runner of ``kind: "soc"`` jobs: build a stability-optimised circuit and save it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import load_matrix, write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.progress import SOCProgress
from lifrnn.results import JobResult
from lifrnn.specs import SOCSpec, spec_sha256
from lifrnn_core.amplification import EvokedEnergy, evoked_energy
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.soc import SOCResult, amplification, initial_weights, optimise_inhibition
from lifrnn_core.threads import blas_threads

logger = logging.getLogger(__name__)


def _amplification_or_none(W: np.ndarray) -> float | None:
    try:
        return amplification(W)
    except InvalidNetworkError:
        return None


def not_converged_message(history: Sequence[float] | np.ndarray, target: float) -> str:
    """Why a build stopped short and what to change, from its abscissa ``history`` (one entry
    per iteration, the initial network's first): how far it got, and either the iterations it
    still needs at its recent rate, or, when the abscissa has stopped falling, other settings."""
    start, final, iterations = float(history[0]), float(history[-1]), len(history) - 1
    share = (start - final) / (start - target) if start > target else 0.0
    window = max(10, iterations // 10)
    recent = float(history[max(0, iterations - window)])
    rate = (recent - final) / min(window, iterations) if iterations > 0 else 0.0
    needed = (final - target) / rate if rate > 0 else math.inf
    if needed <= 10 * max(iterations, 1):
        advice = (
            f"at its last rate ({rate:.2g} per iteration) it needs about {needed:,.0f} more "
            f"iterations: raise max_iterations to about {iterations + 1.2 * needed:,.0f}"
        )
    else:
        advice = (
            f"the abscissa has stopped falling ({final - recent:+.2g} over the last {window} "
            "iterations): more iterations will not help; a smaller rate may settle it, a larger "
            f"n leaves more room, or accept target_abscissa >= {final:.3g}"
        )
    return (
        f"did not converge: spectral abscissa {final:.4f} > target {target} after "
        f"{iterations} iterations (max_iterations), {share:.0%} of the way from {start:.3g}; "
        f"{advice}"
    )


EVOKED_ENERGY_MAX_N = 400
"""Largest network whose figure shows the evoked energy: it needs two Gramians, eigenvectors and
matrix exponentials (about 0.1 s at n = 200, growing as n^3); larger ones get a note instead."""


def evoked_energies(
    W: np.ndarray, reference: np.ndarray | None, seed: int
) -> tuple[dict[str, EvokedEnergy], str]:
    """Evoked energy of the SOC network and of ``reference`` (the random network scaled to the
    same abscissa) for the figure, or why it was skipped."""
    if W.shape[0] > EVOKED_ENERGY_MAX_N:
        return {}, f"evoked energy skipped for n > {EVOKED_ENERGY_MAX_N} (cost grows as n³)"
    rng = np.random.default_rng(seed)
    networks = {"SOC": W} if reference is None else {"SOC": W, "random, same α": reference}
    try:
        with blas_threads(1):  # small dense LAPACK calls: one thread is fastest
            energies = {
                name: evoked_energy(weights, rng, duration=4.0, steps=60)
                for name, weights in networks.items()
            }
        return energies, ""
    except InvalidNetworkError:
        return {}, "evoked energy undefined: W − I is not stable (abscissa ≥ 1)"


CHECKPOINT = "soc"
CHECKPOINT_EVERY = 100
"""SOC iterations between checkpoints (about 2 s at n=200)."""


def build_from_spec(
    spec: SOCSpec,
    report: Callable[[float, str], None],
    context: JobContext | None = None,
    initial_file: Path | None = None,
) -> SOCResult:
    """Build the SOC network ``spec`` describes, reporting progress as a fraction in [0, 1].

    ``initial_file``: the local copy of the spec's ``initial_weights`` file, if it names one.
    With a ``context`` that keeps checkpoints, W and the abscissa history are saved every
    :data:`CHECKPOINT_EVERY` iterations, and a run that finds a checkpoint resumes from it.
    """
    params = spec.parameters()
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    if spec.initial_weights and initial_file is None:
        raise InvalidNetworkError("initial_weights: the stored file was not provided")
    initial = load_matrix(initial_file) if initial_file is not None else None
    if initial is not None and initial.shape != (spec.n, spec.n):
        raise InvalidNetworkError(
            f"initial_weights has shape {initial.shape}, the spec says n={spec.n}"
        )
    pace = SOCProgress(
        params.target_abscissa, params.max_iterations, power_law=spec.method == "hennequin2014"
    )

    def on_step(iteration: int, abscissa: float) -> None:
        done = pace.update(iteration, abscissa)
        report(done, f"SOC iteration {iteration}: spectral abscissa {abscissa:.4f}")
        if context is not None:
            context.record("abscissa", iteration, abscissa)

    if initial is None:
        initial = initial_weights(params, np.random.default_rng(spec.seed))
    start, history = initial, np.empty(0)
    saved = context.load_checkpoint(CHECKPOINT) if context is not None else None
    if saved is not None:
        start, history = saved[0]["W"], saved[0]["history"]
        for iteration, abscissa in enumerate(history[1:], start=1):  # the pace so far
            pace.update(iteration, float(abscissa))
        logger.info("resuming the SOC build from its checkpoint at iteration %d", saved[1])
        report(0.0, f"resuming from the checkpoint at iteration {saved[1]}")
    else:
        report(0.0, "building initial network")

    def save(iteration: int, W: np.ndarray, abscissae: np.ndarray) -> None:
        if context is not None:
            context.save_checkpoint(CHECKPOINT, {"W": W, "history": abscissae}, iteration)

    result = optimise_inhibition(
        start,
        params,
        backend="sign" if spec.device == "cuda" else "schur",
        device=spec.device,
        callback=on_step,
        checkpoint=save,
        checkpoint_every=CHECKPOINT_EVERY,
        history=history.tolist(),
    )
    if saved is not None:  # the figure and metrics describe the whole build
        result.initial_weights = initial
        result.eigenvalues_initial = np.linalg.eigvals(initial)
    return result


def run_soc(spec: SOCSpec, context: JobContext) -> JobResult:
    """Build the SOC network of ``spec``; write ``network.safetensors`` and ``soc.png``.

    Not reaching the target abscissa within ``max_iterations`` is a failed job; W is saved all
    the same, so the work is not lost.
    """
    params = spec.parameters()
    start = time.perf_counter()
    initial = context.input_path("initial_weights") if spec.initial_weights else None
    result = build_from_spec(spec, context.report, context, initial)
    seconds = time.perf_counter() - start
    W = result.weights
    final_abscissa = float(result.eigenvalues_final.real.max())  # recomputed from the final W
    amplification_final = _amplification_or_none(W)
    # Reference: the initial random network scaled to the same spectral abscissa.
    amplification_random, scaled = None, None
    if result.history[0] > 0 and final_abscissa > 0:
        scaled = result.initial_weights * (final_abscissa / result.history[0])
        amplification_random = _amplification_or_none(scaled)
    metrics = {
        "spectral_abscissa": final_abscissa,
        "initial_abscissa": float(result.history[0]),
        "iterations": result.iterations,
        "converged": result.converged,
        "seconds": seconds,
        "inhibitory_density": result.inhibitory_density,
        "frobenius_norm": float(np.linalg.norm(W)),
        "amplification": amplification_final,
        "amplification_random": amplification_random,
        "n": spec.n,
        "n_excitatory": params.n_excitatory,
    }
    write_safetensors(
        context.artifact_path("network.safetensors"),
        {"W": W, "abscissa_history": result.history},
        {
            "kind": "soc",
            "n_excitatory": str(params.n_excitatory),
            "method": spec.method,
            "seed": str(spec.seed),
            "spec_sha256": spec_sha256(spec),
            "lifrnn_version": __version__,
        },
    )
    evoked, evoked_note = evoked_energies(W, scaled, spec.seed)
    context.save_figure(
        "soc.png",
        FigureRecipe.of(
            "soc",
            result.eigenvalues_initial,
            result.eigenvalues_final,
            result.history,
            params.target_abscissa,
            title=f"SOC {spec.method}, n={spec.n}, seed {spec.seed}",
            weights=W,
            n_excitatory=params.n_excitatory,
            evoked=evoked,
            evoked_note=evoked_note,
        ),
    )
    error = None
    if not result.converged:
        error = f"{not_converged_message(result.history, params.target_abscissa)}; W was saved"
    return JobResult(
        kind="soc",
        status="succeeded" if result.converged else "failed",
        error=error,
        metrics=metrics,
        artifacts=dict(context.artifacts),
    )
