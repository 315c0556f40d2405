"""Figures of a network fitted to recorded population activity: example neurons' PSTHs (data,
fit, cross-validated prediction), the population's trajectories and rotations (PCs, jPCA as in
Churchland et al. 2012), the cross-validation scores, and the Neural Latents Benchmark's four
scores of the network beside its baselines (:func:`nlb_scores_figure`, NLB'21: Pei et al. 2021).

May import: numpy, matplotlib, :mod:`lifrnn_core.figures._common`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from lifrnn_core.figures._common import (
    TICK_SIZE,
    TITLE_SIZE,
    label,
    legend,
    new_figure,
    note,
)

__all__ = [
    "condition_colours",
    "data_population_figure",
    "data_psth_figure",
    "jpca_colours",
    "nlb_model_order",
    "nlb_scores_figure",
    "shown_conditions",
]

MAX_CONDITIONS_SHOWN = 8
"""Conditions drawn per PSTH panel at most (more would be unreadable)."""
MAX_NEURONS_SHOWN = 6
"""Example neurons (panels) of the PSTH figure at most."""
MAX_TABLE_FOLDS = 12
"""Fold rows of the cross-validation table at most (then an ellipsis row, then the mean)."""
R2_FLOOR = -1.0
"""Held-out R² below this are drawn in the histogram's first bin (and counted in the title)."""

_TIME_LABEL = "time from movement onset (s)"
_RATE_LABEL = "rate (normalised)"
_TABLE_COLUMNS = (
    ("fold", "fold"),
    ("train", "train"),
    ("test", "test"),
    ("r2_train", "R²\ntrain"),
    ("r2_heldout", "R²\nheld-out"),
    ("r2_random", "R²\nrandom"),
    ("r2_mean", "R²\nmean"),
)
_TABLE_KEY = (
    "train, test: conditions per fold; random: a random network\n"
    "fitted alike; mean: the mean over training conditions\nas the prediction"
)


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


def _finite(array: np.ndarray | None) -> bool:
    return array is not None and array.size > 0 and bool(np.isfinite(array).all())


def _trajectories(ax: Axes, xy: np.ndarray, colours: Sequence[Any], *, arrows: bool) -> None:
    """Each condition's (T, 2) path in its colour, a dot at its start and, if ``arrows``, an
    arrow head at its end."""
    for k, colour in enumerate(colours):
        ax.plot(xy[k, :, 0], xy[k, :, 1], color=colour, lw=1.1)
        ax.plot(xy[k, 0, 0], xy[k, 0, 1], "o", color=colour, ms=3.5, mew=0)
        if arrows and xy.shape[1] >= 2:
            back = max(0, xy.shape[1] - 4)  # a few steps back: a steadier heading than one
            ax.annotate(
                "",
                xy=(xy[k, -1, 0], xy[k, -1, 1]),
                xytext=(xy[k, back, 0], xy[k, back, 1]),
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": colour,
                    "lw": 0,
                    "mutation_scale": 9,
                    "shrinkA": 0,
                    "shrinkB": 0,
                },
            )


def _shared_limits(axes: Sequence[Axes], *arrays: np.ndarray) -> None:
    """The same x and y limits on ``axes``, around every (..., 2) point of ``arrays``."""
    points = np.concatenate([a.reshape(-1, a.shape[-1])[:, :2] for a in arrays])
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.06 * np.maximum(high - low, 1e-9)
    for ax in axes:
        ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
        ax.set_ylim(low[1] - pad[1], high[1] + pad[1])


def jpca_colours(initial_jpc1: np.ndarray) -> list[tuple[float, float, float]]:
    """Churchland et al.'s colours: by rank of each condition's initial jPC 1 value, red
    (highest) through olive to green (lowest)."""
    red, green = np.array([0.85, 0.1, 0.1]), np.array([0.1, 0.55, 0.15])
    ranks = np.argsort(np.argsort(-np.asarray(initial_jpc1)))
    levels = ranks / max(len(ranks) - 1, 1)
    return [tuple((1 - level) * red + level * green) for level in levels]  # type: ignore[misc]


