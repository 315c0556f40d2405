"""The population seen by the data and by a fitted network, and how well the fit generalises
(:func:`data_population_figure`): PC planes, jPC planes (Churchland et al. 2012), the held-out R²
per neuron and the cross-validation table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
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
from lifrnn_core.figures.fit_data.psths import _r2_text, condition_colours

__all__ = ["MAX_TABLE_FOLDS", "R2_FLOOR", "data_population_figure", "jpca_colours"]

MAX_TABLE_FOLDS = 12
"""Fold rows of the cross-validation table at most (then an ellipsis row, then the mean)."""

R2_FLOOR = -1.0
"""Held-out R² below this are drawn in the histogram's first bin (and counted in the title)."""

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
