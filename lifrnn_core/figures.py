"""Matplotlib figures of lifrnn results (Agg backend: no display needed).

Each function takes plain arrays and returns a :class:`matplotlib.figure.Figure`; saving it is the
caller's business.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["fit_figure", "preparation_figure", "retrain_figure", "soc_figure"]


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


def preparation_figure(
    time: np.ndarray,
    input_norms: dict[str, np.ndarray],
    distances: dict[str, np.ndarray],
    energies: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    targets: np.ndarray,
    directions_deg: list[float],
    *,
    preparation_start: float,
    go: float,
    dt: float,
    title: str = "",
) -> Figure:
    """Controllers side by side: inputs, distance to ``x*``, energy and the produced reaches.

    Args:
        time: (time,) seconds from the trial start (states' time axis).
        input_norms: controller -> (movements, time - 1) ``||u(t)||``.
        distances: controller -> (movements, time) ``||x - x*|| / ||x* - x_sp||``.
        energies: controller -> (movements,) ``integral ||u||^2 dt``.
        outputs: controller -> (movements, movement time, 2) hand velocity produced, m/s.
        targets: (movements, movement time, 2) target hand velocity, m/s.
        directions_deg: one label per movement.
        preparation_start, go: seconds from the trial start (dotted lines).
        dt: sampling interval, seconds.
    """
    figure = Figure(figsize=(14, 8), layout="constrained")
    axes = figure.subplots(2, 3)
    names = list(input_norms)
    colours = {name: f"C{k % 10}" for k, name in enumerate(names)}
    styles = ["-", "--", ":", "-."]
    input_ax, distance_ax, energy_ax = axes[0]
    for name in names:
        for k in range(input_norms[name].shape[0]):
            style = styles[k % len(styles)]
            input_ax.plot(time[:-1], input_norms[name][k], color=colours[name], ls=style, lw=1)
            # Clipped so that an exact arrival (distance 0) stays on the log axis.
            distance_ax.plot(
                time, np.maximum(distances[name][k], 1e-6), color=colours[name], ls=style, lw=1
            )
    for ax in (input_ax, distance_ax):
        ax.axvline(preparation_start, color="gray", ls=":", lw=0.8)
        ax.axvline(go, color="black", ls=":", lw=0.8)
        ax.set_xlabel("time from trial start (s)")
    input_ax.set_title("input ||u(t)|| (dotted: preparation, go)")
    distance_ax.set_title("distance to x*, ||x - x*|| / ||x* - x_sp||")
    distance_ax.set_yscale("log")
    width = 0.8 / max(len(names), 1)
    movements = np.arange(len(directions_deg))
    for j, name in enumerate(names):
        energy_ax.bar(movements + j * width, energies[name], width, color=colours[name], label=name)
    energy_ax.set_xticks(movements + width * (len(names) - 1) / 2)
    energy_ax.set_xticklabels([f"{d:g}°" for d in directions_deg])
    energy_ax.set_title("input energy ∫||u||² dt")
    energy_ax.legend(fontsize=7)
    path_ax, speed_ax, legend_ax = axes[1]
    movement_time = np.arange(targets.shape[1]) * dt
    for k in range(targets.shape[0]):
        target_path = np.cumsum(targets[k], axis=0) * dt
        path_ax.plot(target_path[:, 0], target_path[:, 1], color="black", lw=4, alpha=0.2)
        speed_ax.plot(
            movement_time, np.linalg.norm(targets[k], axis=1), color="black", lw=4, alpha=0.2
        )
        for name in names:
            produced = outputs[name][k]
            path = np.cumsum(produced, axis=0) * dt
            style = styles[k % len(styles)]
            path_ax.plot(path[:, 0], path[:, 1], color=colours[name], ls=style, lw=1.2)
            speed_ax.plot(
                movement_time,
                np.linalg.norm(produced, axis=1),
                color=colours[name],
                ls=style,
                lw=1.2,
            )
    path_ax.set_title("reaches after preparation (grey: target)")
    path_ax.set_xlabel("x (m)")
    path_ax.set_ylabel("y (m)")
    path_ax.set_aspect("equal", adjustable="datalim")
    speed_ax.set_title("speed from the go cue")
    speed_ax.set_xlabel("time from go (s)")
    speed_ax.set_ylabel("m/s")
    legend_ax.axis("off")
    for name in names:
        legend_ax.plot([], [], color=colours[name], label=name)
    for k, direction in enumerate(directions_deg[: len(styles)]):
        legend_ax.plot([], [], color="gray", ls=styles[k], label=f"{direction:g}°")
    legend_ax.legend(loc="center", title="controller / movement")
    if title:
        figure.suptitle(title)
    return figure


def sequence_figure(
    outputs: np.ndarray,
    targets: np.ndarray,
    directions_deg: list[float],
    *,
    interval: float,
    dt: float,
) -> Figure:
    """A chain of reaches: the hand path and the speed over the whole sequence.

    Args:
        outputs: (time, 2) produced hand velocity over the sequence (zero during intervals).
        targets: (reaches, time per reach, 2) target velocity of each reach.
        directions_deg: direction of each reach, degrees.
        interval: seconds between reaches; dt: sampling interval, seconds.
    """
    figure = Figure(figsize=(11, 4), layout="constrained")
    path_ax, speed_ax = figure.subplots(1, 2)
    gap = round(interval / dt)
    reach = targets.shape[1]
    expected = [targets[0]]
    for k in range(1, len(targets)):
        expected.append(np.zeros((gap, 2)))
        expected.append(targets[k, 1:])
    target_sequence = np.concatenate(expected)
    time = np.arange(len(outputs)) * dt
    path_target = np.cumsum(target_sequence, axis=0) * dt
    path_produced = np.cumsum(outputs, axis=0) * dt
    path_ax.plot(
        path_target[:, 0], path_target[:, 1], color="gray", lw=3, alpha=0.4, label="target"
    )
    path_ax.plot(
        path_produced[:, 0], path_produced[:, 1], color="tab:blue", lw=1.2, label="produced"
    )
    path_ax.set_aspect("equal", adjustable="datalim")
    path_ax.set_xlabel("x (m)")
    path_ax.set_ylabel("y (m)")
    path_ax.legend(fontsize=8)
    labels = " → ".join(f"{d:g}°" for d in directions_deg)
    path_ax.set_title(f"sequence {labels}, interval {interval:g} s")
    speed_ax.plot(time, np.linalg.norm(target_sequence, axis=1), color="gray", lw=3, alpha=0.4)
    speed_ax.plot(time, np.linalg.norm(outputs, axis=1), color="tab:blue", lw=1.2)
    for k in range(1, len(targets)):
        start = (reach - 1) * k + gap * (k - 1)
        speed_ax.axvspan(start * dt, (start + gap) * dt, color="tab:orange", alpha=0.15)
    speed_ax.set_xlabel("time (s)")
    speed_ax.set_ylabel("speed (m/s)")
    speed_ax.set_title("speed (shaded: preparation between reaches)")
    return figure
