"""Example neurons' condition-averaged rates of a fit to recordings: recorded, fitted and
predicted held out (:func:`data_psth_figure`), a colour per condition."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lifrnn_core.figures._common import TICK_SIZE, label, new_figure, note

__all__ = [
    "MAX_CONDITIONS_SHOWN",
    "MAX_NEURONS_SHOWN",
    "condition_colours",
    "data_psth_figure",
    "shown_conditions",
]

MAX_CONDITIONS_SHOWN = 8
"""Conditions drawn per PSTH panel at most (more would be unreadable)."""

MAX_NEURONS_SHOWN = 6
"""Example neurons (panels) of the PSTH figure at most."""

_TIME_LABEL = "time from movement onset (s)"
_RATE_LABEL = "rate (normalised)"


def condition_colours(n_conditions: int) -> list[tuple[float, float, float]]:
    """One colour per condition around the hue circle (reach directions are cyclic), darkened
    so that the yellows and greens read on white."""
    cmap = colormaps["hsv"]
    return [
        tuple(0.82 * channel for channel in cmap(k / max(n_conditions, 1))[:3])  # type: ignore[misc]
        for k in range(n_conditions)
    ]


def shown_conditions(
    n_conditions: int, preferred: Sequence[int] | None = None, limit: int = MAX_CONDITIONS_SHOWN
) -> list[int]:
    """Indices of at most ``limit`` conditions to draw, in order: the ``preferred`` ones first
    (as many as fit), the rest evenly spaced over all conditions."""
    chosen = [int(k) for k in (preferred or []) if 0 <= int(k) < n_conditions][:limit]
    spread = np.unique(np.linspace(0, n_conditions - 1, limit).round().astype(int))
    for k in spread.tolist():
        if len(chosen) >= limit:
            break
        if k not in chosen:
            chosen.append(k)
    return sorted(chosen)


def _r2_text(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def data_psth_figure(
    time: np.ndarray,
    data: np.ndarray,
    model: np.ndarray,
    heldout: np.ndarray,
    conditions: Sequence[str],
    neurons: Sequence[int],
    r2_per_neuron: np.ndarray,
    *,
    heldout_conditions: Sequence[int] | None = None,
    title: str = "",
) -> Figure:
    """Example neurons' condition-averaged rates: recorded, fitted, and predicted held out.

    One panel per example neuron (at most six, three per row), at most eight conditions each
    (evenly spaced when there are more), a colour per condition: data solid, the fit on all
    conditions dashed, the cross-validated prediction dotted (where there is one).

    Args:
        time: (T,) seconds from movement onset (t = 0 is marked).
        data, model: (C, T, N) recorded and fitted normalised rates (a.u.).
        heldout: (C, T, N) the cross-validated prediction of each condition and neuron by a
            model that saw neither; NaN where not predicted.
        conditions: C condition labels.
        neurons: indices (into N) of the example neurons, e.g. the best, median and worst by
            held-out R².
        r2_per_neuron: (N,) held-out R² of each neuron (NaN: never held out), in the titles.
        heldout_conditions: condition indices to show first (e.g. a fold's test conditions,
            marked "held out" in the legend); None: evenly spaced conditions.
        title: figure title.

    Raises:
        ValueError: arrays of different shapes or a neuron index outside ``0..N-1``.
    """
    data, model, heldout = (np.asarray(a, dtype=np.float64) for a in (data, model, heldout))
    if data.ndim != 3 or model.shape != data.shape or heldout.shape != data.shape:
        raise ValueError(
            f"data, model and heldout must share one (C, T, N) shape; got {data.shape}, "
            f"{model.shape}, {heldout.shape}"
        )
    n_conditions, _, n_neurons = data.shape
    examples = [int(i) for i in neurons][:MAX_NEURONS_SHOWN]
    outside = [i for i in examples if not 0 <= i < n_neurons]
    if outside:
        raise ValueError(f"neurons {outside} are not in 0..{n_neurons - 1}")
    r2 = np.asarray(r2_per_neuron, dtype=np.float64)
    columns = min(3, max(len(examples), 1))
    rows = max(1, math.ceil(len(examples) / 3))
    shown = shown_conditions(n_conditions, heldout_conditions)
    held_out = {int(k) for k in heldout_conditions or []}
    names = [f"{conditions[k]} (held out)" if k in held_out else str(conditions[k]) for k in shown]
    # One row of condition colours if their labels fit across the page, else two.
    legend_rows = 1 if sum(len(name) + 6 for name in names) <= 160 else 2
    legend_height = 0.26 + 0.2 * legend_rows  # inches: line styles, then conditions
    height = 3.1 * rows + 0.95 + legend_height
    figure = new_figure(13.0, height, title)
    figure.subplots_adjust(
        left=0.06,
        right=0.985,
        bottom=(legend_height + 0.6) / height,
        top=1.0 - 0.62 / height,
        wspace=0.28,
        hspace=0.5,
    )
    grid = figure.add_gridspec(rows, columns)
    if not examples:
        note(figure.add_subplot(grid[0, 0]), "no example neurons given", "PSTHs")
        return figure
    colours = condition_colours(n_conditions)
    for position, neuron in enumerate(examples):
        ax = figure.add_subplot(grid[position // 3, position % 3])
        for k in shown:
            colour = colours[k]
            ax.plot(time, data[k, :, neuron], color=colour, lw=1.8, alpha=0.75)
            ax.plot(time, model[k, :, neuron], color=colour, lw=1.1, ls="--")
            if np.isfinite(heldout[k, :, neuron]).any():  # NaN samples leave gaps
                ax.plot(time, heldout[k, :, neuron], color=colour, lw=1.4, ls=":")
        if time[0] <= 0.0 <= time[-1]:
            ax.axvline(0.0, color="0.4", lw=0.6)
        value = float(r2[neuron]) if neuron < r2.size else math.nan
        score = f"held-out R² {value:.3f}" if math.isfinite(value) else "not held out"
        label(ax, f"neuron {neuron}: {score}", _TIME_LABEL, _RATE_LABEL)
    styles = [
        Line2D([], [], color="black", lw=1.8, alpha=0.75, label="data"),
        Line2D([], [], color="black", lw=1.1, ls="--", label="model fit (all conditions)"),
        Line2D(
            [], [], color="black", lw=1.4, ls=":", label="held-out prediction (cross-validated)"
        ),
    ]
    swatches = [Line2D([], [], color=colours[k], lw=2.5) for k in shown]
    common = {"fontsize": TICK_SIZE, "frameon": False, "columnspacing": 1.4, "handlelength": 2.4}
    figure.legend(
        handles=styles,
        loc="lower center",
        ncol=len(styles),
        bbox_to_anchor=(0.5, (0.2 * legend_rows + 0.05) / height),
        **common,
    )
    figure.legend(
        swatches,
        names,
        loc="lower center",
        ncol=len(names) if legend_rows == 1 else math.ceil(len(names) / 2),
        bbox_to_anchor=(0.5, 0.0),
        **common,
    )
    return figure
