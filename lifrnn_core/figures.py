"""Matplotlib figures of lifrnn results (Agg backend: no display needed).

Each function takes plain arrays and returns a :class:`matplotlib.figure.Figure`; saving it is the
caller's business.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["fit_figure", "retrain_figure", "soc_figure"]


def soc_figure(
    eigenvalues_initial: np.ndarray,
    eigenvalues_final: np.ndarray,
    history: np.ndarray,
    target_abscissa: float,
    title: str = "",
) -> Figure:
    """Eigenvalue spectra of W before/after SOC optimisation and the abscissa per iteration.

    Args:
        eigenvalues_initial: (n,) complex eigenvalues of the initial W.
        eigenvalues_final: (n,) complex eigenvalues of the optimised W.
        history: (iterations + 1,) spectral abscissa after each iteration.
        target_abscissa: the stop threshold, drawn as a dashed line.
    """
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, values, label in (
        (axes[0], eigenvalues_initial, "initial W"),
        (axes[1], eigenvalues_final, "stability-optimised W"),
    ):
        ax.scatter(values.real, values.imag, s=6, color="tab:blue")
        ax.axvline(float(values.real.max()), color="tab:red", lw=0.8, label="abscissa")
        ax.axvline(1.0, color="gray", ls=":", lw=0.8, label="Re = 1")
        ax.set_xlabel("Re(λ)")
        ax.set_ylabel("Im(λ)")
        ax.set_title(label)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper left", fontsize=7)
    axes[2].plot(np.arange(len(history)), history, color="tab:blue")
    axes[2].axhline(target_abscissa, color="tab:red", ls="--", lw=0.8, label="target")
    if np.min(history) > 0:
        axes[2].set_yscale("log")
    axes[2].set_xlabel("iteration")
    axes[2].set_ylabel("spectral abscissa")
    axes[2].set_title("optimisation")
    axes[2].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    return figure


def _principal_components(states: np.ndarray, k: int) -> np.ndarray:
    """Project (movements, time, n) states on their top-k principal components."""
    flat = states.reshape(-1, states.shape[-1])
    centred = flat - flat.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return (centred @ components[:k].T).reshape(*states.shape[:2], k)


def fit_figure(
    time: np.ndarray,
    targets: np.ndarray,
    outputs: np.ndarray,
    states: np.ndarray,
    directions_deg: list[float],
    *,
    target_kind: str = "hand_velocity",
    dt: float,
    title: str = "",
) -> Figure:
    """Target vs produced movements and the population activity that produced them.

    Args:
        time: (time,) seconds from movement onset.
        targets, outputs: (movements, time, 2) target and produced readout (hand velocity in
            m/s, or joint torques in N m).
        states: (movements, time, n) potentials.
        directions_deg: one label per movement.
        target_kind: ``"hand_velocity"`` draws hand paths (velocity integrated) and speed
            profiles; other kinds draw the two outputs' norms.
        dt: sampling interval, seconds.
    """
    figure = Figure(figsize=(13, 7.5), layout="constrained")
    axes = figure.subplots(2, 3)
    colours = [f"C{k % 10}" for k in range(len(directions_deg))]
    velocity = target_kind == "hand_velocity"
    path_ax, speed_ax, out_ax = axes[0]
    for k, colour in enumerate(colours):
        if velocity:
            target_path = np.cumsum(targets[k], axis=0) * dt
            produced_path = np.cumsum(outputs[k], axis=0) * dt
            path_ax.plot(target_path[:, 0], target_path[:, 1], color=colour, lw=3, alpha=0.35)
            path_ax.plot(produced_path[:, 0], produced_path[:, 1], color=colour, lw=1.2)
        speed_ax.plot(time, np.linalg.norm(targets[k], axis=1), color=colour, lw=3, alpha=0.35)
        speed_ax.plot(time, np.linalg.norm(outputs[k], axis=1), color=colour, lw=1.2)
        for dim, style in ((0, "-"), (1, "--")):
            out_ax.plot(time, targets[k, :, dim], color=colour, lw=3, alpha=0.25, ls=style)
            out_ax.plot(time, outputs[k, :, dim], color=colour, lw=1.0, ls=style)
    if velocity:
        path_ax.set_title("hand paths (thick: target)")
        path_ax.set_xlabel("x (m)")
        path_ax.set_ylabel("y (m)")
        path_ax.set_aspect("equal", adjustable="datalim")
    else:
        path_ax.axis("off")
    speed_ax.set_title("speed profiles" if velocity else "output norm")
    speed_ax.set_xlabel("time from movement onset (s)")
    speed_ax.set_ylabel("m/s" if velocity else "N m")
    out_ax.set_title("readout (solid: dim 1, dashed: dim 2)")
    out_ax.set_xlabel("time (s)")

    units_ax, pc_ax, legend_ax = axes[1]
    sample = np.linspace(0, states.shape[-1] - 1, 12).astype(int)
    units_ax.plot(time, states[0][:, sample], lw=0.8)
    units_ax.set_title(f"12 units, movement {directions_deg[0]:g}°")
    units_ax.set_xlabel("time (s)")
    units_ax.set_ylabel("x (a.u.)")
    pcs = _principal_components(states, 2)
    for k, colour in enumerate(colours):
        pc_ax.plot(pcs[k, :, 0], pcs[k, :, 1], color=colour, lw=1.2)
        pc_ax.plot(pcs[k, 0, 0], pcs[k, 0, 1], "o", color=colour, ms=4)
    pc_ax.set_title("population activity, top 2 PCs (dot: x*)")
    pc_ax.set_xlabel("PC 1")
    pc_ax.set_ylabel("PC 2")
    legend_ax.axis("off")
    for k, colour in enumerate(colours):
        legend_ax.plot([], [], color=colour, label=f"{directions_deg[k]:g}°")
    legend_ax.legend(loc="center", title="direction", ncols=2)
    if title:
        figure.suptitle(title)
    return figure


def retrain_figure(
    old_targets: np.ndarray,
    new_targets: np.ndarray,
    outputs: dict[str, tuple[np.ndarray, np.ndarray]],
    old_directions: list[float],
    new_directions: list[float],
    *,
    dt: float,
) -> Figure:
    """Produced vs target hand paths and speed profiles of old and new reaches, per mode.

    Args:
        old_targets, new_targets: (movements, time, 2) target hand velocities, m/s.
        outputs: per retraining mode, (old outputs, new outputs), each (movements, time, 2).
        old_directions, new_directions: labels, degrees.
        dt: sampling interval, seconds.
    """
    modes = list(outputs)
    figure = Figure(figsize=(5.2 * len(modes), 8), layout="constrained")
    axes = np.atleast_2d(figure.subplots(2, len(modes), squeeze=False))
    time = np.arange(old_targets.shape[1]) * dt
    for column, mode in enumerate(modes):
        produced_old, produced_new = outputs[mode]
        path_ax, speed_ax = axes[0, column], axes[1, column]
        groups = (
            (old_targets, produced_old, old_directions, "black"),
            (new_targets, produced_new, new_directions, None),
        )
        for targets, produced, labels, fixed in groups:
            for k, label in enumerate(labels):
                colour = fixed or f"C{k % 10}"
                target_path = np.cumsum(targets[k], axis=0) * dt
                produced_path = np.cumsum(produced[k], axis=0) * dt
                path_ax.plot(target_path[:, 0], target_path[:, 1], color=colour, lw=3, alpha=0.3)
                path_ax.plot(
                    produced_path[:, 0],
                    produced_path[:, 1],
                    color=colour,
                    lw=1.2,
                    label=f"{label:g}°",
                )
                speed_ax.plot(
                    time, np.linalg.norm(targets[k], axis=1), color=colour, lw=3, alpha=0.3
                )
                speed_ax.plot(time, np.linalg.norm(produced[k], axis=1), color=colour, lw=1.2)
        path_ax.set_title(f"{mode}: hand paths (black: trained; thick: target)")
        path_ax.set_xlabel("x (m)")
        path_ax.set_ylabel("y (m)")
        path_ax.set_aspect("equal", adjustable="datalim")
        path_ax.legend(fontsize=7, ncols=2)
        speed_ax.set_title(f"{mode}: speed profiles")
        speed_ax.set_xlabel("time from movement onset (s)")
        speed_ax.set_ylabel("m/s")
    return figure
