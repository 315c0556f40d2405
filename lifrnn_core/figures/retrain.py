"""Figures of a retraining job: old vs new reaches per mode, the loss, the spectrum against the
stability bound, the weight change; and a chain of reaches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lifrnn_core.figures._common import (
    TICK_SIZE,
    equal_aspect,
    label,
    legend,
    log_scale,
    new_figure,
    note,
    path,
    spectrum,
    weight_panel,
)

__all__ = ["direction_colours", "retrain_figure", "sequence_figure"]


def direction_colours(n_old: int, n_new: int) -> tuple[list[str], list[str]]:
    """Hex colours of the trained (blues) and new (oranges to reds) directions: the two groups
    never share a colour, and shades tell the directions within a group apart."""

    def shades(name: str, count: int) -> list[str]:
        cmap = colormaps[name]
        return [
            "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in cmap(level)[:3]))
            for level in np.linspace(0.95, 0.5, count)
        ]

    return shades("Blues", n_old), shades("YlOrRd", n_new) if n_new else []


def retrain_figure(
    old_targets: np.ndarray,
    new_targets: np.ndarray,
    outputs: dict[str, tuple[np.ndarray, np.ndarray]],
    old_directions: list[float],
    new_directions: list[float],
    *,
    dt: float,
    title: str = "",
    histories: Mapping[str, Sequence[float]] | None = None,
    spectra: Mapping[str, np.ndarray] | None = None,
    stability_bound: float | None = None,
    weight_change: np.ndarray | None = None,
    n_excitatory: int | None = None,
    r2: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    best_r2_possible: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """Produced vs target reaches of trained (blues) and new (reds) directions per mode, the
    loss per step, the spectrum before/after against the stability bound and the weight change.

    Args:
        old_targets, new_targets: (movements, time, 2) target hand velocities, m/s.
        outputs: per retraining mode, (old outputs, new outputs), each (movements, time, 2).
        old_directions, new_directions: labels, degrees.
        dt: sampling interval, seconds.
        title: figure title.
        histories: mode -> loss after each step (L-BFGS motor cost for ``initial_states`` and
            ``initial_states_and_readout``, Adam loss for ``full_network``).
        spectra: label -> (n,) complex eigenvalues of W (e.g. before, after).
        stability_bound: the bound on the spectral abscissa, drawn as a line.
        weight_change: (n, n) ``W_after - W_before`` when the network changed (None: the
            panel says W was kept).
        n_excitatory: number of excitatory units, for the E/I lines of ``weight_change``.
        r2: mode -> (R^2 per old movement, R^2 per new movement), shown in the legend.
        best_r2_possible: mode -> best R^2 its readout allows per new movement (least squares
            on the span of a frozen readout); shown in the legend where below 0.99.
    """
    modes = list(outputs)
    columns = len(modes) + 2
    figure = new_figure(4.3 * columns, 8.0, title)
    figure.subplots_adjust(left=0.06, right=0.95, bottom=0.07, top=0.9, wspace=0.34, hspace=0.36)
    axes = figure.subplots(2, columns, squeeze=False)
    time = np.arange(old_targets.shape[1]) * dt
    old_colours, new_colours = direction_colours(len(old_directions), len(new_directions))
    for column, mode in enumerate(modes):
        produced_old, produced_new = outputs[mode]
        path_ax, speed_ax = axes[0, column], axes[1, column]
        groups = (
            (old_targets, produced_old, old_colours),
            (new_targets, produced_new, new_colours),
        )
        for targets, produced, colours in groups:
            for k, colour in enumerate(colours):
                target_path = path(targets[k], dt)
                produced_path = path(produced[k], dt)
                path_ax.plot(target_path[:, 0], target_path[:, 1], color=colour, lw=3, alpha=0.3)
                path_ax.plot(produced_path[:, 0], produced_path[:, 1], color=colour, lw=1.2)
                speed_ax.plot(
                    time, np.linalg.norm(targets[k], axis=1), color=colour, lw=3, alpha=0.3
                )
                speed_ax.plot(time, np.linalg.norm(produced[k], axis=1), color=colour, lw=1.2)
        label(path_ax, f"{mode}: hand paths (thick: target)", "hand x (m)", "hand y (m)")
        equal_aspect(path_ax)
        label(speed_ax, f"{mode}: speed profiles", "time from movement onset (s)", "speed (m/s)")
    loss_ax, spectrum_ax = axes[0, -2], axes[1, -2]
    if histories:
        for mode, history in histories.items():
            steps = np.arange(1, len(history) + 1)
            kind = "Adam loss" if mode == "full_network" else "L-BFGS motor cost"
            loss_ax.plot(steps, history, "o-", ms=2.5, lw=1, label=f"{mode} ({kind})")
        loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if all(min(h) > 0 for h in histories.values() if len(h)):
            log_scale(loss_ax)
        label(loss_ax, "loss per optimisation step", "optimisation step", "loss (a.u.)")
        legend(loss_ax)
    else:
        note(loss_ax, "no loss history given", "loss")
    if spectra:
        bound = {} if stability_bound is None else {f"bound {stability_bound:.3g}": stability_bound}
        spectrum(
            spectrum_ax, spectra, title="spectrum of W (zoom on the bulk)", zoom=True, lines=bound
        )
    else:
        note(spectrum_ax, "no spectrum given", "spectrum")
    change_ax, legend_ax = axes[0, -1], axes[1, -1]
    weight_panel(
        figure,
        change_ax,
        weight_change,
        n_excitatory,
        title="ΔW = W_after − W_before (lines: E | I)",
        colour_label="ΔW_ij (a.u.)",
        missing="W unchanged: the modes shown\nkeep W frozen",
        missing_title="ΔW",
    )
    _direction_legend(
        legend_ax, old_directions, new_directions, old_colours, new_colours, r2, best_r2_possible
    )
    return figure


def _direction_legend(
    ax: Axes,
    old_directions: list[float],
    new_directions: list[float],
    old_colours: list[str],
    new_colours: list[str],
    r2: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None,
    best_r2_possible: Mapping[str, Sequence[float]] | None = None,
) -> None:
    """Legend panel: one entry per direction, trained then new, with its R^2 per mode (and,
    for a new one, the best R^2 the mode's readout allows where that is below 0.99)."""
    ax.axis("off")
    scores = r2 or {}
    header = "direction" + "".join(f", R² {mode}" for mode in scores)
    for group, directions, colours, index in (
        ("trained", old_directions, old_colours, 0),
        ("new", new_directions, new_colours, 1),
    ):
        for k, (direction, colour) in enumerate(zip(directions, colours, strict=True)):
            text = f"{group} {direction:g}°"
            for mode, old_and_new in scores.items():
                text += f"  {old_and_new[index][k]:.3f}"
                best = (best_r2_possible or {}).get(mode)
                if index == 1 and best is not None and best[k] < 0.99:
                    text += f" (≤ {best[k]:.2g})"
            ax.plot([], [], color=colour, lw=2, label=text)
    rows = len(old_directions) + len(new_directions)
    ax.legend(
        loc="center",
        title=header,
        ncols=1 if rows <= 12 else 2,
        fontsize=TICK_SIZE,
        title_fontsize=TICK_SIZE + 1,
    )


def sequence_figure(
    outputs: np.ndarray,
    targets: np.ndarray,
    directions_deg: list[float],
    *,
    interval: float,
    dt: float,
    title: str = "",
) -> Figure:
    """A chain of reaches: the hand path and the speed over the whole sequence.

    Args:
        outputs: (time, 2) produced hand velocity over the sequence (zero during intervals).
        targets: (reaches, time per reach, 2) target velocity of each reach.
        directions_deg: direction of each reach, degrees.
        interval: seconds between reaches; dt: sampling interval, seconds.
        title: what the sequence ran on; the figure title adds the reaches and the interval.
    """
    labels = " → ".join(f"{d:g}°" for d in directions_deg)
    figure = new_figure(11.5, 4.6, f"{title or 'sequence'}: {labels}, interval {interval:g} s")
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.84, wspace=0.25)
    path_ax, speed_ax = figure.subplots(1, 2)
    gap = round(interval / dt)
    reach = targets.shape[1]
    expected = [targets[0]]
    for k in range(1, len(targets)):
        expected.append(np.zeros((gap, 2)))
        expected.append(targets[k, 1:])
    target_sequence = np.concatenate(expected)
    time = np.arange(len(outputs)) * dt
    path_target = path(target_sequence, dt)
    path_produced = path(outputs, dt)
    path_ax.plot(
        path_target[:, 0], path_target[:, 1], color="gray", lw=3, alpha=0.4, label="target"
    )
    path_ax.plot(
        path_produced[:, 0], path_produced[:, 1], color="tab:blue", lw=1.2, label="produced"
    )
    equal_aspect(path_ax)
    label(path_ax, "hand path", "hand x (m)", "hand y (m)")
    legend(path_ax)
    speed_ax.plot(time, np.linalg.norm(target_sequence, axis=1), color="gray", lw=3, alpha=0.4)
    speed_ax.plot(time, np.linalg.norm(outputs, axis=1), color="tab:blue", lw=1.2)
    for k in range(1, len(targets)):
        start = (reach - 1) * k + gap * (k - 1)
        speed_ax.axvspan(start * dt, (start + gap) * dt, color="tab:orange", alpha=0.15)
    label(speed_ax, "speed (shaded: preparation between reaches)", "time (s)", "speed (m/s)")
    return figure