def _jpca_title(name: str, summary: Mapping[str, Any]) -> str:
    ratio, frequency = summary.get("ratio"), summary.get("frequency_hz")
    parts = [f"{name} jPCA"]
    if ratio is not None and math.isfinite(ratio):
        parts.append(f"R² skew/full {ratio:.2f}")
    if frequency is not None and math.isfinite(frequency):
        parts.append(f"{frequency:.1f} Hz")
    return ", ".join(parts)


def _jpca_panel(
    ax: Axes, name: str, projection: np.ndarray | None, summary: Mapping[str, Any]
) -> None:
    if projection is None:
        note(ax, f"no jPC projection of the {name} given", f"{name} jPCA")
        return
    if projection.shape[0] < 2:
        note(
            ax,
            f"jPCA needs at least 2 conditions\n({name} has {projection.shape[0]})",
            f"{name} jPCA",
        )
        return
    if not _finite(projection):
        note(ax, f"{name}: jPC projection not finite", f"{name} jPCA")
        return
    _trajectories(ax, projection, jpca_colours(projection[:, 0, 0]), arrows=True)
    ax.set_aspect("equal", adjustable="datalim")  # a rotation looks like one
    label(ax, _jpca_title(name, summary), "jPC 1 (a.u.)", "jPC 2 (a.u.)")
    captured = summary.get("variance_captured")
    if captured is not None and math.isfinite(captured):
        ax.text(
            0.02,
            0.02,
            f"top PCs hold {100 * captured:.0f}% of variance",
            transform=ax.transAxes,
            fontsize=TICK_SIZE,
            color="0.3",
        )


def _histogram(ax: Axes, r2_heldout: np.ndarray, r2_random: np.ndarray | None) -> None:
    """Step histograms of the held-out R² per neuron (fitted, random network), medians marked."""
    series = {"fitted network": (r2_heldout, "tab:blue")}
    baseline = r2_random is not None and bool(np.isfinite(r2_random).any())
    if r2_random is not None and baseline:
        series["random network"] = (r2_random, "tab:gray")
    finite = {name: values[np.isfinite(values)] for name, (values, _) in series.items()}
    if not finite["fitted network"].size:
        note(ax, "no neuron has a held-out R²\n(none was held out, or all NaN)", "held-out R²")
        return
    every = np.concatenate(list(finite.values()))
    low = max(R2_FLOOR, float(every.min()))
    high = max(1.0, float(every.max()))
    if high - low < 1e-6:
        low -= 0.05
    edges = np.linspace(low, high, 21)
    below, tallest = 0, 1
    for name, values in finite.items():
        colour = series[name][1]
        below += int(np.sum(values < low))
        counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
        tallest = max(tallest, int(counts.max()))
        median = float(np.median(values))
        ax.stairs(
            counts,
            edges,
            color=colour,
            lw=1.6,
            label=f"{name}: median {median:.3f}, n = {values.size}",
        )
        ax.axvline(median, color=colour, ls="--", lw=1.0)
    ax.set_ylim(0, 1.45 * tallest)  # headroom: the legend above the bars
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    title = "held-out R² per neuron (dashed: medians)"
    if not baseline:
        title += "\nno random-network baseline"
    if below:
        title += f"\n{below} below {R2_FLOOR:g} drawn at {R2_FLOOR:g}"
    label(ax, title, "held-out R² (1 = exact)", "neurons (count)")
    legend(ax, loc="upper left")


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if key in ("fold", "train", "test"):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return _r2_text(float(value))


