"""Figure of a preparation job: controllers side by side, and their table as an image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lifrnn_core.figures._common import (
    TICK_SIZE,
    equal_aspect,
    label,
    log_scale,
    new_figure,
    path,
)

__all__ = ["preparation_figure"]

_STYLES = ("-", "--", ":", "-.")


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
    summary: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Figure:
    """Controllers side by side: inputs, distance to ``x*``, energy, the produced reaches, and
    the controller x movement table.

    Args:
        time: (time,) seconds from the trial start (states' time axis).
        input_norms: controller -> (movements, time - 1) ``||u(t)||``.
        distances: controller -> (movements, time) distance to ``x*`` in the metric of Kao's
            ``Q``, relative to ``x_sp`` (``prepare_distance``); zeros (an exact arrival) are
            left out of the log axis, not clipped.
        energies: controller -> (movements,) ``integral ||u||^2 dt``.
        outputs: controller -> (movements, movement time, 2) hand velocity produced, m/s.
        targets: (movements, movement time, 2) target hand velocity, m/s.
        directions_deg: one label per movement.
        preparation_start, go: seconds from the trial start (dotted lines).
        dt: sampling interval, seconds.
        title: figure title.
        summary: controller -> measure -> one value per movement (``motor_r2``,
            ``input_energy``, ``prepare_distance``), drawn as an annotated table (None: omitted).
    """
    rows = 3 if summary else 2
    figure = new_figure(14.5, 4.0 * rows - (0.8 if summary else 0.0), title)
    figure.subplots_adjust(
        left=0.085,
        right=0.98,
        bottom=0.05 if summary else 0.08,
        top=0.92 if summary else 0.9,
        wspace=0.3,
        hspace=0.42,
    )
    grid = figure.add_gridspec(rows, 3, height_ratios=[1, 1, 0.75][:rows])
    input_ax, distance_ax, energy_ax = (figure.add_subplot(grid[0, j]) for j in range(3))
    path_ax, speed_ax, legend_ax = (figure.add_subplot(grid[1, j]) for j in range(3))
    names = list(input_norms)
    colours = {name: f"C{k % 10}" for k, name in enumerate(names)}
    for name in names:
        for k in range(input_norms[name].shape[0]):
            style = _STYLES[k % len(_STYLES)]
            input_ax.plot(time[:-1], input_norms[name][k], color=colours[name], ls=style, lw=1)
            # An exact arrival (distance 0) has no place on a log axis: leave it out.
            distance = np.asarray(distances[name][k], dtype=np.float64)
            shown = np.where(distance > 0, distance, np.nan)
            distance_ax.plot(time, shown, color=colours[name], ls=style, lw=1)
    for ax in (input_ax, distance_ax):
        ax.axvline(preparation_start, color="gray", ls=":", lw=0.8)
        ax.axvline(go, color="black", ls=":", lw=0.8)
    label(input_ax, "input (dotted: preparation, go)", "time from trial start (s)", "‖u(t)‖ (a.u.)")
    log_scale(distance_ax)
    label(
        distance_ax,
        "distance to x* in Kao's Q (gaps: exactly 0)",
        "time from trial start (s)",
        "‖x − x*‖_Q / ‖x* − x_sp‖_Q (ratio)",
    )
    width = 0.8 / max(len(names), 1)
    movements = np.arange(len(directions_deg))
    for j, name in enumerate(names):
        energy_ax.bar(movements + j * width, energies[name], width, color=colours[name], label=name)
    energy_ax.set_xticks(movements + width * (len(names) - 1) / 2)
    energy_ax.set_xticklabels([f"{d:g}" for d in directions_deg])
    label(
        energy_ax,
        "input energy per reach (colours: controllers)",
        "reach direction (°)",
        "∫‖u‖² dt (a.u.² s)",
    )
    movement_time = np.arange(targets.shape[1]) * dt
    for k in range(targets.shape[0]):
        target_path = path(targets[k], dt)
        path_ax.plot(target_path[:, 0], target_path[:, 1], color="black", lw=4, alpha=0.2)
        speed_ax.plot(
            movement_time, np.linalg.norm(targets[k], axis=1), color="black", lw=4, alpha=0.2
        )
        for name in names:
            produced = outputs[name][k]
            style = _STYLES[k % len(_STYLES)]
            produced_path = path(produced, dt)
            path_ax.plot(produced_path[:, 0], produced_path[:, 1], color=colours[name], ls=style)
            speed_ax.plot(
                movement_time, np.linalg.norm(produced, axis=1), color=colours[name], ls=style
            )
    label(path_ax, "reaches after preparation (grey: target)", "hand x (m)", "hand y (m)")
    equal_aspect(path_ax)
    label(speed_ax, "speed from the go cue (grey: target)", "time from go (s)", "speed (m/s)")
    legend_ax.axis("off")
    for name in names:
        legend_ax.plot([], [], color=colours[name], lw=2, label=name)
    for k, direction in enumerate(directions_deg[: len(_STYLES)]):
        legend_ax.plot([], [], color="gray", ls=_STYLES[k], label=f"{direction:g}°")
    legend_ax.legend(
        loc="center",
        title="controller / movement",
        fontsize=TICK_SIZE + 1,
        title_fontsize=TICK_SIZE + 1,
    )
    if summary:
        _table(figure.add_subplot(grid[2, :]), summary, directions_deg)
    return figure


def _table(
    ax: Axes, summary: Mapping[str, Mapping[str, Sequence[float]]], directions_deg: list[float]
) -> None:
    """Controller x movement table: colour the motor R^2, print R^2, energy, Q-distance at go."""
    names = list(summary)
    r2 = np.array([summary[name]["motor_r2"] for name in names], dtype=np.float64)
    ax.imshow(r2, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto", alpha=0.5)
    for i, name in enumerate(names):
        for j in range(len(directions_deg)):
            entry = summary[name]
            text = (
                f"R² {entry['motor_r2'][j]:.3f}\nE {entry['input_energy'][j]:.3g}"
                f"\nd {entry['prepare_distance'][j]:.2g}"
            )
            ax.text(j, i, text, ha="center", va="center", fontsize=TICK_SIZE, linespacing=1.1)
    ax.set_xticks(np.arange(len(directions_deg)), [f"{d:g}°" for d in directions_deg])
    ax.set_yticks(np.arange(len(names)), names)
    ax.tick_params(labelsize=TICK_SIZE + 1, length=0)
    ax.set_title(
        "controller × movement: motor R² (colour, red < 0.5), input energy E (a.u.² s), "
        "Q-distance at go d (ratio)",
        fontsize=9.5,
    )
