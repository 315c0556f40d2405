"""Figure of a fit: produced vs target movements, the activity behind them, the cost."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lifrnn_core.figures._common import (
    TICK_SIZE,
    equal_aspect,
    label,
    log_scale,
    new_figure,
    note,
    path,
)

__all__ = ["fit_figure", "principal_components"]

_UNITS = {
    "hand_velocity": ("hand velocity", "m/s", ("x", "y")),
    "joint_torque": ("joint torque", "N m", ("shoulder", "elbow")),
}


def principal_components(states: np.ndarray, k: int) -> np.ndarray:
    """Project (movements, time, n) states on their top-k principal components (same units).

    The components are the top eigenvectors of the (n, n) covariance: one product and a
    symmetric eigensolver, several times cheaper than an SVD of the (movements x time, n) data.
    """
    flat = states.reshape(-1, states.shape[-1])
    centred = flat - flat.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return (centred @ vectors[:, ::-1][:, :k]).reshape(*states.shape[:2], k)


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
    rates: np.ndarray | None = None,
    rate_label: str = "rate r(x) (a.u.)",
    r2: Sequence[float] | None = None,
    cost_history: Sequence[float] | None = None,
) -> Figure:
    """Target vs produced movements, the population activity that produced them, the cost.

    Args:
        time: (time,) seconds from movement onset.
        targets, outputs: (movements, time, outputs) target and produced readout (hand velocity
            in m/s, or joint torques in N m).
        states: (movements, time, n) potentials (for the principal components).
        directions_deg: one label per movement.
        target_kind: ``"hand_velocity"`` draws hand paths (velocity integrated, equal aspect)
            and speed profiles; ``"joint_torque"`` the torque plane and the torque norm.
        dt: sampling interval, seconds.
        title: figure title.
        rates: (movements, time, n) firing rates r(x) (None: the potentials are drawn).
        rate_label: y label of the rates, with their unit ("(a.u.)" under relu, Hz under the
            Hennequin gain).
        r2: R^2 per movement, annotated next to each direction.
        cost_history: motor cost after each L-BFGS iteration.
    """
    figure = new_figure(15.5, 7.8, title)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.08, top=0.9, wspace=0.32, hspace=0.36)
    grid = figure.add_gridspec(2, 4)
    path_ax, speed_ax, out_ax, cost_ax = (figure.add_subplot(grid[0, j]) for j in range(4))
    rates_ax = figure.add_subplot(grid[1, :2])
    pc_ax, r2_ax = figure.add_subplot(grid[1, 2]), figure.add_subplot(grid[1, 3])
    colours = [f"C{k % 10}" for k in range(len(directions_deg))]
    quantity, unit, names = _UNITS.get(target_kind, ("readout", "a.u.", ("1", "2")))
    velocity = target_kind == "hand_velocity"
    two_d = targets.shape[-1] >= 2
    for k, colour in enumerate(colours):
        if two_d:
            target_xy = path(targets[k], dt) if velocity else targets[k]
            produced_xy = path(outputs[k], dt) if velocity else outputs[k]
            path_ax.plot(target_xy[:, 0], target_xy[:, 1], color=colour, lw=3, alpha=0.35)
            path_ax.plot(produced_xy[:, 0], produced_xy[:, 1], color=colour, lw=1.2)
        speed_ax.plot(time, np.linalg.norm(targets[k], axis=1), color=colour, lw=3, alpha=0.35)
        speed_ax.plot(time, np.linalg.norm(outputs[k], axis=1), color=colour, lw=1.2)
        for dim, style in zip(range(targets.shape[-1]), ("-", "--", ":"), strict=False):
            out_ax.plot(time, targets[k, :, dim], color=colour, lw=3, alpha=0.25, ls=style)
            out_ax.plot(time, outputs[k, :, dim], color=colour, lw=1.0, ls=style)
    if two_d and velocity:
        label(path_ax, "hand paths (thick: target)", "hand x (m)", "hand y (m)")
    elif two_d:
        label(
            path_ax,
            "torque plane (thick: target)",
            f"{names[0]} torque ({unit})",
            f"{names[1]} torque ({unit})",
        )
    else:
        note(path_ax, "one output: no path to draw", "paths")
    if two_d:
        equal_aspect(path_ax)
    label(
        speed_ax,
        "speed profiles (thick: target)" if velocity else f"{quantity} norm (thick: target)",
        "time from movement onset (s)",
        f"speed ({unit})" if velocity else f"‖{quantity}‖ ({unit})",
    )
    label(
        out_ax,
        f"readout (solid: {names[0]}, dashed: {names[1]})",
        "time from movement onset (s)",
        f"{quantity} ({unit})",
    )
    if cost_history:
        iterations = np.arange(1, len(cost_history) + 1)
        cost_ax.plot(iterations, cost_history, "o-", color="tab:blue", ms=3)
        cost_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if min(cost_history) > 0:
            log_scale(cost_ax)
        label(cost_ax, "cost per L-BFGS iteration", "L-BFGS iteration", "motor cost (a.u.)")
    else:
        note(cost_ax, "no cost history given", "cost")

    sample = np.linspace(0, states.shape[-1] - 1, min(12, states.shape[-1])).astype(int)
    shown = rates if rates is not None else states
    rates_ax.plot(time, shown[0][:, sample], lw=0.8)
    label(
        rates_ax,
        f"{len(sample)} units, movement {directions_deg[0]:g}°",
        "time from movement onset (s)",
        rate_label if rates is not None else "potential x (a.u.)",
    )
    pcs = principal_components(states, 2)
    for k, colour in enumerate(colours):
        pc_ax.plot(pcs[k, :, 0], pcs[k, :, 1], color=colour, lw=1.2)
        pc_ax.plot(pcs[k, 0, 0], pcs[k, 0, 1], "o", color=colour, ms=4)
    label(pc_ax, "population activity (dot: x*)", "PC 1 of x (a.u.)", "PC 2 of x (a.u.)")
    # R² per reach as bars, coloured as in the other panels, each with its value on top
    values = np.asarray(r2, dtype=float) if r2 is not None else np.zeros(len(colours))
    bars = r2_ax.bar(range(len(colours)), values, color=colours)
    every = max(1, len(colours) // 8)  # at most ~8 tick labels
    r2_ax.set_xticks(range(0, len(colours), every), [f"{d:g}" for d in directions_deg[::every]])
    if r2 is not None and len(colours) <= 12:  # beyond, the values would overlap
        r2_ax.bar_label(
            bars,
            labels=[f"{v:.3f}" for v in values],
            fontsize=TICK_SIZE,
            padding=2,
            rotation=90 if len(colours) > 5 else 0,
        )
        low = min(0.0, float(values.min()))
        headroom = 0.45 if 5 < len(colours) <= 12 else 0.15  # room for the (turned) values
        r2_ax.set_ylim(low - 0.05 * (1.0 - low), 1.0 + headroom * (1.0 - low))
        r2_ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    label(
        r2_ax,
        "R² per reach (motor output)" if r2 is not None else "reaches (no R² given)",
        "reach direction (°)",
        "R² (1 = exact)",
    )
    return figure