def _mean_row(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over the fold rows of each numeric column (None where no fold has a value)."""
    mean: dict[str, Any] = {"fold": "mean"}
    for key, _ in _TABLE_COLUMNS[1:]:
        values = [float(row[key]) for row in rows if row.get(key) is not None]
        finite = [v for v in values if math.isfinite(v)]
        mean[key] = float(np.mean(finite)) if finite else None
    return mean


def _table(ax: Axes, cv_rows: Sequence[Mapping[str, Any]]) -> None:
    """The cross-validation scores per fold and their mean, three decimals, None as "–"."""
    if not cv_rows:
        note(ax, "no cross-validation folds", "cross-validation")
        return
    rows = list(cv_rows)
    if str(rows[-1].get("fold")) != "mean":
        rows.append(_mean_row(rows))
    folds, mean = rows[:-1], rows[-1]
    if len(folds) > MAX_TABLE_FOLDS:
        hidden = len(folds) - MAX_TABLE_FOLDS + 1
        folds = [*folds[: MAX_TABLE_FOLDS - 1], {"fold": f"… {hidden} more"}]
    text = [[_cell(row.get(key), key) for key, _ in _TABLE_COLUMNS] for row in [*folds, mean]]
    ax.axis("off")
    table = ax.table(
        cellText=text,
        colLabels=[heading for _, heading in _TABLE_COLUMNS],
        colWidths=[0.12, 0.11, 0.11, 0.165, 0.165, 0.165, 0.165],
        cellLoc="center",
        bbox=Bbox.from_bounds(0.0, 0.2, 1.0, 0.8),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(TICK_SIZE)
    for (row, _), cell in table.get_celld().items():
        cell.set_linewidth(0.4)
        if row == 0:
            cell.set_facecolor("0.9")
            cell.set_text_props(fontsize=TICK_SIZE, weight="bold")
        elif row == len(text):
            cell.set_text_props(weight="bold")
    ax.set_title("cross-validation: R² per fold (pooled)", fontsize=TITLE_SIZE)
    ax.text(0.0, 0.0, _TABLE_KEY, transform=ax.transAxes, fontsize=TICK_SIZE, color="0.3")


def data_population_figure(
    time: np.ndarray,
    pcs_data: np.ndarray,
    pcs_model: np.ndarray,
    jpca_data: np.ndarray | None,
    jpca_model: np.ndarray | None,
    jpca_summary: Mapping[str, Mapping[str, Any]],
    r2_heldout: np.ndarray,
    r2_heldout_random: np.ndarray | None,
    cv_rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "",
) -> Figure:
    """The population seen by the data and by the fitted model, and how well it generalises.

    Top row: PC 1 vs PC 2 of the data and of the model (projected onto the data's PCs, same
    axes), a colour per condition, a dot at each start; the held-out R² per neuron (fitted vs
    random network). Bottom row: the first jPC plane of the data and of the model (Churchland
    et al. 2012: trajectories coloured by the rank of their initial jPC 1 value, red to green,
    a dot at the start, an arrow head at the end), and the cross-validation table.

    Args:
        time: (T,) seconds from movement onset (the trajectories' time axis).
        pcs_data, pcs_model: (C, T, >=2) data and model projected onto the data's top PCs (a.u.).
        jpca_data, jpca_model: (C, T, 2) each one's projection onto its own first jPC plane
            (a.u.); None where jPCA could not run.
        jpca_summary: ``{"data": {...}, "model": {...}}`` with ``ratio`` (R² skew / R² full),
            ``frequency_hz`` and ``variance_captured`` (fraction), any of them optional.
        r2_heldout: (N,) held-out R² per neuron of the fitted network (NaN: dropped).
        r2_heldout_random: (N,) the same for a random network, or None.
        cv_rows: one dict per fold with ``fold``, ``train``, ``test`` (condition counts),
            ``r2_train``, ``r2_heldout``, ``r2_random``, ``r2_mean`` (floats or None), the
            last optionally ``fold="mean"`` (otherwise the mean row is computed).
        title: figure title.
    """
    figure = new_figure(13.0, 8.6, title)
    figure.subplots_adjust(left=0.06, right=0.985, bottom=0.07, top=0.9, wspace=0.3, hspace=0.42)
    grid = figure.add_gridspec(2, 3)
    pc_axes = [figure.add_subplot(grid[0, j]) for j in range(2)]
    hist_ax = figure.add_subplot(grid[0, 2])
    jpca_axes = [figure.add_subplot(grid[1, j]) for j in range(2)]
    table_ax = figure.add_subplot(grid[1, 2])

    projections = {"data": np.asarray(pcs_data), "model": np.asarray(pcs_model)}
    drawn: list[np.ndarray] = []
    for ax, (name, projection) in zip(pc_axes, projections.items(), strict=True):
        if not (_finite(projection) and projection.ndim == 3 and projection.shape[-1] >= 2):
            note(ax, f"{name}: PC projection missing or not finite", f"{name} PCs")
            continue
        colours = condition_colours(projection.shape[0])
        _trajectories(ax, projection[..., :2], colours, arrows=False)
        heading = "data" if name == "data" else "model on the data's PCs"
        label(ax, f"{heading} (dot: start)", "PC 1 of data (a.u.)", "PC 2 of data (a.u.)")
        drawn.append(projection[..., :2])
    if drawn:  # the same axes for both: the model is seen in the data's coordinates
        _shared_limits([ax for ax in pc_axes if ax.axison], *drawn)
    if drawn and len(time):
        ax = next(ax for ax in pc_axes if ax.axison)
        ax.text(
            0.02,
            0.02,
            f"{time[0]:.2f} to {time[-1]:.2f} s from onset",
            transform=ax.transAxes,
            fontsize=TICK_SIZE,
            color="0.3",
        )

    _histogram(
        hist_ax,
        np.asarray(r2_heldout, dtype=np.float64),
        None if r2_heldout_random is None else np.asarray(r2_heldout_random, dtype=np.float64),
    )
    planes = {"data": jpca_data, "model": jpca_model}
    for ax, (name, plane) in zip(jpca_axes, planes.items(), strict=True):
        jpcs = None if plane is None else np.asarray(plane, dtype=np.float64)
        _jpca_panel(ax, name, jpcs, jpca_summary.get(name, {}))
    _table(table_ax, cv_rows)
    return figure


# --- the Neural Latents Benchmark's scores -------------------------------------------------------

NLB_SCORE_COLUMNS = (
    ("co_bps", "co-bps"),
    ("fp_bps", "fp-bps"),
    ("vel_r2", "vel R²"),
    ("psth_r2", "PSTH R²"),
)
"""The four scores of NLB'21 (Pei et al. 2021) as ``metrics["nlb"]["scores"][model]`` names them,
with their headings (bits per spike, or R²)."""

NLB_MODEL_NAMES = {
    "network": "fitted network",
    "random_network": "random network",
    "smoothing": "spike smoothing",
    "gpfa": "GPFA",
    "ridge": "ridge",
    "condition_mean": "condition mean",
}
"""How the figure names each model of ``metrics["nlb"]["scores"]`` (others: their key)."""

MC_MAZE_PUBLISHED_CO_BPS = (
    ("smoothing", 0.21),
    ("GPFA", 0.19),
    ("SLDS", 0.22),
    ("NDT", 0.33),
    ("AutoLFADS", 0.35),
)
"""Approximate co-bps of NLB'21's baselines on the real MC_Maze test split (Pei et al. 2021,
"Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks): reference marks, not
scores of the file a job fitted."""

_NLB_SOURCE = (
    "◇ published co-bps on the real MC_Maze test split (approximate; Pei et al. 2021, Neural "
    "Latents Benchmark '21, NeurIPS Datasets and Benchmarks): reference marks, not scores of "
    "this file"
)
_NETWORK_COLOUR = "tab:blue"
_STRONGEST_COLOUR = "tab:orange"
_BASELINE_COLOUR = "0.62"


def nlb_model_order(scores: Mapping[str, Any]) -> list[str]:
    """The models of ``scores`` in table order: the fitted network, the random network, then the
    baselines in :data:`NLB_MODEL_NAMES`' order, then any other model by name (a recipe's
    arguments come back with their keys sorted, so the order cannot be the dict's)."""
    known = list(NLB_MODEL_NAMES)
    return sorted(scores, key=lambda m: (known.index(m) if m in known else len(known), str(m)))


def _score(value: Any) -> float | None:
    """A score as a finite float, or None (missing, None or not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _nlb_panel(
    ax: Axes,
    key: str,
    heading: str,
    models: Sequence[str],
    scores: Mapping[str, Mapping[str, Any]],
    strongest: str | None,
    references: bool,
) -> None:
    """One score: a horizontal bar per model (the network on top), its value beside it; on the
    co-bps panel, the published MC_Maze marks in the rows below a divider."""
    n_rows = len(models) + len(MC_MAZE_PUBLISHED_CO_BPS) + 1  # the same rows on every panel
    values = [_score(scores[model].get(key)) for model in models]
    shown = [v for v in values if v is not None]
    if references:
        shown += [value for _, value in MC_MAZE_PUBLISHED_CO_BPS]
    low = min([0.0, *shown])
    high = max([0.0, *shown])
    span = max(high - low, 0.05)
    ax.set_xlim(low - 0.06 * span, high + 0.32 * span)  # room for the value labels
    ax.set_ylim(n_rows - 0.4, -0.6)  # row 0 on top
    ax.axvline(0.0, color="0.3", lw=0.7)
    for row, (model, value) in enumerate(zip(models, values, strict=True)):
        colour = (
            _NETWORK_COLOUR
            if model == "network"
            else _STRONGEST_COLOUR
            if model == strongest
            else _BASELINE_COLOUR
        )
        if value is None:
            ax.text(0.0, row, "  n/a", va="center", ha="left", fontsize=TICK_SIZE, color="0.4")
            continue
        ax.barh(row, value, height=0.7, color=colour, edgecolor="none")
        ax.text(
            max(value, 0.0) + 0.02 * span,
            row,
            f"{value:.3f}",
            va="center",
            ha="left",
            fontsize=TICK_SIZE,
            weight="bold" if model in ("network", strongest) else "normal",
        )
    labels = [NLB_MODEL_NAMES.get(model, model) for model in models]
    labels = [
        f"{name} (strongest baseline)" if model == strongest else name
        for model, name in zip(models, labels, strict=True)
    ]
    ticks = list(range(len(models)))
    if references:
        divider = len(models)
        ax.axhline(divider, color="0.5", lw=0.6, ls="--")
        for offset, (name, value) in enumerate(MC_MAZE_PUBLISHED_CO_BPS, start=1):
            row = divider + offset
            ax.plot(value, row, "D", ms=5, mfc="white", mec="0.2", mew=1.0)
            ax.axvline(value, color="0.75", lw=0.5, ls=":", zorder=0)
            ax.text(value + 0.02 * span, row, f"{value:.2f}", va="center", fontsize=TICK_SIZE)
            labels.append(f"◇ {name} (MC_Maze, NLB'21)")
            ticks.append(row)
    else:
        ax.text(
            0.5,
            len(models) + 0.5 * (n_rows - len(models)),
            "published marks:\nco-bps only",
            transform=ax.get_yaxis_transform(),  # x across the panel, y in rows
            ha="center",
            va="center",
            fontsize=TICK_SIZE,
            color="0.55",
        )
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels if references else [])
    ax.tick_params(axis="y", length=0)
    unit = "bits per spike" if key.endswith("bps") else "R² (1 = exact)"
    label(ax, heading, unit, "")
    if not shown:
        ax.text(0.5, 0.5, "not scored", transform=ax.transAxes, ha="center", fontsize=TICK_SIZE)


def nlb_scores_figure(
    nlb: Mapping[str, Any],
    warnings: Sequence[str] = (),
    *,
    title: str = "",
) -> Figure:
    """The Neural Latents Benchmark's four scores of the fitted network beside its baselines.

    One panel per score (co-bps, fp-bps, vel R², PSTH R²; Pei et al. 2021, NLB'21), a horizontal
    bar per model on the same test trials, the fitted network on top (blue), the strongest
    baseline marked (orange); a score a model has none of reads "n/a". The co-bps panel also
    holds the published co-bps of NLB'21's models on the real MC_Maze data
    (:data:`MC_MAZE_PUBLISHED_CO_BPS`) as open diamonds, said to be reference marks and not
    scores of this file. The headline is written above the panels, the split and the notes
    below them, and every warning in red.

    Args:
        nlb: ``metrics["nlb"]`` of a ``fit_data`` job on spike trains: ``scores`` (model ->
            ``{"co_bps", "fp_bps", "vel_r2", "psth_r2"}``, bits per spike or R², None where not
            scored), and optionally ``strongest_baseline``, ``headline``, ``notes``, ``split``
            (``{"train", "val", "test"}`` trial counts and ``rule``), ``bin_width`` (s),
            ``heldin_neurons`` and ``heldout_neurons``.
        warnings: ``metrics["warnings"]``, one sentence each.
        title: figure title (default: "Neural Latents Benchmark scores (NLB'21) on this file").

    Raises:
        ValueError: ``nlb`` without a ``scores`` mapping.
    """
    scores = nlb.get("scores")
    if not isinstance(scores, Mapping):
        raise ValueError("nlb must hold 'scores': model -> {co_bps, fp_bps, vel_r2, psth_r2}")
    models = nlb_model_order(scores)
    strongest = nlb.get("strongest_baseline")
    strongest = strongest if strongest in scores else None
    footer = [_nlb_split_text(nlb), *[str(n) for n in nlb.get("notes") or []], _NLB_SOURCE]
    footer = [line for line in footer if line]
    warning_lines = [f"warning: {w}" for w in warnings]
    rows = len(models) + len(MC_MAZE_PUBLISHED_CO_BPS) + 1
    panel_height = 0.62 + 0.24 * rows
    text_height = 0.17 * (len(footer) + len(warning_lines))
    headline = str(nlb.get("headline") or "")
    height = 0.95 + (0.25 if headline else 0.0) + panel_height + 0.5 + text_height
    figure = new_figure(
        13.0, height, title or "Neural Latents Benchmark scores (NLB'21) on this file"
    )
    bottom = (0.55 + text_height) / height
    top = 1.0 - (0.75 + (0.25 if headline else 0.0)) / height
    figure.subplots_adjust(left=0.2, right=0.99, bottom=bottom, top=top, wspace=0.12)
    if headline:
        figure.text(
            0.5,
            1.0 - 0.55 / height,
            headline,
            ha="center",
            va="center",
            fontsize=TITLE_SIZE,
            weight="bold",
        )
    grid = figure.add_gridspec(1, len(NLB_SCORE_COLUMNS), width_ratios=[1.35, 1, 1, 1])
    for column, (key, heading) in enumerate(NLB_SCORE_COLUMNS):
        ax = figure.add_subplot(grid[0, column])
        _nlb_panel(ax, key, heading, models, scores, strongest, references=column == 0)
    lines = [(line, "0.25") for line in footer] + [(line, "tab:red") for line in warning_lines]
    for index, (line, colour) in enumerate(lines):
        figure.text(
            0.01,
            (0.12 + 0.17 * (len(lines) - 1 - index)) / height,
            line,
            fontsize=TICK_SIZE,
            color=colour,
        )
    return figure


def _nlb_split_text(nlb: Mapping[str, Any]) -> str:
    """``scored on 460 test trials (train 1380, val 460; split: file); 5 ms bins; 137 held-in,
    45 held-out neurons``, from what ``nlb`` holds."""
    parts = []
    split = nlb.get("split")
    if isinstance(split, Mapping) and split.get("test") is not None:
        rule = f"; split: {split['rule']}" if split.get("rule") else ""
        parts.append(
            f"scored on {split['test']} test trials (train {split.get('train')}, val "
            f"{split.get('val')}{rule})"
        )
    bin_width = _score(nlb.get("bin_width"))
    if bin_width is not None:
        parts.append(f"{1e3 * bin_width:g} ms bins")
    if nlb.get("heldin_neurons") is not None and nlb.get("heldout_neurons") is not None:
        parts.append(f"{nlb['heldin_neurons']} held-in, {nlb['heldout_neurons']} held-out neurons")
    return "; ".join(parts)
